package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/testwait"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// TestAgentHandshakesQueueAtTheGate: with the gate's only slot taken, an agent's handshake
// (its ClientHello offers version.AgentALPN) waits in the queue until the slot is free, while
// an operator's handshake, and an agent's that does not say it is one, go ahead; then a crowd
// of agents all connect through a gate of one slot, and every slot is given back.
func TestAgentHandshakesQueueAtTheGate(t *testing.T) {
	h, srv := newHubUnderTest(t, RateLimits{})
	srv.gate = newHandshakeGate(1, nil)
	gs := srv.GRPCServer()
	go func() { _ = gs.Serve(h.lis) }()
	t.Cleanup(gs.Stop)
	const crowd = 20
	for i := range crowd {
		h.register(t, fmt.Sprintf("c%d", i))
	}

	srv.gate.slots <- struct{}{} // a handshake computing, as far as the gate knows
	queued := make(chan error, 1)
	go func() { queued <- connectAgent(h, h.agentCert(t, "c0"), []string{version.AgentALPN}) }()
	testwait.For(t, 30*time.Second, "the agent's handshake queued", func(context.Context) (bool, error) {
		return srv.gate.queued.Load() == 1, nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t)))
	if _, err := op.ListClusters(ctx, &flotillav1.ListClustersRequest{}); err != nil {
		t.Fatalf("operator call while agents queue: %v", err)
	}
	if err := connectAgent(h, h.agentCert(t, "c1"), nil); err != nil {
		t.Fatalf("an agent that does not offer %s: %v", version.AgentALPN, err)
	}
	select {
	case err := <-queued:
		t.Fatalf("the queued agent's connect ended (%v) while the gate's slot was taken", err)
	default:
	}

	<-srv.gate.slots
	if err := <-queued; err != nil {
		t.Fatalf("the queued agent, once a slot was free: %v", err)
	}

	var wg sync.WaitGroup
	errs := make(chan error, crowd)
	for i := range crowd {
		wg.Go(func() { errs <- connectAgent(h, h.agentCert(t, fmt.Sprintf("c%d", i)), []string{version.AgentALPN}) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("agent of the crowd: %v", err)
		}
	}
	if n, q := len(srv.gate.slots), srv.gate.queued.Load(); n != 0 || q != 0 {
		t.Errorf("after the handshakes: %d slots held, %d queued; want none", n, q)
	}
}

// connectAgent dials the hub as an agent with cert, offering protos by ALPN besides h2, and
// reads its Welcome.
func connectAgent(h *hubUnderTest, cert *tls.Certificate, protos []string) error {
	return connectAgentVia(h, cert, protos, func(c net.Conn) net.Conn { return c })
}

// connectAgentVia is connectAgent over wrap of the connection.
func connectAgentVia(h *hubUnderTest, cert *tls.Certificate, protos []string, wrap func(net.Conn) net.Conn) error {
	cfg := &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS13,
		Certificates: []tls.Certificate{*cert}, NextProtos: protos}
	conn, err := grpc.NewClient("passthrough:///localhost",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			c, err := h.lis.DialContext(ctx)
			if err != nil {
				return nil, err
			}
			return wrap(c), nil
		}),
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := flotillav1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Hello{Hello: &flotillav1.Hello{
		AgentVersion: "test", ProtocolVersion: version.Protocol,
	}}}); err != nil {
		return err
	}
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	if m.GetWelcome() == nil {
		return fmt.Errorf("first message %v, want Welcome", m)
	}
	return nil
}

// TestAHandshakeWaitingForTheNetworkHoldsNoSlot: an agent whose second flight is slow to come
// (a distant cluster) holds no slot while the hub waits for it, so a gate of one slot still
// lets another agent through at once.
func TestAHandshakeWaitingForTheNetworkHoldsNoSlot(t *testing.T) {
	h, srv := newHubUnderTest(t, RateLimits{})
	var mu sync.Mutex
	var timedOut int
	srv.gate = newHandshakeGate(1, func(_ time.Duration, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		if !ok {
			timedOut++
		}
	})
	gs := srv.GRPCServer()
	go func() { _ = gs.Serve(h.lis) }()
	t.Cleanup(gs.Stop)
	h.register(t, "far")
	h.register(t, "near")

	paused, resume := make(chan struct{}), make(chan struct{})
	slow := make(chan error, 1)
	go func() {
		slow <- connectAgentVia(h, h.agentCert(t, "far"), []string{version.AgentALPN}, func(c net.Conn) net.Conn {
			return &pausingConn{Conn: c, at: 2, paused: paused, resume: resume}
		})
	}()
	<-paused // the far agent's ClientHello is answered; its second flight is held back
	if err := connectAgent(h, h.agentCert(t, "near"), []string{version.AgentALPN}); err != nil {
		t.Fatalf("near agent: %v", err)
	}
	close(resume)
	if err := <-slow; err != nil {
		t.Fatalf("far agent: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if timedOut != 0 {
		t.Errorf("%d handshakes waited out the gate: a handshake waiting for the network held the slot", timedOut)
	}
}

// pausingConn holds its at-th Write until resume is closed, saying so on paused.
type pausingConn struct {
	net.Conn
	at             int
	writes         int
	paused, resume chan struct{}
}

func (c *pausingConn) Write(b []byte) (int, error) {
	c.writes++
	if c.writes == c.at {
		close(c.paused)
		<-c.resume
	}
	return c.Conn.Write(b)
}
