package pki

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// VerifyClientChain verifies a client certificate chain (leaf first, as the TLS handshake
// presents it) against roots for client authentication, at now or, for a leaf that has
// expired, at the moment it expired: a chain that was valid then verifies. It leaves expiry
// to the caller (Expired), who knows whether the request may use an expired certificate
// (renewal within a grace window) or not (everything else). A leaf not yet valid, signed by
// another CA or not for client authentication is an error.
func VerifyClientChain(roots *x509.CertPool, certs []*x509.Certificate, now time.Time) error {
	_, err := verifyChains(roots, certs, now)
	return err
}

// verifyChains is VerifyClientChain, returning the verified chains.
func verifyChains(roots *x509.CertPool, certs []*x509.Certificate, now time.Time) ([][]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, errors.New("verify client certificate: none given")
	}
	leaf := certs[0]
	at := now
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		Intermediates: x509.NewCertPool(),
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(opts)
	if err != nil {
		return nil, fmt.Errorf("verify client certificate %q: %w", leaf.Subject.CommonName, err)
	}
	return chains, nil
}

// Expired reports how long ago cert expired at now; zero when it has not.
func Expired(cert *x509.Certificate, now time.Time) time.Duration {
	if !now.After(cert.NotAfter) {
		return 0
	}
	return now.Sub(cert.NotAfter)
}
