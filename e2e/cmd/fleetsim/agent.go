package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/chunks"
	"github.com/flotilla-dev/flotilla/shared/logging"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// What agents answer a bundle with.
const (
	ModeAck    = "ack"
	ModeNack   = "nack"
	ModeSilent = "silent"
)

func validMode(m string) bool { return m == ModeAck || m == ModeNack || m == ModeSilent }

// nackMessage is the error a simulated agent NACKs with.
const nackMessage = "fleetsim: simulated apply failure"

// maxBundleSize bounds a decompressed bundle, as the agent does.
const maxBundleSize = 30 << 20

// agent is one simulated agent: its identity and the apps it holds across sessions.
type agent struct {
	name string
	tls  *tls.Config
	sim  *fleet

	mu   sync.Mutex
	addr string
	held map[string]*flotillav1.HeldApp
}

// run keeps a session to the hub until ctx ends, reconnecting after a short jittered pause.
func (a *agent) run(ctx context.Context, first chan struct{}) {
	for ctx.Err() == nil {
		err := a.session(ctx, first)
		first = nil
		if err != nil && ctx.Err() == nil && !errors.Is(err, errStorm) && !errors.Is(err, errFlap) {
			a.sim.log.Info("session ended", logging.KeyCluster, a.name, logging.Err(err))
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50+rand.IntN(200)) * time.Millisecond):
		}
	}
}

// session is one stream: Hello, Welcome, then bundles in, ACKs, statuses and heartbeats out.
// It ends with the stream, with a storm, or after --flap-every. first, when set, is closed
// once the session is welcomed or failed.
func (a *agent) session(ctx context.Context, first chan struct{}) error {
	defer func() {
		if first != nil {
			close(first)
		}
	}()
	// The stream lives in the group's context: the first of its goroutines to end ends it.
	g, ctx := errgroup.WithContext(ctx)
	storm := a.sim.stormChan()
	start := time.Now()
	a.mu.Lock()
	addr := a.addr
	hello := &flotillav1.Hello{AgentVersion: version.Version, ProtocolVersion: version.Protocol}
	for _, h := range a.held {
		hello.Apps = append(hello.Apps, h)
	}
	a.mu.Unlock()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	cfg := a.tls.Clone()
	cfg.ServerName = host
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		return err
	}
	defer conn.Close()
	stream, err := flotillav1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Hello{Hello: hello}}); err != nil {
		return err
	}
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	if r := m.GetRedirect(); r != nil {
		a.mu.Lock()
		a.addr = r.Address
		a.mu.Unlock()
		return nil
	}
	w := m.GetWelcome()
	if w == nil {
		return errors.New("hub did not answer Hello with Welcome")
	}
	wait := time.Since(start)
	a.sim.rec.add(func(r *recorder) { r.welcome = append(r.welcome, wait); r.welcos++; r.connected++ })
	defer a.sim.rec.add(func(r *recorder) { r.connected-- })
	if first != nil {
		close(first)
		first = nil
	}
	s := &stream1{stream: stream}
	heartbeat := time.Duration(max(w.HeartbeatSeconds, 1)) * time.Second
	if err := a.reportHeld(s); err != nil {
		return err
	}
	g.Go(func() error { return a.receive(ctx, s) })
	g.Go(func() error { return a.beat(ctx, s, heartbeat) })
	g.Go(func() error {
		var flap <-chan time.Time
		if a.sim.opts.FlapEvery > 0 {
			flap = time.After(a.sim.opts.FlapEvery)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-storm:
			return errStorm
		case <-flap:
			return errFlap
		}
	})
	return g.Wait()
}

var (
	errStorm = errors.New("reconnect storm")
	errFlap  = errors.New("flap")
)

// stream1 serialises sends on one stream.
type stream1 struct {
	mu     sync.Mutex
	stream flotillav1.AgentService_ConnectClient
}

