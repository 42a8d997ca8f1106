package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"
)

// TestVerifyClientChain: a chain verifies at the moment its leaf expired, so an expired agent
// certificate of this CA verifies (its expiry is the caller's decision), while one of another
// CA, one not yet valid, or a serving certificate does not.
func TestVerifyClientChain(t *testing.T) {
	now := time.Now()
	ca, other := caSince(t, now.Add(-24*time.Hour)), caSince(t, now.Add(-24*time.Hour))
	issue := func(ca *CA, at time.Time, ttl time.Duration) *x509.Certificate { return issueAgentAt(t, ca, at, ttl) }
	valid := issue(ca, now, time.Hour)
	expired := issue(ca, now.Add(-3*time.Hour), time.Hour) // expired 2h ago
	tests := []struct {
		name        string
		certs       []*x509.Certificate
		want        string // "" for success
		wantExpired time.Duration
	}{
		{name: "valid", certs: []*x509.Certificate{valid}},
		{name: "expired two hours ago", certs: []*x509.Certificate{expired}, wantExpired: 2 * time.Hour},
		{name: "another ca", certs: []*x509.Certificate{issue(other, now, time.Hour)}, want: "unknown authority"},
		{name: "another ca, expired", certs: []*x509.Certificate{issue(other, now.Add(-3*time.Hour), time.Hour)}, want: "unknown authority"},
		{name: "not yet valid", certs: []*x509.Certificate{issue(ca, now.Add(time.Hour), time.Hour)}, want: "not yet valid"},
		{name: "serving certificate", certs: []*x509.Certificate{servingLeaf(t, ca)}, want: "usage"},
		{name: "none", want: "none given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyClientChain(ca.Pool(), tt.certs, now)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := Expired(tt.certs[0], now); got.Round(time.Minute) != tt.wantExpired {
					t.Errorf("Expired = %s, want %s", got, tt.wantExpired)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// caSince returns a CA created at created.
func caSince(t *testing.T, created time.Time) *CA {
	t.Helper()
	ca, _, err := newCA(func() time.Time { return created })
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func servingLeaf(t *testing.T, ca *CA) *x509.Certificate {
	t.Helper()
	serving, err := ca.ServingCert(t.TempDir(), []string{"hub.example"})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(serving.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestCheckCSR: the key ID names the request's public key, whatever the subject; a bad request
// is refused as SignAgent refuses it.
func TestCheckCSR(t *testing.T) {
	key := newKey(t)
	a, err := CheckCSR(newCSR(t, key, pkix.Name{CommonName: "a"}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := CheckCSR(newCSR(t, key, pkix.Name{CommonName: "b"}))
	if err != nil {
		t.Fatal(err)
	}
	c, err := CheckCSR(newCSR(t, newKey(t), pkix.Name{CommonName: "a"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Errorf("key IDs: same key %x and %x, other key %x; want 32 bytes, equal for the same key only", a, b, c)
	}
	if _, err := CheckCSR(tamperCSR(t, newCSR(t, key, pkix.Name{}))); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("tampered request: %v, want a signature error", err)
	}
	if _, err := CheckCSR([]byte("hello")); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Errorf("not PEM: %v", err)
	}
}

// issueAgentAt signs an agent certificate of cluster c1 as ca would at the time at.
func issueAgentAt(t *testing.T, ca *CA, at time.Time, ttl time.Duration) *x509.Certificate {
	t.Helper()
	saved := ca.now
	ca.now = func() time.Time { return at }
	defer func() { ca.now = saved }()
	certPEM, err := ca.SignAgent(newCSR(t, newKey(t), pkix.Name{}), "c1", ttl)
	if err != nil {
		t.Fatal(err)
	}
	return mustParseCert(t, certPEM)
}
