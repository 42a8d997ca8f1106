package hubclient

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// capsHub is a hub that welcomes the agent and records the capabilities it reports.
type capsHub struct {
	flotillav1.UnimplementedAgentServiceServer
	mu   sync.Mutex
	seen []*flotillav1.Capabilities // Hello's first, then each Capabilities message
}

func (h *capsHub) Connect(stream flotillav1.AgentService_ConnectServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h.record(first.GetHello().GetCapabilities())
	if err := stream.Send(&flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Welcome{Welcome: &flotillav1.Welcome{Cluster: "c1"}}}); err != nil {
		return err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		if c := m.GetCapabilities(); c != nil {
			h.record(c)
		}
	}
}

func (h *capsHub) record(c *flotillav1.Capabilities) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, c)
}

func (h *capsHub) reported() []*flotillav1.Capabilities {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen)
}

// TestCapabilitiesInHelloAndOnChange: Hello carries the cluster's capabilities, and a check
// that finds them changed sends them again.
func TestCapabilitiesInHelloAndOnChange(t *testing.T) {
	serving, clientTLS := testTLS(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hub := &capsHub{}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serving}, MinVersion: tls.VersionTLS13})))
	flotillav1.RegisterAgentServiceServer(gs, hub)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	var mu sync.Mutex
	current := apply.Capabilities{KubeVersion: "v1.33.0", APIVersions: []string{"apps/v1", "v1"}}
	c := New(Config{
		Addrs: []string{lis.Addr().String()},
		TLS: func(serverName string) (*tls.Config, error) {
			cfg := clientTLS.Clone()
			cfg.ServerName = serverName
			return cfg, nil
		},
		Heartbeat: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Controller: nopController{},
		Capabilities: func(context.Context) (apply.Capabilities, error) {
			mu.Lock()
			defer mu.Unlock()
			return current, nil
		},
		CapabilitiesEvery: 20 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	testwait.Until(t, 10*time.Second, "Hello with the capabilities", func() bool { return len(hub.reported()) > 0 })
	if got := hub.reported()[0]; got.GetKubeVersion() != "v1.33.0" || !slices.Equal(got.GetApiVersions(), []string{"apps/v1", "v1"}) {
		t.Fatalf("Hello carried %v", got)
	}
	mu.Lock()
	current = apply.Capabilities{KubeVersion: "v1.33.0", APIVersions: []string{"apps/v1", "monitoring.coreos.com/v1", "v1"}}
	mu.Unlock()
	testwait.Until(t, 10*time.Second, "the changed capabilities sent", func() bool {
		r := hub.reported()
		return slices.Contains(r[len(r)-1].GetApiVersions(), "monitoring.coreos.com/v1")
	})
	if n := len(hub.reported()); n != 2 {
		t.Errorf("%d reports, want Hello's and one change", n)
	}
}
