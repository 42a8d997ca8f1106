package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/ignore"
	"github.com/flotilla-dev/flotilla/shared/logging"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// agentStream is one connected agent. A newer stream of the same cluster replaces it.
type agentStream struct {
	cancel context.CancelFunc
}

// Connect serves one agent's stream: Hello, then the differences between what the agent holds
// and what is desired, then the latest desired state whenever it changes; the agent's ACKs,
// NACKs, status reports and heartbeats flow the other way.
func (s *Server) Connect(stream flotillav1.AgentService_ConnectServer) error {
	cluster := callerFrom(stream.Context()).Name
	s.work.Add(1)
	ctx := stream.Context()
	cancel := streamCancel(ctx)
	if cancel == nil {
		return status.Error(codes.Internal, "agent streams are served only by the hub's gRPC server (GRPCServer)")
	}
	defer cancel()
	me := &agentStream{cancel: cancel}
	if !s.addStream(cluster, me) {
		return toStatus(errors.New("the hub is stopping"))
	}
	defer s.dropStream(cluster, me)
	log := s.log.With(logging.KeyCluster, cluster)
	held, err := s.welcome(ctx, stream, cluster, log)
	if held == nil {
		return err
	}

	// This handler's goroutine receives; what goes to the agent is sent by a goroutine that
	// runs only while there is something to send (outbox), so an idle agent costs the hub one
	// goroutine of its own. The first of receive and send to fail ends the stream: a failed
	// send cancels the stream, which ends the receive.
	out := s.newOutbox(stream, cluster, held.apps, cancel)
	err = s.receive(ctx, stream, cluster, held.names)
	return disconnected(log, err, out.close())
}

// addStream makes me the cluster's stream, ending the one before (the newest wins); false
// when the hub is stopping.
func (s *Server) addStream(cluster string, me *agentStream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	if old := s.streams[cluster]; old != nil {
		old.cancel()
	}
	s.streams[cluster] = me
	return true
}

// dropStream forgets me, unless a newer stream of the cluster replaced it.
func (s *Server) dropStream(cluster string, me *agentStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[cluster] == me {
		delete(s.streams, cluster)
		s.cfg.Fleet.Seen(cluster, "", false)
	}
}

// disconnected logs a stream's end and returns its status: the send's error when a send
// failed first (it ended the receive), none when the agent or the hub ended it.
func disconnected(log *slog.Logger, received, sent error) error {
	err := received
	if sent != nil {
		err = sent
	}
	log.Info("agent disconnected", logging.Err(err))
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled {
		return nil
	}
	return err
}

// heldNow is what an agent said it holds when it connected.
type heldNow struct {
	apps  []fleet.Held
	names map[string]bool
}

