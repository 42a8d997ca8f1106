package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	ca, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("ca.key mode %o, want 600", perm)
	}
	cert := ca.Certificate()
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("ca certificate cannot sign certificates")
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("ca key is %T, want ECDSA P-256", cert.PublicKey)
	}
	if years := cert.NotAfter.Sub(time.Now()).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("ca valid for %.1f years, want 10", years)
	}
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(ca.Fingerprint()) {
		t.Errorf("fingerprint %q: want sha256:<64 hex>", ca.Fingerprint())
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: ca.Pool()}); err != nil {
		t.Errorf("ca certificate does not verify against its own pool: %v", err)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, ca.CertPEM()) {
		t.Error("ca.crt differs from CertPEM()")
	}

	again, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint() != ca.Fingerprint() {
		t.Errorf("reload changed the ca: %s, want %s", again.Fingerprint(), ca.Fingerprint())
	}
	// The reloaded key signs: a certificate it issues verifies against the first CA's pool.
	certPEM, _, err := again.IssueAdmin("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf := mustParseCert(t, certPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate from reloaded ca does not verify: %v", err)
	}
}

func TestLoadOrCreateRefusesBrokenState(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if _, err := LoadOrCreate(a); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(b); err != nil {
		t.Fatal(err)
	}
	read := func(dir, name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	admin, adminKey, err := mustLoad(t, a).IssueAdmin("bob", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		files map[string][]byte
	}{
		{name: "certificate without key", files: map[string][]byte{CACertFile: read(a, CACertFile)}},
		{name: "key without certificate", files: map[string][]byte{CAKeyFile: read(a, CAKeyFile)}},
		{name: "key of another ca", files: map[string][]byte{CACertFile: read(a, CACertFile), CAKeyFile: read(b, CAKeyFile)}},
		{name: "garbage certificate", files: map[string][]byte{CACertFile: []byte("not pem"), CAKeyFile: read(a, CAKeyFile)}},
		{name: "garbage key", files: map[string][]byte{CACertFile: read(a, CACertFile), CAKeyFile: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")}},
		{name: "not a ca certificate", files: map[string][]byte{CACertFile: admin, CAKeyFile: adminKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := LoadOrCreate(dir); err == nil {
				t.Fatal("want error")
			}
			// Nothing was overwritten.
			for name, data := range tt.files {
				if got := read(dir, name); !bytes.Equal(got, data) {
					t.Errorf("%s was modified", name)
				}
			}
		})
	}
}

func mustLoad(t *testing.T, dir string) *CA {
	t.Helper()
	ca, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustParseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	cert, err := parseCert(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
