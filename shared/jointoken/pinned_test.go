package jointoken

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCert(t *testing.T, tmpl *x509.Certificate, parent *testCert) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: cert, key: key}
}

func newTestCA(t *testing.T, name string) *testCert {
	return newTestCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, nil)
}

func newTestLeaf(t *testing.T, ca *testCert, usage x509.ExtKeyUsage) *testCert {
	return newTestCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "hub"},
		DNSNames:    []string{"hub.example"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}, ca)
}

func TestVerifyPinned(t *testing.T) {
	ca := newTestCA(t, "hub ca")
	other := newTestCA(t, "other ca")
	leaf := newTestLeaf(t, ca, x509.ExtKeyUsageServerAuth)
	foreignLeaf := newTestLeaf(t, other, x509.ExtKeyUsageServerAuth)
	clientLeaf := newTestLeaf(t, ca, x509.ExtKeyUsageClientAuth)
	fp := Fingerprint(ca.cert.Raw)

	tests := []struct {
		name       string
		chain      []*x509.Certificate
		fp         string
		serverName string
		wantErr    error // nil: success; errAny: some error
	}{
		{name: "pinned ca in chain", chain: []*x509.Certificate{leaf.cert, ca.cert}, fp: fp, serverName: "hub.example"},
		{name: "ip address", chain: []*x509.Certificate{leaf.cert, ca.cert}, fp: fp, serverName: "127.0.0.1"},
		{name: "wrong fingerprint", chain: []*x509.Certificate{leaf.cert, ca.cert}, fp: Fingerprint(other.cert.Raw), serverName: "hub.example", wantErr: ErrNoPinnedCA},
		{name: "ca not presented", chain: []*x509.Certificate{leaf.cert}, fp: fp, serverName: "hub.example", wantErr: ErrNoPinnedCA},
		{name: "wrong server name", chain: []*x509.Certificate{leaf.cert, ca.cert}, fp: fp, serverName: "evil.example", wantErr: errAny},
		{name: "leaf from another ca next to the pinned one", chain: []*x509.Certificate{foreignLeaf.cert, ca.cert}, fp: fp, serverName: "hub.example", wantErr: errAny},
		{name: "client certificate as server", chain: []*x509.Certificate{clientLeaf.cert, ca.cert}, fp: fp, serverName: "hub.example", wantErr: errAny},
		{name: "empty chain", fp: fp, serverName: "hub.example", wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyPinned(tt.chain, tt.fp, tt.serverName)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("want success, got %v", err)
			case tt.wantErr != nil && err == nil:
				t.Fatal("want error, got success")
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("error %v: want %v", err, tt.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")

// TestPinnedTLSConfigHandshake runs real handshakes in memory: right pin, wrong pin and a
// malformed pin.
func TestPinnedTLSConfigHandshake(t *testing.T) {
	ca := newTestCA(t, "hub ca")
	leaf := newTestLeaf(t, ca, x509.ExtKeyUsageServerAuth)
	serverCfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{{
			Certificate: [][]byte{leaf.cert.Raw, ca.cert.Raw},
			PrivateKey:  leaf.key,
		}},
	}
	tests := []struct {
		name    string
		fp      string
		wantErr bool
	}{
		{name: "right pin", fp: Fingerprint(ca.cert.Raw)},
		{name: "upper-case pin", fp: strings.ToUpper(Fingerprint(ca.cert.Raw))},
		{name: "wrong pin", fp: Fingerprint(leaf.cert.Raw[1:]), wantErr: true},
		{name: "malformed pin", fp: "sha256:xyz", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cc, sc := net.Pipe()
			defer cc.Close()
			defer sc.Close()
			srvErr := make(chan error, 1)
			go func() {
				srvErr <- tls.Server(sc, serverCfg).HandshakeContext(ctx)
				sc.Close()
			}()
			client := tls.Client(cc, PinnedTLSConfig(tt.fp, "hub.example"))
			err := client.HandshakeContext(ctx)
			cc.Close()
			<-srvErr
			if tt.wantErr != (err != nil) {
				t.Fatalf("handshake error %v, want error: %v", err, tt.wantErr)
			}
			if err == nil && client.ConnectionState().Version != tls.VersionTLS13 {
				t.Errorf("negotiated %x, want TLS 1.3", client.ConnectionState().Version)
			}
		})
	}
}
