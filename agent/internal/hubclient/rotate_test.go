package hubclient

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/identity"
)

// TestRenewAtCountsFromWhenTheCertificateWasObtained: a short certificate whose NotBefore the
// hub backdated by five minutes is renewed two thirds into the time the agent has had it, not
// at once (which for a 9-second certificate meant renewing in a loop); a certificate loaded at
// start counts from its NotBefore.
func TestRenewAtCountsFromWhenTheCertificateWasObtained(t *testing.T) {
	now := time.Now().Truncate(time.Second) // certificates carry whole seconds
	id := certValid(t, now.Add(-5*time.Minute), now.Add(9*time.Second))
	if got, want := renewAt(id, now), now.Add(6*time.Second); !got.Equal(want) {
		t.Errorf("renewAt of a certificate just obtained = now%+v, want now+6s", got.Sub(now))
	}
	if got, want := renewAt(id, time.Time{}), now.Add(-5*time.Minute).Add((5*time.Minute+9*time.Second)*2/3); !got.Equal(want) {
		t.Errorf("renewAt of a loaded certificate = now%+v, want two thirds from NotBefore", got.Sub(now))
	}
	expired := certValid(t, now.Add(-2*time.Hour), now.Add(-time.Hour))
	if got := renewAt(expired, time.Time{}); got.After(now) {
		t.Errorf("renewAt of an expired certificate = now%+v, want now or earlier", got.Sub(now))
	}
}

// certValid is an identity whose certificate is valid from notBefore to notAfter.
func certValid(t *testing.T, notBefore, notAfter time.Time) *identity.Identity {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return &identity.Identity{CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}