// welcome claims the cluster's stream (or redirects it to the replica that owns it), reads
// the agent's Hello and answers Welcome; it returns what the agent holds, nil when the stream
// ends here. Apart from Connect, so that the handler's frame, which stays on its goroutine's
// stack while it receives, is small (see receive).
func (s *Server) welcome(ctx context.Context, stream flotillav1.AgentService_ConnectServer, cluster string, log *slog.Logger) (*heldNow, error) {
	epoch, redirected, err := s.claim(stream, cluster)
	if redirected {
		return nil, err
	}

	hello, err := recvHello(ctx, stream, 15*time.Second)
	if err != nil {
		return nil, err
	}
	s.cfg.Metrics.StreamMessage("in", "hello")
	if hello.ProtocolVersion < version.MinProtocol {
		return nil, toStatus(reword(errProtocol,
			"agent protocol %d is older than this hub supports (%d..%d): upgrade the agent", hello.ProtocolVersion, version.MinProtocol, version.Protocol))
	}
	if hello.ProtocolVersion > version.Protocol {
		return nil, toStatus(reword(errProtocol,
			"agent protocol %d is newer than this hub supports (%d..%d): upgrade the hub", hello.ProtocolVersion, version.MinProtocol, version.Protocol))
	}
	if len(hello.Apps) > MaxAppsPerAgent {
		return nil, toStatus(reword(errTooMuch, "agent says it holds %d apps, more than the %d a hub takes from one agent", len(hello.Apps), MaxAppsPerAgent))
	}
	held := make([]fleet.Held, 0, len(hello.Apps))
	heldApps := make(map[string]bool, len(hello.Apps))
	for _, h := range hello.Apps {
		held = append(held, fleet.Held{App: h.App, Generation: h.Generation, Revision: h.Revision, Digest: h.Digest})
		heldApps[h.App] = true
	}
	s.cfg.Fleet.Align(cluster, held)
	s.cfg.Fleet.Seen(cluster, hello.AgentVersion, true)
	s.recordAgentVersion(cluster, hello.AgentVersion)
	s.setCapabilities(cluster, hello.Capabilities) // capabilities.go
	log.Info("agent connected", logging.KeyAgentVersion, hello.AgentVersion, logging.KeyCount, len(held))
	if err := stream.Send(&flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Welcome{Welcome: &flotillav1.Welcome{
		Cluster: cluster, HubVersion: s.cfg.HubVersion, ProtocolVersion: version.Protocol,
		HeartbeatSeconds: uint32(s.cfg.Heartbeat / time.Second), Replicas: s.replicaAddrs(), Epoch: epoch,
	}}}); err != nil {
		return nil, err
	}
	return &heldNow{apps: held, names: heldApps}, nil
}

