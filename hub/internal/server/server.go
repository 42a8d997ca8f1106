// Package server is the hub's gRPC edge: agent enrolment, the agent stream and the operator
// service, all over TLS, with identities taken only from verified client certificates. Proto
// types stop here; the rest of the hub works with fleet and store types.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/metrics"
	"github.com/flotilla-dev/flotilla/hub/internal/pins"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/promote"
	"github.com/flotilla-dev/flotilla/hub/internal/replicate"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// MaxMessageSize bounds every gRPC message in either direction.
const MaxMessageSize = 4 << 20

// ChunkSize is the largest bundle slice sent in one Desired message.
const ChunkSize = 1 << 20

type registry interface {
	GetCluster(name string) (store.Cluster, bool, error)
	PutCluster(c store.Cluster) error
	ListClusters() ([]store.Cluster, error)
	PutToken(t store.JoinToken) error
	RedeemToken(id, secret string, keyID []byte, now time.Time) (cluster string, again bool, err error)
	Audit(r store.AuditRecord) error
	AddHistory(r store.HistoryRecord) error
	ListHistory(app, cluster string, limit int) ([]store.HistoryRecord, error)
}

type authority interface {
	SignAgent(csrPEM []byte, cluster string, ttl time.Duration) ([]byte, error)
	CertPEM() []byte
	Fingerprint() string
	Pool() *x509.CertPool
}

type trigger interface{ Trigger() }

// Config wires the server.
type Config struct {
	Fleet *fleet.Fleet
	// Store is the cluster registry, with history and audit.
	Store registry
	// Pins keeps the operator rollback pins (rollback.go); nil leaves the fleet unpinned.
	Pins pins.Store
	// Replication is what replicas exchange beyond the registry: join tokens and merges of
	// clusters (replicate.go). In the hub, Store, Pins and Replication are one store.Store.
	Replication replicate.Store
	CA          authority
	Serving     tls.Certificate
	Reconcile   trigger
	// Heartbeat is how often both sides send heartbeats; a cluster silent for three is Stale.
	Heartbeat time.Duration
	// AgentCertTTL is the validity of issued agent certificates.
	AgentCertTTL time.Duration
	// RenewalGrace is how long after its certificate expired an agent may still renew it
	// (only renew; everything else needs a valid certificate). Zero: not at all.
	RenewalGrace time.Duration
	// DefaultTokenTTL is the validity of join tokens when the operator gives none.
	DefaultTokenTTL time.Duration
	HubVersion      string
	Logger          *slog.Logger
	// Metrics may be nil.
	Metrics *metrics.Hub
	// Git reads and pushes repositories for promotions; nil turns promotion off.
	Git gitRepos
	// HA makes this server one of several hub replicas (redirect.go); nil for a single hub.
	HA *HAConfig
	// Ownership says which replica owns each cluster (built over HA.Replicas); nil for a
	// single hub, which owns them all.
	Ownership *cluster.Ownership
	// AgentLimits bound the messages of each agent stream (ratelimit.go).
	AgentLimits RateLimits
	// Retention is what the store keeps of history, as `flotilla history` tells.
	Retention store.Retention
	// Rollouts runs the progressive rollouts (rollout.go); nil turns `flotilla rollout` off.
	Rollouts rollouts
	// MaxHandshakes bounds the TLS handshakes run at once, except operators' and replicas'
	// (handshakes.go); 0: DefaultMaxHandshakes.
	MaxHandshakes int
	// FleetReadReuse is how long a read of the whole fleet serves FleetPage calls at least
	// (0: matrixTTL; negative: never, every call reads the fleet: benchmarks of a first view).
	FleetReadReuse time.Duration
}

// Server implements the three gRPC services.
type Server struct {
	flotillav1.UnimplementedEnrollmentServer
	flotillav1.UnimplementedAgentServiceServer
	flotillav1.UnimplementedOperatorServer
	flotillav1.UnimplementedPeerServer

	cfg    Config
	log    *slog.Logger
	roots  *x509.CertPool  // the CA, for client certificates
	chains *pki.ChainCache // client chains verified against roots

	mu      sync.Mutex
	streams map[string]*agentStream // cluster → its current stream
	// stopping: Serve is stopping; agent streams are closed and new ones refused.
	stopping bool

	pins       *pins.Pins      // nil without Config.Pins
	promoter   *promote.Writer // nil without Config.Git: promotion is off
	replicator *replicate.Replicator

	peers *peerConns // connections to the other hub replicas
	// handshakes bounds the TLS handshakes that run at once (handshakes.go).
	handshakes *handshakes

	matrix matrixCache // the fleet as FleetPage last read it (fleetpage.go)
	paged  pagedRows   // the fleet's rows as the first page of a paged Status read them (statuspage.go)
	// work counts agent streams opened and desired-state messages sent (Work).
	work atomic.Uint64
}

