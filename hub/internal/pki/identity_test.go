package pki

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
)

func TestIdentity(t *testing.T) {
	tests := []struct {
		name     string
		subject  pkix.Name
		wantRole string
		wantName string
	}{
		{name: "agent", subject: pkix.Name{CommonName: "prod-1", Organization: []string{RoleAgent}}, wantRole: RoleAgent, wantName: "prod-1"},
		{name: "operator", subject: pkix.Name{CommonName: "Alice Smith", Organization: []string{RoleOperator}}, wantRole: RoleOperator, wantName: "Alice Smith"},
		{name: "hub replica", subject: pkix.Name{CommonName: "10.0.0.7:7443", Organization: []string{RoleHub}}, wantRole: RoleHub, wantName: "10.0.0.7:7443"},
		{name: "hub replica empty", subject: pkix.Name{Organization: []string{RoleHub}}},
		{name: "hub and operator", subject: pkix.Name{CommonName: "hub-0", Organization: []string{RoleHub, RoleOperator}}},
		{name: "no organization", subject: pkix.Name{CommonName: "prod-1"}},
		{name: "two organizations", subject: pkix.Name{CommonName: "prod-1", Organization: []string{RoleAgent, RoleOperator}}},
		{name: "same role twice", subject: pkix.Name{CommonName: "prod-1", Organization: []string{RoleAgent, RoleAgent}}},
		{name: "unknown role", subject: pkix.Name{CommonName: "prod-1", Organization: []string{"system:masters"}}},
		{name: "role in organizational unit", subject: pkix.Name{CommonName: "prod-1", Organization: []string{"x"}, OrganizationalUnit: []string{RoleAgent}}},
		{name: "agent with upper case", subject: pkix.Name{CommonName: "Prod-1", Organization: []string{RoleAgent}}},
		{name: "agent with a dot", subject: pkix.Name{CommonName: "prod.eu", Organization: []string{RoleAgent}}},
		{name: "agent with a slash", subject: pkix.Name{CommonName: "../prod", Organization: []string{RoleAgent}}},
		{name: "agent too long", subject: pkix.Name{CommonName: strings.Repeat("a", 64), Organization: []string{RoleAgent}}},
		{name: "agent empty", subject: pkix.Name{Organization: []string{RoleAgent}}},
		{name: "operator empty", subject: pkix.Name{Organization: []string{RoleOperator}}},
		{name: "operator with control character", subject: pkix.Name{CommonName: "bob\x00", Organization: []string{RoleOperator}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			role, name, err := Identity(&x509.Certificate{Subject: tt.subject})
			if tt.wantRole == "" {
				if err == nil {
					t.Fatalf("want error, got %q, %q", role, name)
				}
				if !errors.Is(err, ErrBadIdentity) {
					t.Errorf("error %v does not wrap ErrBadIdentity", err)
				}
				if role != "" || name != "" {
					t.Errorf("error with identity %q, %q", role, name)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if role != tt.wantRole || name != tt.wantName {
				t.Errorf("Identity = %q, %q; want %q, %q", role, name, tt.wantRole, tt.wantName)
			}
		})
	}
	if _, _, err := Identity(nil); err == nil {
		t.Error("Identity(nil): want error")
	}
}