func recvHello(ctx context.Context, stream flotillav1.AgentService_ConnectServer, timeout time.Duration) (*flotillav1.Hello, error) {
	type result struct {
		msg *flotillav1.AgentMessage
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := stream.Recv()
		ch <- result{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		h := r.msg.GetHello()
		if h == nil {
			return nil, toStatus(invalidArgument("the first message must be Hello"))
		}
		return h, nil
	case <-time.After(timeout):
		return nil, toStatus(reword(errTimeout, "no Hello received"))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// streamCancelKey holds, in an agent stream's context, the function that cancels it.
type streamCancelKey struct{}

// cancellableStreams gives each agent stream a context the hub can cancel (GRPCServer's tap
// handle). gRPC's Recv waits on that context, so a handler blocked receiving returns when the
// hub replaces, redirects, revokes or stops the stream.
func cancellableStreams(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != flotillav1.AgentService_Connect_FullMethodName {
		return ctx, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	return context.WithValue(ctx, streamCancelKey{}, cancel), nil
}

// streamCancel is the function that cancels the agent stream of ctx (nil: not served by
// GRPCServer).
func streamCancel(ctx context.Context) context.CancelFunc {
	cancel, _ := ctx.Value(streamCancelKey{}).(context.CancelFunc)
	return cancel
}

// outbox keeps the agent's copy equal to the latest desired state, and sends the heartbeats.
// Its goroutine runs only while there is something to send: the fleet's watch and the
// heartbeat's timer start it. sent holds, per app, the generation the agent has (from Hello)
// or was sent; only newer generations go out, so a slow agent never gets a backlog: it gets
// the latest.
type outbox struct {
	s       *Server
	stream  flotillav1.AgentService_ConnectServer
	cluster string
	cancel  context.CancelFunc
	sent    map[string]uint64 // only the running goroutine reads and writes it
	unwatch func()
	running sync.WaitGroup

	mu      sync.Mutex // guards what follows
	beat    *time.Timer
	diff    bool  // the desired state may have changed since the last diff
	beatDue bool  // a heartbeat is due
	busy    bool  // the goroutine runs
	closed  bool  // the stream ended: nothing more is sent
	err     error // the send that failed
}

// newOutbox starts sending to stream: the differences with what the agent holds now, then
// each change and each heartbeat.
func (s *Server) newOutbox(stream flotillav1.AgentService_ConnectServer, cluster string, held []fleet.Held, cancel context.CancelFunc) *outbox {
	o := &outbox{s: s, stream: stream, cluster: cluster, cancel: cancel, sent: make(map[string]uint64, len(held))}
	for _, h := range held {
		o.sent[h.App] = h.Generation
	}
	o.mu.Lock()
	o.beat = time.AfterFunc(s.cfg.Heartbeat, o.heartbeat)
	o.mu.Unlock()
	o.unwatch = s.cfg.Fleet.Watch(cluster, o.kick)
	o.kick()
	return o
}

// kick asks for a diff, starting the goroutine unless it runs. It never blocks: the fleet
// calls it under its lock.
func (o *outbox) kick() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.askLocked(false)
}

// heartbeat asks for a heartbeat (and a diff), and arms the next one.
func (o *outbox) heartbeat() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.askLocked(true) {
		o.beat.Reset(o.s.cfg.Heartbeat)
	}
}

// askLocked asks for a diff and, with beat, a heartbeat; it reports whether the stream is
// open. Caller holds o.mu.
func (o *outbox) askLocked(beat bool) bool {
	if o.closed {
		return false
	}
	o.diff = true
	o.beatDue = o.beatDue || beat
	if !o.busy {
		o.busy = true
		o.running.Add(1)
		go o.drain()
	}
	return true
}

// drain sends until nothing more is asked. A heartbeat also diffs: a removal whose grace
// ended goes out with the next one.
func (o *outbox) drain() {
	defer o.running.Done()
	for {
		o.mu.Lock()
		beat := o.beatDue
		if !o.diff || o.closed {
			o.busy = false
			o.mu.Unlock()
			return
		}
		o.diff, o.beatDue = false, false
		o.mu.Unlock()
		err := o.s.sendDiff(o.stream, o.cluster, o.sent)
		if err == nil && beat {
			err = o.stream.Send(&flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Heartbeat{
				Heartbeat: &flotillav1.Heartbeat{SentUnixMs: time.Now().UnixMilli()},
			}})
		}
		if err != nil {
			o.mu.Lock()
			if !o.closed { // not a send that close's cancel cut short
				o.err = err
			}
			o.closed, o.busy = true, false
			o.mu.Unlock()
			o.cancel() // ends the receive, and so the stream
			return
		}
	}
}

// close stops sending and waits for a send under way (the stream is not used once its handler
// returned); it returns the send that failed first, if one did.
func (o *outbox) close() error {
	o.mu.Lock()
	o.closed = true
	o.beat.Stop()
	o.mu.Unlock()
	o.unwatch()
	o.cancel() // a send blocked on the agent's flow control returns
	o.running.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

func (s *Server) sendDiff(stream flotillav1.AgentService_ConnectServer, cluster string, sent map[string]uint64) error {
	desired := s.cfg.Fleet.Snapshot(cluster)
	for app, d := range desired {
		if sent[app] >= d.Generation {
			continue
		}
		if err := s.sendDesired(stream, d); err != nil {
			return err
		}
		sent[app] = d.Generation
		s.log.Debug("desired sent", logging.KeyCluster, cluster, logging.KeyApp, app,
			logging.KeyGeneration, d.Generation, logging.KeyRevision, d.Revision)
	}
	for app, gen := range sent {
		if _, ok := desired[app]; ok || !s.cfg.Fleet.ShouldRemove(cluster, app) {
			continue
		}
		if err := stream.Send(&flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Remove{
			Remove: &flotillav1.Remove{App: app, Generation: gen + 1},
		}}); err != nil {
			return err
		}
		delete(sent, app)
		s.cfg.Fleet.Forget(cluster, app)
		s.log.Info("app removed from cluster", logging.KeyCluster, cluster, logging.KeyApp, app)
	}
	return nil
}

// sendDesired sends d, split into chunks of the compressed bundle when it is large.
func (s *Server) sendDesired(stream flotillav1.AgentService_ConnectServer, d *fleet.Desired) error {
	compressed := d.Bundle.Compressed()
	s.cfg.Metrics.BundleBytes(len(compressed))
	chunks := bundle.Split(compressed, ChunkSize)
	for i, c := range chunks {
		msg := &flotillav1.Desired{
			App: d.App, Generation: d.Generation, Revision: d.Revision, Digest: d.Bundle.Digest,
			Namespace: d.Namespace, ChunkIndex: uint32(i), ChunkCount: uint32(len(chunks)), BundleChunk: c,
			SyncRequested: d.SyncRequested, PruneConfirmed: d.PruneConfirmed, BundleSize: uint64(len(compressed)),
		}
		if i == 0 {
			msg.SyncPolicy = syncPolicyToProto(d)
			msg.Policy = accessPolicyToProto(d.Access)
			msg.DependsOn = d.DependsOn
			msg.IgnoreDifferences = ignoreToProto(d.IgnoreDifferences)
			msg.HealthPolicy = &flotillav1.HealthPolicy{
				ProgressDeadlineMs: d.Health.ProgressDeadline.Milliseconds(), AutoRollback: d.Health.AutoRollback,
			}
			for _, r := range d.Health.CustomRules {
				msg.HealthPolicy.Rules = append(msg.HealthPolicy.Rules, &flotillav1.HealthRule{Group: r.Group, Kind: r.Kind, Expression: r.Expression})
			}
			if !d.CommitTime.IsZero() {
				msg.CommitTimeUnixMs = d.CommitTime.UnixMilli()
			}
		}
		s.work.Add(1)
		if err := stream.Send(&flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Desired{Desired: msg}}); err != nil {
			return err
		}
		s.cfg.Metrics.StreamMessage("out", "desired")
	}
	return nil
}

