package agentkey

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"testing"
)

// TestNew: a PKCS #8 ECDSA P-256 key and a signed request for that key; a new key each call.
func TestNew(t *testing.T) {
	keyPEM, csrPEM, err := New()
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatal("key is not a PEM PRIVATE KEY")
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", key)
	}
	cb, _ := pem.Decode(csrPEM)
	if cb == nil || cb.Type != "CERTIFICATE REQUEST" {
		t.Fatal("CSR is not a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	if !ek.PublicKey.Equal(csr.PublicKey) {
		t.Error("CSR is not for the generated key")
	}
	other, _, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other, keyPEM) {
		t.Error("two calls returned the same key")
	}
}
