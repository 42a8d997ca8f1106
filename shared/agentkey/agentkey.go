// Package agentkey makes an agent's key and its certificate request: what the agent sends the
// hub to enrol and to renew (agent/internal/identity, hubclient), and what the fleet simulator
// (e2e/cmd/fleetsim) sends in the same way.
package agentkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// New generates a new ECDSA P-256 key and a certificate signing request for it, both PEM (the
// key PKCS #8). The hub ignores the CSR's subject and names the certificate after the cluster
// the join token or the current certificate names. keyPEM is a credential: never log it.
func New() (keyPEM, csrPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate agent key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode agent key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate request: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), nil
}
