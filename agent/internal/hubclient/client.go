// Package hubclient is the agent's gRPC edge: enrolment with a join token, and the one
// long-lived stream to the hub (Hello, Desired/Remove in; Ack/Nack/Status/Heartbeat out),
// reconnecting with jittered backoff. Proto types stop here: the syncer sees its own types.
package hubclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/syncer"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/chunks"
	"github.com/flotilla-dev/flotilla/shared/logging"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// MaxMessageSize bounds every gRPC message in either direction.
const MaxMessageSize = 4 << 20

// maxBundleSize bounds a decompressed bundle: the agent keeps the applied and the last healthy
// bundle in its state Secrets, which hold at most 64 MiB.
const maxBundleSize = 30 << 20

// maxQueued bounds the ACK/NACK queue kept while the hub is unreachable; statuses are
// coalesced per app and need no bound beyond the number of apps.
const maxQueued = 1024

// Controller is what the client feeds with the hub's messages: the syncer's Controller.
type Controller interface {
	Held() []syncer.Held
	SetDesired(d *syncer.Desired)
	Remove(app string, generation uint64)
	ReportAll()
}

var _ Controller = (*syncer.Controller)(nil)

// Config wires the client.
type Config struct {
	// Addrs are the hub addresses, host:port; the client tries them in turn.
	Addrs []string
	// TLS returns the client TLS config for a server name; called for every connection so a
	// rotated certificate is picked up.
	TLS       func(serverName string) (*tls.Config, error)
	Heartbeat time.Duration
	Logger    *slog.Logger
	// Controller receives the desired states and removals; Run refuses to start without it.
	Controller Controller
	// Outbox is what the client sends (the controller's Reporter); New makes one when nil.
	Outbox *Outbox
	// Capabilities discovers the cluster's Kubernetes version and served APIs, sent in Hello
	// and again when a check every CapabilitiesEvery finds them changed (capabilities.go);
	// nil sends none.
	Capabilities      func(ctx context.Context) (apply.Capabilities, error)
	CapabilitiesEvery time.Duration
}

// Client is the agent's link to the hub: it feeds the Controller and sends the Outbox.
type Client struct {
	cfg  Config
	log  *slog.Logger
	ctrl Controller

	out *Outbox

	chunks *chunks.Assembler // bundles arriving in chunks, per app

	route *route // which hub replica to dial (redirect.go)
	// backOff is time.After, through which Run waits before reconnecting; tests count the
	// back-offs with it.
	backOff func(time.Duration) <-chan time.Time
}

// New returns a client.
func New(cfg Config) *Client {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Outbox == nil {
		cfg.Outbox = NewOutbox()
	}
	if cfg.CapabilitiesEvery <= 0 {
		cfg.CapabilitiesEvery = DefaultCapabilitiesEvery
	}
	return &Client{
		cfg: cfg, log: cfg.Logger, ctrl: cfg.Controller, out: cfg.Outbox,
		chunks: chunks.New(cfg.Logger, maxBundleSize),
		route:  newRoute(cfg.Addrs), backOff: time.After,
	}
}

// Run keeps a stream to the hub open until ctx ends, reconnecting with jittered exponential
// backoff (0.5s doubling to 30s, reset after a stream that lasted a minute, or was welcomed
// and lasted settledStream, or while the replicas converge on the owner: see route). A
// redirect to the replica owning the cluster is followed at once, and so is the next known
// replica after one that cannot be reached, until every address failed in turn.
func (c *Client) Run(ctx context.Context) error {
	if c.ctrl == nil {
		return errors.New("hubclient: no controller")
	}
	backoff := 500 * time.Millisecond
	for {
		addr := c.route.pick()
		start := time.Now()
		err := c.session(ctx, addr)
		if ctx.Err() != nil {
			return nil
		}
		now, wasUp := c.route.ended(addr, err)
		if time.Since(start) > time.Minute || (wasUp && time.Since(start) > settledStream) || c.route.converging() {
			backoff = 500 * time.Millisecond
		}
		if now {
			c.log.Info("hub stream ended; trying the next hub replica at once", logging.KeyAddr, addr, logging.Err(err))
			continue
		}
		wait := time.Duration(float64(backoff) * (0.5 + rand.Float64()))
		c.log.Warn("hub stream ended; reconnecting", logging.KeyAddr, addr, logging.Err(err), logging.KeyRetryIn, wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return nil
		case <-c.backOff(wait):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

func dialOptions(creds credentials.TransportCredentials) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize+64<<10), grpc.MaxCallSendMsgSize(MaxMessageSize)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}
}

