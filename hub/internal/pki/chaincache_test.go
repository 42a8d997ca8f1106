package pki

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

// TestChainCache: a chain that verified is not verified again until its first certificate
// expires; a failure, another chain, or an expired leaf is verified every time.
func TestChainCache(t *testing.T) {
	now := time.Now()
	ca, other := caSince(t, now.Add(-24*time.Hour)), caSince(t, now.Add(-24*time.Hour))
	issue := func(ca *CA, at time.Time, ttl time.Duration) *x509.Certificate { return issueAgentAt(t, ca, at, ttl) }
	c := NewChainCache(ca.Pool())
	calls := 0
	c.verify = func(roots *x509.CertPool, certs []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error) {
		calls++
		return verifyChains(roots, certs, now)
	}
	check := func(what string, certs []*x509.Certificate, at time.Time, wantErr string, wantCalls int) {
		t.Helper()
		err := c.Verify(certs, at)
		if (wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), wantErr)) {
			t.Fatalf("%s: %v, want error %q", what, err, wantErr)
		}
		if calls != wantCalls {
			t.Fatalf("%s: %d verifications in all, want %d", what, calls, wantCalls)
		}
	}
	leaf := issue(ca, now, time.Hour)
	check("first", []*x509.Certificate{leaf}, now, "", 1)
	check("again", []*x509.Certificate{leaf}, now.Add(time.Minute), "", 1)
	check("another leaf", []*x509.Certificate{issue(ca, now, time.Hour)}, now, "", 2)
	forged := []*x509.Certificate{issue(other, now, time.Hour)}
	check("another CA", forged, now, "unknown authority", 3)
	check("another CA again", forged, now, "unknown authority", 4)
	check("past the leaf's expiry", []*x509.Certificate{leaf}, now.Add(2*time.Hour), "", 5)
	check("past the leaf's expiry again", []*x509.Certificate{leaf}, now.Add(2*time.Hour), "", 6)
	check("none", nil, now, "none given", 6)
}
