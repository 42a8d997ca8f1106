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

// TestEachIdentityResumesOnlyItsOwnSessions: the agent's connections share one TLS session
// cache, so that a reconnect resumes its session; a renewed identity starts a new one, so that
// no resumed session carries the certificate it replaced.
func TestEachIdentityResumesOnlyItsOwnSessions(t *testing.T) {
	c := NewCredentials(keyedIdentity(t), nil, nil)
	first, err := c.TLSConfig("hub")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.TLSConfig("hub")
	if err != nil {
		t.Fatal(err)
	}
	if first.ClientSessionCache == nil || again.ClientSessionCache != first.ClientSessionCache {
		t.Fatal("two connections of one identity do not share a session cache")
	}
	c.use(keyedIdentity(t))
	renewed, err := c.TLSConfig("hub")
	if err != nil {
		t.Fatal(err)
	}
	if renewed.ClientSessionCache == nil || renewed.ClientSessionCache == first.ClientSessionCache {
		t.Fatal("a renewed identity resumes the sessions of the one it replaced")
	}
}

// keyedIdentity is an identity with a self-signed certificate, its key, and itself as the CA.
func keyedIdentity(t *testing.T) *identity.Identity {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return &identity.Identity{CertPEM: certPEM, CAPEM: certPEM, KeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), Cluster: "c1"}
}
