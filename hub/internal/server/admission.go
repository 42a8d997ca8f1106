package server

import (
	"crypto/tls"
	"net"
	"runtime"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/flotilla-dev/flotilla/shared/version"
)

// When every agent of a fleet reconnects at once (a hub restart, a network partition that
// heals), the hub has thousands of TLS handshakes to do, a few milliseconds of CPU each. Left
// alone, a thousand of them can be runnable at once, and Go's scheduler shares the CPU among
// them all: an operator's `flotilla status` then waits behind them at every step of its call.
//
// The handshake gate lets agents' handshakes use the CPU a few at a time. A handshake holds
// one of its slots while it computes (the key exchange and signature after the ClientHello,
// the checks after the client's certificate) and gives it back while it waits for the
// network, so a distant agent's round trips cost no slot. The others wait for a slot in their
// order of arrival, not runnable: the fleet reconnects as fast as the CPU allows, and what
// else the hub does still gets its turn.
//
// An agent says it is one in its ClientHello (version.AgentALPN among its ALPN protocols), read
// before any costly step. Operators, replicas and enrolments are never queued; neither is an
// agent that does not say so (an older one).

// handshakeSlotWait bounds a wait for a slot: past it the handshake goes on without one, so
// that no client waits out its own handshake timeout in the queue.
const handshakeSlotWait = 10 * time.Second

// handshakeGate lets at most cap(slots) agents' handshakes compute at once.
type handshakeGate struct {
	slots  chan struct{}
	wait   time.Duration
	queued atomic.Int64                   // handshakes waiting for a slot now
	waited func(d time.Duration, ok bool) // observes each wait (metrics); may be nil
}

// newHandshakeGate lets n handshakes compute at once; 0 means two per CPU the hub may use.
func newHandshakeGate(n int, waited func(time.Duration, bool)) *handshakeGate {
	if n <= 0 {
		n = 2 * runtime.GOMAXPROCS(0)
	}
	return &handshakeGate{slots: make(chan struct{}, n), wait: handshakeSlotWait, waited: waited}
}

// acquire waits for a slot; false when none came within g.wait.
func (g *handshakeGate) acquire() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
	}
	g.queued.Add(1)
	defer g.queued.Add(-1)
	start := time.Now()
	t := time.NewTimer(g.wait)
	defer t.Stop()
	ok := false
	select {
	case g.slots <- struct{}{}:
		ok = true
	case <-t.C:
	}
	if g.waited != nil {
		g.waited(time.Since(start), ok)
	}
	return ok
}

func (g *handshakeGate) release() { <-g.slots }

// admit is tls.Config.GetConfigForClient: an agent's handshake takes a slot before the server
// computes its first flight. The configuration stays as it is.
func (g *handshakeGate) admit(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if !slices.Contains(hello.SupportedProtos, version.AgentALPN) {
		return nil, nil
	}
	var c *gatedConn
	switch conn := hello.Conn.(type) {
	case *gatedConn:
		c = conn
	case gatedSysConn:
		c = conn.gatedConn
	default:
		return nil, nil // not through gatedCreds
	}
	c.agent = true
	c.holding = g.acquire()
	return nil, nil
}

// gatedConn is a connection in its server handshake: an agent's handshake gives its slot back
// while it reads from the network and takes one again before it computes on what it read.
// Once the handshake is over it passes everything through. Only the handshake's goroutine
// touches holding and agent, and only before ServerHandshake returns.
type gatedConn struct {
	net.Conn
	gate    *handshakeGate
	agent   bool // the ClientHello offered version.AgentALPN
	holding bool // a slot is held
	over    bool // the handshake has ended
}

func (c *gatedConn) Read(b []byte) (int, error) {
	if c.over || !c.agent {
		return c.Conn.Read(b)
	}
	if c.holding {
		c.gate.release()
		c.holding = false
	}
	n, err := c.Conn.Read(b)
	if err == nil {
		c.holding = c.gate.acquire()
	}
	return n, err
}

// gatedSysConn is a gatedConn over a connection with a file descriptor (TCP), which it
// exposes as the connection would: gRPC reads socket options through it.
type gatedSysConn struct {
	*gatedConn
	sys syscall.Conn
}

func (c gatedSysConn) SyscallConn() (syscall.RawConn, error) { return c.sys.SyscallConn() }

// end gives back the slot the handshake holds, if any.
func (c *gatedConn) end() {
	if c.holding {
		c.gate.release()
		c.holding = false
	}
	c.over = true
}

// gatedCreds are the hub's transport credentials with the handshake gate.
type gatedCreds struct {
	credentials.TransportCredentials
	gate *handshakeGate
}

func (c gatedCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn := &gatedConn{Conn: raw, gate: c.gate}
	defer conn.end()
	if sys, ok := raw.(syscall.Conn); ok {
		return c.TransportCredentials.ServerHandshake(gatedSysConn{gatedConn: conn, sys: sys})
	}
	return c.TransportCredentials.ServerHandshake(conn)
}

func (c gatedCreds) Clone() credentials.TransportCredentials {
	return gatedCreds{TransportCredentials: c.TransportCredentials.Clone(), gate: c.gate}
}
