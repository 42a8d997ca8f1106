package pki

import (
	"crypto/x509"
	"slices"
	"testing"
	"time"
)

func TestIssueReplica(t *testing.T) {
	ca := newTestCA(t)
	c, err := ca.IssueReplica("10.0.0.7:7443", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("replica certificate does not verify as a client of the ca: %v", err)
	}
	role, name, err := Identity(cert)
	if err != nil || role != RoleHub || name != "10.0.0.7:7443" {
		t.Fatalf("Identity = %q, %q, %v; want %q, 10.0.0.7:7443", role, name, err, RoleHub)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("extended key usage %v, want client auth only", cert.ExtKeyUsage)
	}
	for _, bad := range []string{"", " hub", "hub\x00"} {
		if _, err := ca.IssueReplica(bad, time.Hour); err == nil {
			t.Errorf("IssueReplica(%q): want error", bad)
		}
	}
	if _, err := ca.IssueReplica("hub-0", 0); err == nil {
		t.Error("IssueReplica with ttl 0: want error")
	}
}
