// Package identity is the agent's own identity: its private key, the client certificate the
// hub signed for it, and the hub's CA certificate, kept in a Secret in the agent's namespace.
// New keys and their certificate requests come from shared/agentkey.
package identity

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Identity is the agent's private key, its client certificate and the hub CA, all PEM, and
// the name of the cluster the certificate was issued for. KeyPEM is a credential: never log
// it; String and LogValue leave it out.
type Identity struct {
	KeyPEM, CertPEM, CAPEM []byte
	Cluster                string
}

// Identity is printed and logged only through these, which leave the key out.
var (
	_ fmt.Stringer   = Identity{}
	_ fmt.GoStringer = Identity{}
	_ slog.LogValuer = Identity{}
)

// TLSConfig returns the client TLS configuration for talking to the hub at serverName: the
// agent's certificate, the hub CA as the only root, TLS 1.3.
func (id *Identity) TLSConfig(serverName string) (*tls.Config, error) {
	cert, err := tls.X509KeyPair(id.CertPEM, id.KeyPEM)
	if err != nil {
		// The underlying error may describe the key; say only what failed.
		return nil, errors.New("load agent key pair: certificate and key do not form a valid pair")
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(id.CAPEM) {
		return nil, errors.New("load hub ca: no PEM certificate")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		ServerName:   serverName,
		RootCAs:      roots,
		Certificates: []tls.Certificate{cert},
	}, nil
}

// NotAfter returns when the agent's certificate expires, or the zero time if CertPEM holds no
// certificate.
func (id *Identity) NotAfter() time.Time {
	cert, err := id.certificate()
	if err != nil {
		return time.Time{}
	}
	return cert.NotAfter
}

func (id *Identity) certificate() (*x509.Certificate, error) {
	block, _ := pem.Decode(id.CertPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// String describes the identity without its key. It has a value receiver so that printing an
// Identity or a pointer to one never prints the key.
func (id Identity) String() string {
	return fmt.Sprintf("identity{cluster: %s, notAfter: %s}", id.Cluster, id.NotAfter().Format(time.RFC3339))
}

// GoString keeps %#v from printing the key.
func (id Identity) GoString() string { return id.String() }

// LogValue makes slog print the identity without its key.
func (id Identity) LogValue() slog.Value {
	return slog.GroupValue(slog.String("cluster", id.Cluster), slog.Time("notAfter", id.NotAfter()))
}
