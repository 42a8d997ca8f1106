package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"slices"
	"strings"
	"testing"
	"time"
)

func newCSR(t *testing.T, key crypto.Signer, subject pkix.Name) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  subject,
		DNSNames: []string{"hub.example"}, // must not end up in the certificate
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der})
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestSignAgent(t *testing.T) {
	ca := newTestCA(t)
	key := newKey(t)
	// The CSR asks for an operator identity under another name: the subject is ignored.
	csr := newCSR(t, key, pkix.Name{CommonName: "admin", Organization: []string{RoleOperator}})
	certPEM, err := ca.SignAgent(csr, "prod-eu-1", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParseCert(t, certPEM)
	if cert.Subject.CommonName != "prod-eu-1" || !slices.Equal(cert.Subject.Organization, []string{RoleAgent}) {
		t.Errorf("subject %v, want CN=prod-eu-1 O=%s", cert.Subject, RoleAgent)
	}
	if !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
		t.Errorf("extended key usage %v, want client auth only", cert.ExtKeyUsage)
	}
	if cert.IsCA || len(cert.DNSNames) > 0 {
		t.Errorf("certificate is a ca (%v) or has DNS names %v", cert.IsCA, cert.DNSNames)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		t.Error("certificate is not for the CSR's key")
	}
	if d := time.Until(cert.NotAfter); d < 23*time.Hour || d > 24*time.Hour {
		t.Errorf("certificate valid for %s more, want 24h", d)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("agent certificate does not verify as a client certificate: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "hub.example"}); err == nil {
		t.Error("agent certificate verifies as a serving certificate")
	}
	role, name, err := Identity(cert)
	if err != nil || role != RoleAgent || name != "prod-eu-1" {
		t.Errorf("Identity = %q, %q, %v; want %q, prod-eu-1", role, name, err, RoleAgent)
	}

	long, err := ca.SignAgent(csr, "prod-eu-1", 100*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustParseCert(t, long).NotAfter; got.After(ca.Certificate().NotAfter) {
		t.Errorf("certificate outlives the ca: %s > %s", got, ca.Certificate().NotAfter)
	}
}

func TestSignAgentRejects(t *testing.T) {
	ca := newTestCA(t)
	good := newCSR(t, newKey(t), pkix.Name{})
	tampered := tamperCSR(t, good)
	weakRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		csr     []byte
		cluster string
		ttl     time.Duration
		want    string
	}{
		{name: "bad signature", csr: tampered, cluster: "c1", ttl: time.Hour, want: "signature"},
		{name: "not pem", csr: []byte("hello"), cluster: "c1", ttl: time.Hour, want: "no PEM"},
		{name: "certificate instead of csr", csr: ca.CertPEM(), cluster: "c1", ttl: time.Hour, want: "no PEM"},
		{name: "weak rsa key", csr: newCSR(t, weakRSA, pkix.Name{}), cluster: "c1", ttl: time.Hour, want: "too small"},
		{name: "upper-case cluster", csr: good, cluster: "Prod", ttl: time.Hour, want: "DNS-1123"},
		{name: "dotted cluster", csr: good, cluster: "a.b", ttl: time.Hour, want: "DNS-1123"},
		{name: "empty cluster", csr: good, cluster: "", ttl: time.Hour, want: "DNS-1123"},
		{name: "zero ttl", csr: good, cluster: "c1", ttl: 0, want: "ttl"},
		{name: "negative ttl", csr: good, cluster: "c1", ttl: -time.Hour, want: "ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, err := ca.SignAgent(tt.csr, tt.cluster, tt.ttl)
			if err == nil {
				t.Fatalf("want error, got certificate %q", cert)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// tamperCSR flips a bit in the CSR's signature value, which is the last byte of its DER.
func tamperCSR(t *testing.T, csrPEM []byte) []byte {
	t.Helper()
	block, _ := pem.Decode(csrPEM)
	der := slices.Clone(block.Bytes)
	der[len(der)-1] ^= 0x01
	if _, err := x509.ParseCertificateRequest(der); err != nil {
		t.Fatalf("tampered CSR no longer parses: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der})
}

func TestIssueAdmin(t *testing.T) {
	ca := newTestCA(t)
	certPEM, keyPEM, err := ca.IssueAdmin("alice@example.com", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert := mustParseCert(t, certPEM)
	key, err := parseKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		t.Error("key does not match certificate")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("operator certificate does not verify: %v", err)
	}
	role, name, err := Identity(cert)
	if err != nil || role != RoleOperator || name != "alice@example.com" {
		t.Errorf("Identity = %q, %q, %v; want %q, alice@example.com", role, name, err, RoleOperator)
	}
	for _, bad := range []string{"", " alice", "al\nice", strings.Repeat("a", 65)} {
		if _, _, err := ca.IssueAdmin(bad, time.Hour); err == nil {
			t.Errorf("IssueAdmin(%q): want error", bad)
		}
	}
	if _, _, err := ca.IssueAdmin("alice", 0); err == nil {
		t.Error("IssueAdmin with zero ttl: want error")
	}
}