func (s *stream1) send(msgs ...*flotillav1.AgentMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range msgs {
		if err := s.stream.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// reportHeld reports every app held Synced and Healthy, as an agent does on each new stream.
func (a *agent) reportHeld(s *stream1) error {
	if a.sim.mode() == ModeSilent {
		return nil
	}
	a.mu.Lock()
	var msgs []*flotillav1.AgentMessage
	for _, h := range a.held {
		msgs = append(msgs, &flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: syncedStatus(h, time.Now())}})
	}
	a.mu.Unlock()
	return s.send(msgs...)
}

func syncedStatus(h *flotillav1.HeldApp, at time.Time) *flotillav1.AppStatus {
	return &flotillav1.AppStatus{
		App: h.App, Sync: "Synced", Health: "Healthy", Generation: h.Generation, AppliedRevision: h.Revision,
		AppliedDigest: h.Digest, HealthyRevision: h.Revision, AppliedAtUnixMs: at.UnixMilli(),
		Message: fmt.Sprintf("simulated: healthy since %s", at.UTC().Format(time.RFC3339)),
	}
}

func (a *agent) beat(ctx context.Context, s *stream1, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if a.sim.mode() == ModeSilent {
			continue
		}
		if err := s.send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Heartbeat{
			Heartbeat: &flotillav1.Heartbeat{SentUnixMs: time.Now().UnixMilli()},
		}}); err != nil {
			return err
		}
	}
}

func (a *agent) receive(ctx context.Context, s *stream1) error {
	asm := chunks.New(a.sim.log, maxBundleSize)
	for {
		m, err := s.stream.Recv()
		if err != nil {
			return err
		}
		switch m := m.Msg.(type) {
		case *flotillav1.HubMessage_Desired:
			head, _, err := asm.Add(m.Desired)
			if err != nil {
				if err := a.nack(s, m.Desired, err.Error()); err != nil {
					return err
				}
				continue
			}
			if head != nil {
				if err := a.applied(ctx, s, head); err != nil {
					return err
				}
			}
		case *flotillav1.HubMessage_Remove:
			a.mu.Lock()
			delete(a.held, m.Remove.App)
			a.mu.Unlock()
		}
	}
}

// applied answers a verified bundle after the simulated apply delay, as the mode says.
func (a *agent) applied(ctx context.Context, s *stream1, d *flotillav1.Desired) error {
	received := time.Now()
	a.sim.rec.add(func(r *recorder) { r.bundles++ })
	if delay := a.sim.opts.ApplyDelay; delay > 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
	switch a.sim.mode() {
	case ModeSilent:
		return nil
	case ModeNack:
		return a.nack(s, d, nackMessage)
	}
	h := &flotillav1.HeldApp{App: d.App, Generation: d.Generation, Revision: d.Revision, Digest: d.Digest}
	a.mu.Lock()
	a.held[d.App] = h
	a.mu.Unlock()
	err := s.send(
		&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Ack{Ack: &flotillav1.Ack{
			App: d.App, Generation: d.Generation, Revision: d.Revision, Digest: d.Digest,
		}}},
		&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: syncedStatus(h, time.Now())}})
	if err != nil {
		return err
	}
	from := a.sim.marker()
	if from.IsZero() && d.CommitTimeUnixMs > 0 {
		from = time.UnixMilli(d.CommitTimeUnixMs)
	}
	if from.IsZero() || from.After(received) {
		from = received
	}
	lat := time.Since(from)
	a.sim.rec.add(func(r *recorder) { r.acks++; r.latency = append(r.latency, lat) })
	return nil
}

func (a *agent) nack(s *stream1, d *flotillav1.Desired, why string) error {
	a.sim.rec.add(func(r *recorder) { r.nacks++ })
	st := &flotillav1.AppStatus{App: d.App, Sync: "OutOfSync", Health: "Degraded", Generation: d.Generation, Message: why}
	a.mu.Lock()
	if h := a.held[d.App]; h != nil { // the revision applied before stays
		st.AppliedRevision, st.AppliedDigest, st.HealthyRevision = h.Revision, h.Digest, h.Revision
	}
	a.mu.Unlock()
	return s.send(
		&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Nack{Nack: &flotillav1.Nack{App: d.App, Generation: d.Generation, Error: why}}},
		&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: st}})
}