// accessPolicyToProto maps an app's spec.policy; the agent reads an unset one as the default.
func accessPolicyToProto(p apps.AccessPolicy) *flotillav1.Policy {
	out := &flotillav1.Policy{Namespaces: p.Namespaces}
	for _, gk := range p.ClusterResources {
		out.ClusterResources = append(out.ClusterResources, &flotillav1.GroupKind{Group: gk.Group, Kind: gk.Kind})
	}
	for _, gk := range p.Deny {
		out.Deny = append(out.Deny, &flotillav1.GroupKind{Group: gk.Group, Kind: gk.Kind})
	}
	return out
}

// ignoreToProto maps the ignoreDifferences rules.
func ignoreToProto(rules []ignore.Rule) []*flotillav1.IgnoreDifferencesRule {
	out := make([]*flotillav1.IgnoreDifferencesRule, 0, len(rules))
	for _, r := range rules {
		out = append(out, &flotillav1.IgnoreDifferencesRule{
			Group: r.Group, Kind: r.Kind, Name: r.Name, Namespace: r.Namespace, JsonPointers: r.JSONPointers,
			JqPathExpressions: r.JQPathExpressions, ManagedFieldsManagers: r.ManagedFieldsManagers,
		})
	}
	return out
}

func syncPolicyToProto(d *fleet.Desired) *flotillav1.SyncPolicy {
	p := d.Policy
	return &flotillav1.SyncPolicy{
		Automated: p.Automated, Prune: p.Prune, SelfHeal: p.SelfHeal, AllowEmpty: p.AllowEmpty,
		CreateNamespace: p.CreateNamespace, PruneLast: p.PruneLast, PreserveResourcesOnDeletion: p.PreserveResourcesOnDeletion, Force: p.Force,
		RespectIgnoreDifferences: p.RespectIgnoreDifferences, PrunePropagationPolicy: p.PrunePropagation, SkipValidation: p.SkipValidation,
		Retry: &flotillav1.Retry{
			Limit: int32(p.Retry.Limit), BackoffDurationMs: p.Retry.Duration.Milliseconds(),
			BackoffFactor: p.Retry.Factor, BackoffMaxDurationMs: p.Retry.MaxDuration.Milliseconds(),
		},
	}
}

// MaxAppsPerAgent bounds the apps an agent may say it holds when it connects.
const MaxAppsPerAgent = 1000

