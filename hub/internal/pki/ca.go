// Package pki is the hub's certificate authority: it keeps the CA key in the data directory,
// issues the hub's TLS serving certificate, signs agent client certificates from their CSRs,
// issues operator client certificates, and turns a verified peer certificate into an identity.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/flotilla-dev/flotilla/shared/jointoken"
)

// File names in the CA directory.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
)

const (
	caValidity = 10 * 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a peer whose clock runs a little behind accepts a
	// certificate issued a moment ago.
	clockSkew = 5 * time.Minute
)

// CA is the hub's certificate authority. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	now     func() time.Time
}

// LoadOrCreate loads ca.crt and ca.key from dir, or on first start creates an ECDSA P-256 CA
// valid for 10 years and writes them (the key with mode 0600). Finding only one of the two
// files is an error: replacing the CA would cut off every agent that trusts it.
func LoadOrCreate(dir string) (*CA, error) {
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	certExists, err := exists(certPath)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	keyExists, err := exists(keyPath)
	if err != nil {
		return nil, fmt.Errorf("load ca: %w", err)
	}
	switch {
	case certExists && keyExists:
		return loadCA(certPath, keyPath)
	case certExists || keyExists:
		return nil, fmt.Errorf("load ca in %s: found only one of %s and %s; restore the other or remove both to create a new ca", dir, CACertFile, CAKeyFile)
	}
	ca, keyPEM, err := newCA(time.Now)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create ca directory: %w", err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write ca key: %w", err)
	}
	if err := writeFileAtomic(certPath, ca.certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write ca certificate: %w", err)
	}
	return ca, nil
}

func newCA(now func() time.Time) (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate ca key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "flotilla hub ca", Organization: []string{"flotilla"}},
		NotBefore:             t.Add(-clockSkew),
		NotAfter:              t.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new ca certificate: %w", err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return &CA{cert: cert, certPEM: encodeCert(der), key: key, now: now}, keyPEM, nil
}

func loadCA(certPath, keyPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read ca certificate: %w", err)
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca certificate %s: %w", certPath, err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("load ca certificate %s: not a ca certificate", certPath)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read ca key: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca key %s: %w", keyPath, err)
	}
	if !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("load ca in %s: %s does not match %s", filepath.Dir(certPath), CAKeyFile, CACertFile)
	}
	return &CA{cert: cert, certPEM: encodeCert(cert.Raw), key: key, now: time.Now}, nil
}

// WithClock returns a copy of the CA that issues certificates as if the time were now():
// tests use it for certificates that have expired.
func (ca *CA) WithClock(now func() time.Time) *CA {
	c := *ca
	c.now = now
	return &c
}

// CertPEM returns the CA certificate, PEM-encoded.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// Certificate returns the parsed CA certificate. Callers must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Pool returns a new certificate pool holding only the CA certificate, for verifying agent
// and operator client certificates.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Fingerprint returns "sha256:<hex>" of the CA certificate's DER bytes: what join tokens pin.
func (ca *CA) Fingerprint() string { return jointoken.Fingerprint(ca.cert.Raw) }

func newSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generate certificate serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil // never zero
}

// notAfter returns from+ttl, capped at the CA's own expiry.
func (ca *CA) notAfter(from time.Time, ttl time.Duration) time.Time {
	end := from.Add(ttl)
	if end.After(ca.cert.NotAfter) {
		return ca.cert.NotAfter
	}
	return end
}

// sign creates a certificate from tmpl for pub, signed by the CA, and returns its DER.
func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = false
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	return der, nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("stat %s: %w", path, err)
	}
}
