package server

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/metrics"
	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestHandshakesBoundedOperatorsFirst: the hub runs at most MaxHandshakes TLS handshakes at
// once. One beyond waits for a slot (counted in flotilla_hub_handshakes_waiting); an operator's, which offers
// opclient.PriorityALPN, does not wait; the waiting one goes on once the slot is free.
func TestHandshakesBoundedOperatorsFirst(t *testing.T) {
	h, built := newHubUnderTest(t, RateLimits{})
	cfg := built.cfg
	cfg.MaxHandshakes, cfg.Metrics = 1, metrics.New(nil)
	srv := New(cfg)
	h.serve(t, srv)

	// The first holds the only slot: its client waits, before it answers the hub's request
	// for a client certificate, until released.
	release := make(chan struct{})
	first := h.handshake(t, &tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		<-release
		return &tls.Certificate{}, nil
	}})
	testwait.Until(t, 10*time.Second, "the first handshake holding the only slot", func() bool { return len(srv.handshakes.slots) == 1 })
	second := h.handshake(t, &tls.Config{})
	testwait.Until(t, 10*time.Second, "the second handshake waiting for a slot", func() bool { return srv.handshakes.waiting.Load() == 1 })
	if got := scrape(t, cfg.Metrics, "flotilla_hub_handshakes_waiting"); got != "1" {
		t.Errorf("flotilla_hub_handshakes_waiting = %q, want 1", got)
	}

	if err := <-h.handshake(t, &tls.Config{NextProtos: []string{opclient.PriorityALPN}}); err != nil {
		t.Fatalf("operator's handshake: %v", err)
	}
	select {
	case err := <-second:
		t.Fatalf("the second handshake ended (%v) while the first held the only slot", err)
	default:
	}

	close(release)
	for name, c := range map[string]<-chan error{"first": first, "second": second} {
		if err := <-c; err != nil {
			t.Fatalf("%s handshake: %v", name, err)
		}
	}
	testwait.Until(t, 10*time.Second, "every slot free", func() bool {
		return len(srv.handshakes.slots) == 0 && srv.handshakes.waiting.Load() == 0
	})
}

// scrape reads one metric's value from m's /metrics ("" when it is not there).
func scrape(t *testing.T, m *metrics.Hub, name string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}

// handshake runs a TLS handshake with the hub, as cfg says (trusting the hub's CA), and
// sends its outcome on the channel it returns; the connection is closed when t ends.
func (h *hubUnderTest) handshake(t *testing.T, cfg *tls.Config) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	raw, err := h.lis.DialContext(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cfg = cfg.Clone()
	cfg.RootCAs, cfg.ServerName, cfg.MinVersion = h.ca.Pool(), "localhost", tls.VersionTLS13
	cfg.NextProtos = append(cfg.NextProtos, "h2")
	conn := tls.Client(raw, cfg)
	t.Cleanup(func() { conn.Close() })
	out := make(chan error, 1)
	go func() {
		defer cancel()
		out <- conn.HandshakeContext(ctx)
	}()
	return out
}