// receive records what the agent says (inbox.take), until the stream ends. Its goroutine waits
// in Recv nearly always, and Go shrinks an idle goroutine's stack only while it uses less than
// a quarter of it: this loop and Connect keep small frames (the work is in take and welcome),
// so that the handler settles on 8 KiB of stack, not the 16 a report grew it to.
func (s *Server) receive(ctx context.Context, stream flotillav1.AgentService_ConnectServer, cluster string, held map[string]bool) error {
	in := &inbox{s: s, cluster: cluster, held: held, limit: newStreamLimiter(s.cfg.AgentLimits)}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		if err := in.take(ctx, msg); err != nil {
			return err
		}
	}
}

// inbox records an agent's messages. The cluster is the stream's, never a message field, and
// the app must be one the hub sent this cluster (desired now, or already reported) or one the
// agent held when it connected (held); reports on any other app are dropped.
type inbox struct {
	s       *Server
	cluster string
	held    map[string]bool
	limit   *streamLimiter
	dropped map[string]bool // logged once per stream each, up to a bound
}

// known reports whether the agent may report on app, and logs the first reports dropped.
func (in *inbox) known(app string) bool {
	if in.held[app] || in.s.cfg.Fleet.Knows(in.cluster, app) {
		return true
	}
	if !in.dropped[app] && len(in.dropped) < 20 {
		if in.dropped == nil {
			in.dropped = map[string]bool{}
		}
		in.dropped[app] = true
		in.s.log.Warn("report on an app the hub did not send this cluster dropped", logging.KeyCluster, in.cluster, logging.KeyApp, app)
	}
	return false
}

// take records one message; an error ends the stream.
func (in *inbox) take(ctx context.Context, msg *flotillav1.AgentMessage) error {
	s, cluster := in.s, in.cluster
	if err := in.limit.wait(ctx); err != nil {
		return err
	}
	s.cfg.Fleet.Seen(cluster, "", true)
	switch m := msg.Msg.(type) {
	case *flotillav1.AgentMessage_Ack:
		s.cfg.Metrics.StreamMessage("in", "ack")
		a := m.Ack
		if !in.known(a.App) {
			return nil
		}
		r, first := s.cfg.Fleet.Ack(cluster, a.App, a.Generation, a.Revision, a.Digest)
		if first {
			s.cfg.Metrics.Sync(true)
			s.cfg.Metrics.CommitToApplied(r.CommitToApplied)
			s.recordHistory(cluster, a.App, a.Revision, "Synced", r)
		}
	case *flotillav1.AgentMessage_Nack:
		s.cfg.Metrics.StreamMessage("in", "nack")
		s.cfg.Metrics.Sync(false)
		n := m.Nack
		if !in.known(n.App) {
			return nil
		}
		s.cfg.Fleet.Nack(cluster, n.App, n.Generation, n.Error)
		s.recordHistory(cluster, n.App, "", "Failed: "+fleet.Truncate(n.Error, fleet.MaxMessageBytes), nil)
	case *flotillav1.AgentMessage_Status:
		s.cfg.Metrics.StreamMessage("in", "status")
		if !in.known(m.Status.App) {
			return nil
		}
		s.cfg.Fleet.Status(cluster, reportFromProto(m.Status))
	case *flotillav1.AgentMessage_HookRun:
		s.cfg.Metrics.StreamMessage("in", "hook")
		if h := m.HookRun; in.known(h.App) {
			s.recordHistory(cluster, h.App, h.Revision, hookResult(h), nil)
		}
	case *flotillav1.AgentMessage_Heartbeat:
		s.cfg.Metrics.StreamMessage("in", "heartbeat")
	case *flotillav1.AgentMessage_Capabilities:
		s.cfg.Metrics.StreamMessage("in", "capabilities")
		s.setCapabilities(cluster, m.Capabilities)
	case *flotillav1.AgentMessage_Hello:
		return toStatus(invalidArgument("Hello sent twice"))
	}
	return ctx.Err()
}

