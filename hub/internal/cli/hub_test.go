package cli

import (
	"crypto/tls"
	"path/filepath"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/hubtest"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
)

// testHub is a real hub running in the test's process (hubtest) and the operator config the
// CLI reads (config), as the hub writes DATA_DIR/admin.yaml.
type testHub struct {
	*hubtest.Hub
	config string
}

// startHub starts a hub for t (opts adjust its server.Config), stopped when t ends, and writes
// the operator config for it.
func startHub(t testing.TB, opts ...func(*server.Config)) *testHub {
	t.Helper()
	h := &testHub{Hub: hubtest.Start(t, opts...), config: filepath.Join(t.TempDir(), "admin.yaml")}
	if err := WriteConfig(h.config, &Config{Hub: h.Addr, CA: string(h.CA.CertPEM()), Cert: string(h.AdminCert), Key: string(h.AdminKey)}); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestStatusSkipsTheHandshakeQueue: the CLI's connection asks for priority
// (opclient.PriorityALPN), so the hub answers an operator while agents' TLS handshakes fill
// every slot it has for them (server.Config.MaxHandshakes), as in a reconnect storm.
func TestStatusSkipsTheHandshakeQueue(t *testing.T) {
	h := startHub(t, func(c *server.Config) { c.MaxHandshakes = 1 })
	// An agent's handshake takes the only slot and does not finish before the test ends: the
	// hub has done its part and asked for a certificate, which the client withholds.
	held, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		conn, err := tls.Dial("tcp", h.Addr, &tls.Config{RootCAs: h.CA.Pool(), ServerName: "127.0.0.1",
			MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"},
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				close(held)
				<-release
				return &tls.Certificate{}, nil
			}})
		if err == nil {
			conn.Close()
		}
		done <- err
	}()
	t.Cleanup(func() {
		close(release)
		<-done
	})
	<-held

	if r := h.flotilla(t, "status", "-o", "json"); r.err != nil {
		t.Fatalf("flotilla status while an agent's handshake holds the only slot: %v\n%s", r.err, r.stderr)
	}
}
