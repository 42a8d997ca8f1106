package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

const (
	servingValidity = 365 * 24 * time.Hour
	// servingRenewBefore is how long before its expiry a stored serving certificate is
	// replaced rather than reused.
	servingRenewBefore = 30 * 24 * time.Hour
)

// ServingCert returns the hub's TLS serving certificate for hosts (DNS names and IP
// addresses). It reuses server.crt and server.key in dir when they were issued by this CA,
// stay valid for more than 30 days and cover every host; otherwise it issues a new one
// (ECDSA P-256, one year) and writes it there. The returned chain is the leaf followed by the
// CA certificate, so an agent holding only a join token can pin the CA by its fingerprint.
func (ca *CA) ServingCert(dir string, hosts []string) (tls.Certificate, error) {
	hosts, err := normalizeHosts(hosts)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("serving certificate: %w", err)
	}
	certPath, keyPath := filepath.Join(dir, ServerCertFile), filepath.Join(dir, ServerKeyFile)
	if c, ok := ca.loadServing(certPath, keyPath, hosts); ok {
		return c, nil
	}
	certPEM, keyPEM, err := ca.issueServing(hosts, servingValidity)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("create serving certificate directory: %w", err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("write serving key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("write serving certificate: %w", err)
	}
	return ca.keyPair(certPEM, keyPEM)
}

// loadServing returns the stored serving certificate if it can be reused as it is.
func (ca *CA) loadServing(certPath, keyPath string, hosts []string) (tls.Certificate, bool) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, false
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, false
	}
	c, err := ca.keyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, false
	}
	leaf := c.Leaf
	if leaf.CheckSignatureFrom(ca.cert) != nil ||
		ca.now().Add(servingRenewBefore).After(leaf.NotAfter) ||
		!slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) ||
		!coversHosts(leaf, hosts) {
		return tls.Certificate{}, false
	}
	return c, true
}

// issueServing issues a serving certificate for hosts, valid for validity.
func (ca *CA) issueServing(hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate serving key: %w", err)
	}
	now := ca.now()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName(hosts[0])},
		NotBefore:   now.Add(-clockSkew),
		NotAfter:    ca.notAfter(now, validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := ca.sign(tmpl, key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("issue serving certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}

// keyPair builds the TLS certificate from a leaf and its key, chained to the CA certificate.
func (ca *CA) keyPair(certPEM, keyPEM []byte) (tls.Certificate, error) {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, errors.New("load serving key pair: certificate and key do not form a valid pair")
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("parse serving certificate: %w", err)
		}
	}
	c.Certificate = [][]byte{c.Certificate[0], ca.cert.Raw}
	return c, nil
}

// normalizeHosts lower-cases DNS names, canonicalises IP addresses and drops duplicates.
func normalizeHosts(hosts []string) ([]string, error) {
	var out []string
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, errors.New("empty host name")
		}
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		} else {
			h = strings.ToLower(strings.TrimSuffix(h, "."))
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no host names")
	}
	return out, nil
}

// coversHosts reports whether cert names every host exactly (as a DNS name or an IP SAN).
func coversHosts(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(cert.IPAddresses, ip.Equal) {
				return false
			}
			continue
		}
		if !slices.ContainsFunc(cert.DNSNames, func(n string) bool { return strings.EqualFold(n, h) }) {
			return false
		}
	}
	return true
}

// commonName returns host if it fits the 64-character limit of a CommonName; the SANs are
// what clients check anyway.
func commonName(host string) string {
	if len(host) > 64 {
		return "flotilla hub"
	}
	return host
}
