package identity

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/shared/agentkey"
)

// testCA stands in for the hub's CA (the agent cannot import hub packages).
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test hub ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// sign signs a CSR the way the hub does: the cluster name as CommonName, client auth only.
func (ca *testCA) sign(t *testing.T, csrPEM []byte, cluster string, notAfter time.Time) []byte {
	t.Helper()
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		t.Fatal("no PEM CSR")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cluster, Organization: []string{"flotilla:agent"}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newTestIdentity(t *testing.T, ca *testCA, cluster string, notAfter time.Time) *Identity {
	t.Helper()
	keyPEM, csrPEM, err := agentkey.New()
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{KeyPEM: keyPEM, CertPEM: ca.sign(t, csrPEM, cluster, notAfter), CAPEM: ca.certPEM, Cluster: cluster}
}

func TestTLSConfig(t *testing.T) {
	ca := newTestCA(t)
	notAfter := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	id := newTestIdentity(t, ca, "prod-1", notAfter)

	cfg, err := id.TLSConfig("hub.example")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ServerName != "hub.example" || len(cfg.Certificates) != 1 || cfg.InsecureSkipVerify {
		t.Errorf("config: min version %x, server name %q, %d certificates, insecure %v", cfg.MinVersion, cfg.ServerName, len(cfg.Certificates), cfg.InsecureSkipVerify)
	}
	if _, err := ca.cert.Verify(x509.VerifyOptions{Roots: cfg.RootCAs}); err != nil {
		t.Errorf("RootCAs do not hold the hub ca: %v", err)
	}
	if !id.NotAfter().Equal(notAfter) {
		t.Errorf("NotAfter = %s, want %s", id.NotAfter(), notAfter)
	}

	other := newTestIdentity(t, ca, "prod-2", notAfter)
	tests := []struct {
		name string
		id   Identity
	}{
		{name: "key of another identity", id: Identity{KeyPEM: other.KeyPEM, CertPEM: id.CertPEM, CAPEM: id.CAPEM}},
		{name: "no certificate", id: Identity{KeyPEM: id.KeyPEM, CAPEM: id.CAPEM}},
		{name: "no ca", id: Identity{KeyPEM: id.KeyPEM, CertPEM: id.CertPEM}},
		{name: "ca is not PEM", id: Identity{KeyPEM: id.KeyPEM, CertPEM: id.CertPEM, CAPEM: []byte("ca")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.id.TLSConfig("hub.example")
			if err == nil {
				t.Fatal("want error")
			}
			if strings.Contains(err.Error(), string(id.KeyPEM[40:80])) || strings.Contains(err.Error(), string(other.KeyPEM[40:80])) {
				t.Errorf("error %q quotes a key", err)
			}
		})
	}
	if got := (&Identity{}).NotAfter(); !got.IsZero() {
		t.Errorf("NotAfter without certificate = %s, want zero", got)
	}
}

func TestIdentityNeverPrintsKey(t *testing.T) {
	ca := newTestCA(t)
	id := newTestIdentity(t, ca, "prod-1", time.Now().Add(time.Hour))
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "%v %+v %s %#v %v %+v", id, id, id, id, *id, *id)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("identity", "id", id)
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("identity", "id", *id)
	if bytes.Contains(buf.Bytes(), []byte("PRIVATE KEY")) || bytes.Contains(buf.Bytes(), id.KeyPEM[40:80]) {
		t.Errorf("key printed: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "prod-1") {
		t.Errorf("cluster missing from output: %s", buf.String())
	}
}