// Work counts the hub's work with its agents so far: agent streams opened and desired-state
// messages sent. Its rate tells a busy hub (a reconnect storm, a restart, a delivery) from an
// idle one (hub/internal/gctune).
func (s *Server) Work() uint64 { return s.work.Load() }

// New returns a server; call Serve to run it.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.AgentCertTTL == 0 {
		cfg.AgentCertTTL = 24 * time.Hour
	}
	if cfg.DefaultTokenTTL == 0 {
		cfg.DefaultTokenTTL = time.Hour
	}
	if cfg.Ownership == nil {
		cfg.Ownership = cluster.NewOwnership(nil, nil, cfg.Logger)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, streams: map[string]*agentStream{}, peers: newPeerConns(cfg.HA),
		handshakes: newHandshakes(cfg.MaxHandshakes)}
	if cfg.CA != nil {
		s.roots = cfg.CA.Pool()
	}
	s.chains = pki.NewChainCache(s.roots)
	if cfg.Git != nil {
		s.promoter = promote.NewWriter(cfg.Git, cfg.Store, cfg.Logger)
	}
	if cfg.Pins != nil {
		s.pins = pins.New(cfg.Pins, cfg.Fleet, cfg.Logger)
		if err := s.pins.Load(); err != nil {
			s.log.Warn("operator pins not loaded", logging.KeyErr, err)
		}
	}
	s.replicator = newReplicator(s)
	cfg.Metrics.Handshakes(s.handshakes.waiting.Load)
	cfg.Ownership.OnRelease(s.release)
	return s
}

// GRPCServer builds the gRPC server with TLS (client certificates verified when given; each
// method then requires the role it serves; at most Config.MaxHandshakes handshakes at once,
// operators' and replicas' ahead of the others), message limits and keepalive.
func (s *Server) GRPCServer() *grpc.Server {
	tlsCfg := &tls.Config{
		Certificates: []tls.Certificate{s.cfg.Serving},
		ClientCAs:    s.roots,
		// A client certificate is verified here, by verifyClientChain, up to its expiry;
		// whether an expired one may still renew is decided per method by authenticate.
		ClientAuth:         tls.RequestClientCert,
		VerifyConnection:   s.verifyClientChain,
		GetConfigForClient: s.handshakes.admit,
		MinVersion:         tls.VersionTLS13,
	}
	gs := grpc.NewServer(
		grpc.Creds(boundedCreds{TransportCredentials: credentials.NewTLS(tlsCfg), h: s.handshakes}),
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize+64<<10),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		// An agent's connection is idle nearly always, and gRPC's per-connection buffers were
		// most of what an idle agent cost the hub (BenchmarkFleetSim's heap profile: 32 KiB of
		// read buffer each). TLS already holds a whole record, so the framer reads from it
		// directly; the write buffer goes back to a pool after each flush.
		grpc.ReadBufferSize(0),
		grpc.SharedWriteBuffer(true),
		grpc.UnaryInterceptor(s.unaryAuth),
		grpc.StreamInterceptor(s.streamAuth),
		grpc.InTapHandle(cancellableStreams), // agent.go: an agent stream the hub can end
	)
	flotillav1.RegisterEnrollmentServer(gs, s)
	flotillav1.RegisterAgentServiceServer(gs, s)
	flotillav1.RegisterOperatorServer(gs, s)
	flotillav1.RegisterPeerServer(gs, s)
	return gs
}

// Serve serves on lis until ctx ends, then stops gracefully (bounded).
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	gs := s.GRPCServer()
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Agent streams never end on their own: close them (their agents reconnect to another
	// replica or, later, here) so that the graceful stop waits only for short calls.
	s.mu.Lock()
	s.stopping = true
	for _, st := range s.streams {
		st.cancel()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		gs.Stop()
	}
	return nil
}
