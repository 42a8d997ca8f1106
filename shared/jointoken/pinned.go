package jointoken

import (
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// ErrNoPinnedCA is returned (wrapped) by a pinned handshake when no certificate the server
// presented has the pinned fingerprint.
var ErrNoPinnedCA = errors.New("server presented no certificate with the pinned ca fingerprint")

// PinnedTLSConfig returns a client TLS configuration for the agent's first contact with the
// hub, before it has the CA certificate: it trusts only a server whose presented chain
// contains a certificate with the fingerprint caFingerprint ("sha256:<hex>"). That
// certificate is the only root the leaf is verified against, for server authentication and
// serverName (a DNS name or an IP address). A malformed fingerprint yields a configuration
// whose every handshake fails.
func PinnedTLSConfig(caFingerprint, serverName string) *tls.Config {
	fp, fpErr := normalizeFingerprint(caFingerprint)
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		// The standard verification needs the roots up front; VerifyConnection does the
		// same verification with the pinned certificate as the only root.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if fpErr != nil {
				return fmt.Errorf("verify hub certificate: %w", fpErr)
			}
			return verifyPinned(cs.PeerCertificates, fp, serverName)
		},
	}
}

func verifyPinned(chain []*x509.Certificate, fp, serverName string) error {
	if len(chain) == 0 {
		return errors.New("verify hub certificate: server presented no certificate")
	}
	roots := x509.NewCertPool()
	found := false
	for _, c := range chain {
		if subtle.ConstantTimeCompare([]byte(Fingerprint(c.Raw)), []byte(fp)) == 1 {
			roots.AddCert(c)
			found = true
		}
	}
	if !found {
		return fmt.Errorf("verify hub certificate: %w %s", ErrNoPinnedCA, fp)
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		DNSName:       serverName,
		Roots:         roots,
		Intermediates: intermediates,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("verify hub certificate against pinned ca %s: %w", fp, err)
	}
	return nil
}
