package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// maxCommonName is the longest CommonName RFC 5280 allows.
const maxCommonName = 64

// SignAgent issues a client certificate for the agent of cluster from its PEM certificate
// signing request. The CSR's signature is checked; its subject and extensions are ignored:
// the certificate has CommonName cluster, Organization [RoleAgent], client-auth usage only,
// and is valid for ttl (capped at the CA's expiry).
func (ca *CA) SignAgent(csrPEM []byte, cluster string, ttl time.Duration) (certPEM []byte, err error) {
	if err := validateAgentName(cluster); err != nil {
		return nil, fmt.Errorf("sign agent certificate: %w", err)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("sign agent certificate for %s: ttl %s is not positive", cluster, ttl)
	}
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, fmt.Errorf("sign agent certificate for %s: %w", cluster, err)
	}
	der, err := ca.sign(ca.clientTemplate(cluster, RoleAgent, ttl), csr.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("sign agent certificate for %s: %w", cluster, err)
	}
	return encodeCert(der), nil
}

// CheckCSR checks a PEM certificate signing request as SignAgent does (PEM, signature, key
// type and size) without signing it, and returns its key ID: the SHA-256 of the request's
// public key (PKIX DER). Enrolment checks the request before it spends the join token, and
// remembers the key ID so that the same key may redeem the token again for a short while.
func CheckCSR(csrPEM []byte) (keyID []byte, err error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(csr.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("certificate request: encode public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return sum[:], nil
}

// IssueAdmin issues an operator client certificate and its new ECDSA P-256 key: CommonName
// name, Organization [RoleOperator], client-auth usage only, valid for ttl (capped at the
// CA's expiry).
func (ca *CA) IssueAdmin(name string, ttl time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := validateOperatorName(name); err != nil {
		return nil, nil, fmt.Errorf("issue operator certificate: %w", err)
	}
	if ttl <= 0 {
		return nil, nil, fmt.Errorf("issue operator certificate for %q: ttl %s is not positive", name, ttl)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate operator key: %w", err)
	}
	der, err := ca.sign(ca.clientTemplate(name, RoleOperator, ttl), key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("issue operator certificate for %q: %w", name, err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

func (ca *CA) clientTemplate(name, role string, ttl time.Duration) *x509.Certificate {
	now := ca.now()
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: name, Organization: []string{role}},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    ca.notAfter(now, ttl),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// parseCSR decodes a PEM CSR, checks its signature and that its key is one we accept.
func parseCSR(data []byte) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode(data)
	if block == nil || (block.Type != pemCSR && block.Type != pemNewCSR) {
		return nil, errors.New("no PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("check certificate request signature: %w", err)
	}
	if err := checkPublicKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("certificate request: %w", err)
	}
	return csr, nil
}

func checkPublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("unsupported ecdsa curve %s", k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("rsa key of %d bits is too small (want at least 2048)", k.N.BitLen())
		}
		return nil
	default:
		return fmt.Errorf("unsupported public key type %T", pub)
	}
}

// validateOperatorName accepts a non-empty name of printable characters without surrounding
// white space that fits a CommonName.
func validateOperatorName(name string) error {
	if name == "" {
		return errors.New("operator name is empty")
	}
	if len(name) > maxCommonName {
		return fmt.Errorf("operator name is longer than %d bytes", maxCommonName)
	}
	if strings.TrimSpace(name) != name {
		return fmt.Errorf("operator name %q has surrounding white space", name)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("operator name %q has a non-printable character", name)
		}
	}
	return nil
}