// hookResult is a hook's outcome as `flotilla history` shows it: "PreSync hook
// Job.batch/api/migrate: Succeeded (4.2s)", with the reason of a failure.
func hookResult(h *flotillav1.HookRun) string {
	o := h.GetObject()
	kind := o.GetKind()
	if o.GetGroup() != "" {
		kind += "." + o.GetGroup()
	}
	name := kind + "/" + o.GetName()
	if o.GetNamespace() != "" {
		name = kind + "/" + o.GetNamespace() + "/" + o.GetName()
	}
	out := fmt.Sprintf("%s hook %s: %s", h.Phase, name, h.Result)
	if took := time.Duration(h.FinishedUnixMs-h.StartedUnixMs) * time.Millisecond; took > 0 {
		out += fmt.Sprintf(" (%s)", took.Round(100*time.Millisecond))
	}
	if h.Message != "" {
		out += ": " + h.Message
	}
	return fleet.Truncate(out, fleet.MaxMessageBytes)
}

func reportFromProto(p *flotillav1.AppStatus) fleet.Report {
	r := fleet.Report{
		App: p.App, Sync: p.Sync, Health: p.Health, Message: p.Message, Generation: p.Generation,
		AppliedRevision: p.AppliedRevision, AppliedDigest: p.AppliedDigest, HealthyRevision: p.HealthyRevision,
		RolledBackRevision: p.RolledBackRevision,
	}
	if p.AppliedAtUnixMs > 0 {
		r.AppliedAt = time.UnixMilli(p.AppliedAtUnixMs)
	}
	for _, d := range p.Drift {
		o := d.GetObject()
		r.Drift = append(r.Drift, fleet.DriftItem{
			Group: o.GetGroup(), Version: o.GetVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(),
			Name: o.GetName(), Type: d.Type, Diff: d.Diff, Contested: d.Contested,
		})
	}
	for _, res := range p.Resources {
		o := res.GetObject()
		r.Resources = append(r.Resources, fleet.ResourceItem{
			Group: o.GetGroup(), Version: o.GetVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(),
			Name: o.GetName(), Health: res.Health, Message: res.Message,
		})
	}
	for _, e := range p.Events {
		o := e.GetObject()
		r.Events = append(r.Events, fleet.EventItem{
			Group: o.GetGroup(), Version: o.GetVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(), Name: o.GetName(),
			Type: e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count, LastSeen: time.UnixMilli(e.LastSeenUnixMs),
		})
	}
	return r
}

func (s *Server) recordAgentVersion(cluster, agentVersion string) {
	c, ok, err := s.cfg.Store.GetCluster(cluster)
	if err != nil || !ok {
		return
	}
	c.AgentVersion = agentVersion
	c.LastSeen = time.Now()
	if err := s.cfg.Store.PutCluster(c); err != nil {
		s.log.Warn("record agent version", logging.KeyCluster, cluster, logging.Err(err))
	}
}

// recordHistory writes a history record when a revision was applied or failed.
func (s *Server) recordHistory(cluster, app, revision, result string, r *fleet.Report) {
	snap := s.cfg.Fleet.Snapshot(cluster)
	d := snap[app]
	rec := store.HistoryRecord{Time: time.Now(), Cluster: cluster, App: app, Revision: revision, Result: result}
	if d != nil && (revision == "" || d.Revision == revision) {
		rec.Revision, rec.Author, rec.Message = d.Revision, d.Author, d.Message
		if d.Chart != nil {
			rec.ChartVersion, rec.ValuesDigest = d.Chart.Version, d.Chart.ValuesDigest
		}
	}
	if r != nil && r.CommitToApplied > 0 {
		rec.Result = fmt.Sprintf("%s (%s after commit)", result, r.CommitToApplied.Round(time.Millisecond))
	}
	if err := s.cfg.Store.AddHistory(rec); err != nil {
		s.log.Warn("record history", logging.KeyCluster, cluster, logging.KeyApp, app, logging.Err(err))
	}
}
