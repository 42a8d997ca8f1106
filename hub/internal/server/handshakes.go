package server

import (
	"context"
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/credentials"

	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
)

// DefaultMaxHandshakes bounds the TLS handshakes of agents and other callers the hub runs at
// once (Config.MaxHandshakes). A handshake holds its slot for one round trip to the caller
// and about a millisecond of CPU: 256 slots let a hub welcome thousands of agents a second
// over a WAN and keep at most a few hundred of their goroutines waiting for a CPU on a small
// one.
const DefaultMaxHandshakes = 256

// handshakes bounds the TLS handshakes that run at once, so that a reconnect storm does not
// put every other connection's work behind thousands of agents'.
//
// Go runs a goroutine woken by the network after every other runnable one. In a storm of
// 10,000 agents, thousands of handshakes were runnable at once (BENCHMARKS.md), and an
// operator's `flotilla status` waited for them at each of the several times its own
// connection woke up: over a second for an answer the hub computes in milliseconds. A
// handshake beyond the bound now waits for a slot without being runnable.
//
// Operators and hub replicas skip the queue: their ClientHello offers the ALPN protocol
// opclient.PriorityALPN beside "h2" (the hub always chooses "h2"). The ALPN offer is a
// request for priority, not a credential: what a connection may then do is decided by its
// certificate, as for every connection.
type handshakes struct {
	slots chan struct{}
	// waiting counts the handshakes waiting for a slot (flotilla_hub_handshakes_waiting).
	waiting atomic.Int64
	// held: the raw connections whose handshake holds a slot, until it ends.
	mu   sync.Mutex
	held map[net.Conn]bool
}

func newHandshakes(limit int) *handshakes {
	if limit <= 0 {
		limit = DefaultMaxHandshakes
	}
	return &handshakes{slots: make(chan struct{}, limit), held: map[net.Conn]bool{}}
}

// admit is the TLS server's GetConfigForClient: it runs once the caller's ClientHello has
// arrived, before any of the handshake's own work, and waits for a slot unless the caller asks
// for priority. It changes nothing of the configuration.
func (h *handshakes) admit(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if slices.Contains(hello.SupportedProtos, opclient.PriorityALPN) || h.holds(hello.Conn) {
		return nil, nil // priority, or a second ClientHello of a handshake that holds a slot
	}
	select {
	case h.slots <- struct{}{}:
	default:
		h.waiting.Add(1)
		select {
		case h.slots <- struct{}{}:
			h.waiting.Add(-1)
		case <-hello.Context().Done():
			h.waiting.Add(-1)
			return nil, context.Cause(hello.Context())
		}
	}
	h.mu.Lock()
	h.held[hello.Conn] = true
	h.mu.Unlock()
	return nil, nil
}

// holds reports whether conn's handshake holds a slot.
func (h *handshakes) holds(conn net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held[conn]
}

// done frees the slot conn's handshake held, if it held one.
func (h *handshakes) done(conn net.Conn) {
	h.mu.Lock()
	held := h.held[conn]
	delete(h.held, conn)
	h.mu.Unlock()
	if held {
		<-h.slots
	}
}

// boundedCreds are the server's TLS credentials with its handshakes bounded by a handshakes.
type boundedCreds struct {
	credentials.TransportCredentials
	h *handshakes
}

func (c boundedCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	defer c.h.done(conn)
	return c.TransportCredentials.ServerHandshake(conn)
}

func (c boundedCreds) Clone() credentials.TransportCredentials {
	return boundedCreds{TransportCredentials: c.TransportCredentials.Clone(), h: c.h}
}
