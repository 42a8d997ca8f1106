package pki

import (
	"bytes"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestServingCertIssuesAndReuses(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	hosts := []string{"Hub.Example.", "127.0.0.1", "hub.example", "::1"}
	c, err := ca.ServingCert(dir, hosts)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificate) != 2 || !bytes.Equal(c.Certificate[1], ca.Certificate().Raw) {
		t.Fatal("chain is not leaf + ca certificate")
	}
	leaf := c.Leaf
	if !slices.Equal(leaf.DNSNames, []string{"hub.example"}) {
		t.Errorf("DNS names %v, want [hub.example]", leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 2 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || !leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP addresses %v, want [127.0.0.1 ::1]", leaf.IPAddresses)
	}
	for _, h := range []string{"hub.example", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: ca.Pool()}); err != nil {
			t.Errorf("serving certificate does not verify for %s: %v", h, err)
		}
	}
	info, err := os.Stat(filepath.Join(dir, ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("server.key mode %o, want 600", perm)
	}

	again, err := ca.ServingCert(dir, []string{"127.0.0.1", "hub.example"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Certificate[0], c.Certificate[0]) {
		t.Error("a valid stored certificate covering the hosts was not reused")
	}
	if len(again.Certificate) != 2 || !bytes.Equal(again.Certificate[1], ca.Certificate().Raw) {
		t.Error("reused chain is not leaf + ca certificate")
	}
}

func TestServingCertReissues(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	hosts := []string{"hub.example"}
	tests := []struct {
		name   string
		stored func(t *testing.T) (certPEM, keyPEM []byte)
		hosts  []string
	}{
		{name: "new host", hosts: []string{"hub.example", "10.0.0.1"}, stored: func(t *testing.T) ([]byte, []byte) {
			return mustIssueServing(t, ca, hosts, servingValidity)
		}},
		{name: "expires within 30 days", hosts: hosts, stored: func(t *testing.T) ([]byte, []byte) {
			return mustIssueServing(t, ca, hosts, 29*24*time.Hour)
		}},
		{name: "issued by another ca", hosts: hosts, stored: func(t *testing.T) ([]byte, []byte) {
			return mustIssueServing(t, other, hosts, servingValidity)
		}},
		{name: "key does not match", hosts: hosts, stored: func(t *testing.T) ([]byte, []byte) {
			certPEM, _ := mustIssueServing(t, ca, hosts, servingValidity)
			_, keyPEM := mustIssueServing(t, ca, hosts, servingValidity)
			return certPEM, keyPEM
		}},
		{name: "client certificate", hosts: hosts, stored: func(t *testing.T) ([]byte, []byte) {
			certPEM, keyPEM, err := ca.IssueAdmin("hub.example", servingValidity)
			if err != nil {
				t.Fatal(err)
			}
			return certPEM, keyPEM
		}},
		{name: "garbage", hosts: hosts, stored: func(t *testing.T) ([]byte, []byte) {
			return []byte("x"), []byte("y")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			certPEM, keyPEM := tt.stored(t)
			if err := os.WriteFile(filepath.Join(dir, ServerCertFile), certPEM, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, ServerKeyFile), keyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := ca.ServingCert(dir, tt.hosts)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(mustDER(t, certPEM), c.Certificate[0]) {
				t.Fatal("stored certificate was reused")
			}
			if err := c.Leaf.CheckSignatureFrom(ca.Certificate()); err != nil {
				t.Errorf("new certificate not signed by the ca: %v", err)
			}
			if !coversHosts(c.Leaf, tt.hosts) {
				t.Errorf("new certificate does not cover %v", tt.hosts)
			}
			if left := time.Until(c.Leaf.NotAfter); left < 360*24*time.Hour {
				t.Errorf("new certificate valid for %s only", left)
			}
			onDisk, err := os.ReadFile(filepath.Join(dir, ServerCertFile))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(mustDER(t, onDisk), c.Certificate[0]) {
				t.Error("new certificate was not written")
			}
		})
	}
}

func TestServingCertRejectsBadHosts(t *testing.T) {
	ca := newTestCA(t)
	for _, hosts := range [][]string{nil, {}, {""}, {"hub.example", "  "}} {
		if _, err := ca.ServingCert(t.TempDir(), hosts); err == nil {
			t.Errorf("ServingCert(%q): want error", hosts)
		}
	}
}

func mustIssueServing(t *testing.T, ca *CA, hosts []string, validity time.Duration) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := ca.issueServing(hosts, validity)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

func mustDER(t *testing.T, certPEM []byte) []byte {
	t.Helper()
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil
	}
	return cert.Raw
}
