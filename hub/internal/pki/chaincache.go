package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// maxCachedChains bounds a ChainCache; reaching it starts the cache afresh.
const maxCachedChains = 1 << 17

// ChainCache is VerifyClientChain against fixed roots, remembering the chains that verified:
// every agent connection and every call on it verifies its client certificate, and in a
// reconnect storm that is two signature checks per agent for chains already checked. A
// chain that verified once verifies again, with the same roots, until the first of its
// certificates (root included) expires; past that, it is verified afresh. Failures are never
// remembered.
type ChainCache struct {
	roots  *x509.CertPool
	verify func(roots *x509.CertPool, certs []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error)

	mu    sync.Mutex
	until map[[sha256.Size]byte]time.Time // chain → when its first certificate expires
}

// NewChainCache verifies client chains against roots.
func NewChainCache(roots *x509.CertPool) *ChainCache {
	return &ChainCache{roots: roots, verify: verifyChains, until: map[[sha256.Size]byte]time.Time{}}
}

// Verify is VerifyClientChain(roots, certs, now), from the cache when the same chain verified
// before and none of its certificates has expired since.
func (c *ChainCache) Verify(certs []*x509.Certificate, now time.Time) error {
	if len(certs) == 0 {
		return VerifyClientChain(c.roots, certs, now)
	}
	h := sha256.New()
	for _, cert := range certs {
		h.Write(cert.Raw)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	c.mu.Lock()
	until, ok := c.until[key]
	c.mu.Unlock()
	if ok && now.Before(until) {
		return nil
	}
	chains, err := c.verify(c.roots, certs, now)
	if err != nil || !now.Before(certs[0].NotAfter) {
		return err // an expired leaf verifies as of its expiry: not cached
	}
	until = certs[0].NotAfter
	for _, cert := range chains[0] {
		if cert.NotAfter.Before(until) {
			until = cert.NotAfter
		}
	}
	c.mu.Lock()
	if len(c.until) >= maxCachedChains {
		clear(c.until)
	}
	c.until[key] = until
	c.mu.Unlock()
	return nil
}
