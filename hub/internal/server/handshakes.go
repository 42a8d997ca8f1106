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
// and about a millisecond of CPU: 256 slots let a hub welcome about 2,500 agents a second
// 100 ms away.
const DefaultMaxHandshakes = 256

// handshakes bounds the TLS handshakes that run at once: in a reconnect storm a handshake
// beyond the bound waits for a slot without being runnable, and operators' connections do not
// wait behind the agents' at all.
//
// Operators and hub replicas skip the queue: their ClientHello offers the ALPN protocol
// opclient.PriorityALPN beside "h2" (the hub always chooses "h2"). The ALPN offer is a
// request for priority, not a credential: what a connection may then do is decided by its
// certificate, as for every connection.
//
// What it does not do (BENCHMARKS.md, 10,000 agents): make an operator's `flotilla status`
// of the whole fleet answer faster in the storm. The hub's goroutines waiting for a CPU went
// from 3,856 at most to 933, the call's p99 stayed within the noise (0.89–1.11 s): the
// handshakes were about 6 % of the hub's CPU, and the call waits behind agents' work that
// follows their handshakes.
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
// for priority. It changes nothing of the configuration. crypto/tls asks it once per
// handshake (a TLS 1.3 retry's second ClientHello does not ask again).
func (h *handshakes) admit(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if slices.Contains(hello.SupportedProtos, opclient.PriorityALPN) {
		return nil, nil
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