func (c *Client) session(ctx context.Context, addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("hub address %q: %w", addr, err)
	}
	tlsCfg, err := c.cfg.TLS(host)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, dialOptions(credentials.NewTLS(tlsCfg))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer c.streamEnded()
	// Discovery first: a stream is opened only when Hello is ready to go.
	hello := &flotillav1.Hello{AgentVersion: version.Version, ProtocolVersion: version.Protocol}
	caps, capsOK := c.discoverCapabilities(ctx)
	if capsOK {
		hello.Capabilities = capabilitiesToProto(caps)
	}
	for _, h := range c.ctrl.Held() {
		hello.Apps = append(hello.Apps, &flotillav1.HeldApp{App: h.App, Generation: h.Generation, Revision: h.Revision, Digest: h.Digest})
	}
	stream, err := flotillav1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Hello{Hello: hello}}); err != nil {
		if errors.Is(err, io.EOF) {
			// The hub ended the stream (it refused this agent, e.g. a revoked cluster): its
			// reason is the status Recv returns.
			_, err = stream.Recv()
		}
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition {
			c.log.Error("hub refused this agent; the last applied state stays", logging.Err(err))
		}
		return hubEnded(ctx, err)
	}
	if r := first.GetRedirect(); r != nil {
		return c.route.redirected(r.Address, r.Epoch, r.Replicas)
	}
	welcome := first.GetWelcome()
	if welcome == nil {
		return errors.New("hub did not answer Hello with Welcome")
	}
	if err := c.route.welcomed(welcome.Epoch, welcome.Replicas); err != nil {
		return err
	}
	heartbeat := c.cfg.Heartbeat
	if welcome.HeartbeatSeconds > 0 {
		heartbeat = time.Duration(welcome.HeartbeatSeconds) * time.Second
	}
	c.log.Info("connected to hub", logging.KeyAddr, addr, logging.KeyCluster, welcome.Cluster, logging.KeyHubVersion, welcome.HubVersion)
	c.ctrl.ReportAll()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.receive(gctx, stream) })
	g.Go(func() error { return c.sendLoop(gctx, stream, heartbeat) })
	g.Go(func() error { return c.watchCapabilities(gctx, caps) })
	return hubEnded(ctx, g.Wait())
}

// errHubEnded is the end of a stream the hub cancelled: it does so when it stops, when the
// cluster moved to another replica or connected again, and when it was revoked.
var errHubEnded = errors.New("the hub ended the stream")

// hubEnded rewords err when the hub cancelled the stream: its status, Canceled "context
// canceled", would read as the agent's own doing.
func hubEnded(ctx context.Context, err error) error {
	if ctx.Err() == nil && status.Code(err) == codes.Canceled {
		return errHubEnded
	}
	return err
}

func (c *Client) receive(ctx context.Context, stream flotillav1.AgentService_ConnectClient) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		switch m := msg.Msg.(type) {
		case *flotillav1.HubMessage_Desired:
			d, err := c.assemble(m.Desired)
			if err != nil {
				c.log.Warn("bundle rejected", logging.KeyApp, m.Desired.App, logging.KeyGeneration, m.Desired.Generation, logging.Err(err))
				c.out.Nack(m.Desired.App, m.Desired.Generation, err.Error())
				continue
			}
			if d != nil {
				c.ctrl.SetDesired(d)
			}
		case *flotillav1.HubMessage_Remove:
			c.ctrl.Remove(m.Remove.App, m.Remove.Generation)
		case *flotillav1.HubMessage_Redirect:
			if err := c.route.redirected(m.Redirect.Address, m.Redirect.Epoch, m.Redirect.Replicas); err != nil {
				return err
			}
		case *flotillav1.HubMessage_Heartbeat, *flotillav1.HubMessage_Welcome:
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// sendLoop drains the outbox: queued ACKs/NACKs first, in order, then the latest status of
// each app; heartbeats keep the stream alive.
func (c *Client) sendLoop(ctx context.Context, stream flotillav1.AgentService_ConnectClient, heartbeat time.Duration) error {
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		for {
			msg := c.out.next()
			if msg == nil {
				break
			}
			if err := stream.Send(msg); err != nil {
				c.out.requeue(msg)
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.out.wake:
		case <-t.C:
			if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Heartbeat{
				Heartbeat: &flotillav1.Heartbeat{SentUnixMs: time.Now().UnixMilli()},
			}}); err != nil {
				return err
			}
		}
	}
}

func statusToProto(s syncer.AppStatus) *flotillav1.AppStatus {
	p := &flotillav1.AppStatus{
		App: s.App, Sync: s.Sync, Health: s.Health, Message: s.Message, Generation: s.Generation,
		AppliedRevision: s.AppliedRevision, AppliedDigest: s.AppliedDigest, HealthyRevision: s.HealthyRevision,
		RolledBackRevision: s.RolledBackRevision,
	}
	if !s.AppliedAt.IsZero() {
		p.AppliedAtUnixMs = s.AppliedAt.UnixMilli()
	}
	for _, d := range s.Drift {
		p.Drift = append(p.Drift, &flotillav1.DriftItem{Object: refToProto(d.Object), Type: d.Type, Diff: d.Diff, Contested: d.Contested})
	}
	for _, r := range s.Resources {
		p.Resources = append(p.Resources, &flotillav1.ResourceStatus{Object: refToProto(r.Object), Health: r.Health, Message: r.Message})
	}
	for _, e := range s.Events {
		p.Events = append(p.Events, &flotillav1.ObjectEvent{Object: refToProto(e.Object), Type: e.Type, Reason: e.Reason, Message: e.Message,
			Count: e.Count, LastSeenUnixMs: e.LastSeen.UnixMilli()})
	}
	fitStatus(p, statusBudget)
	return p
}

func refToProto(r apply.ObjectRef) *flotillav1.ObjectRef {
	return &flotillav1.ObjectRef{Group: r.Group, Version: r.Version, Kind: r.Kind, Namespace: r.Namespace, Name: r.Name}
}
