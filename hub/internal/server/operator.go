package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/jointoken"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Join trades a single-use join token and a CSR for the cluster's client certificate. The
// cluster is the one the token was issued for; nothing the agent says names it.
//
// Everything the agent sent is checked before the token is spent, so a malformed request
// leaves the token usable. The token is spent together with the key ID of the request, and
// the same key may redeem it again for store.ReenrolWindow: a failure after the spend (or a
// reply lost on the way) is retried by the agent with the same request and succeeds.
func (s *Server) Join(ctx context.Context, req *flotillav1.JoinRequest) (*flotillav1.JoinResponse, error) {
	tok, err := jointoken.Parse(req.Token)
	if err != nil {
		return nil, toStatus(invalidArgument("join token: %v", err))
	}
	if tok.CAFingerprint != s.cfg.CA.Fingerprint() {
		return nil, toStatus(reword(errDenied, "join token was issued by another hub"))
	}
	if err := checkAgeRecipient(req.AgeRecipient); err != nil {
		return nil, toStatus(err) // before the token is redeemed: the agent may retry with it
	}
	keyID, err := pki.CheckCSR(req.CsrPem)
	if err != nil {
		return nil, toStatus(invalidArgument("%v (the join token was not used)", err))
	}
	cluster, again, err := s.cfg.Store.RedeemToken(tok.ID, tok.Secret, keyID, time.Now())
	switch {
	case errors.Is(err, store.ErrTokenExpired):
		return nil, toStatus(reword(err, "join token expired: create a new one with `flotilla token create`"))
	case errors.Is(err, store.ErrTokenUsed):
		return nil, toStatus(reword(err, "join token already used: create a new one with `flotilla token create`"))
	case errors.Is(err, store.ErrTokenInvalid):
		return nil, toStatus(reword(err, "join token invalid"))
	case err != nil:
		return nil, toStatus(reword(err, "join token store unavailable (the join token was not used)"))
	}
	if !again {
		s.replicator.Token(tok.ID)
	}
	// From here on a failure is retried by the agent with the same request (same key).
	retry := fmt.Sprintf("retry with the same certificate request within %s", store.ReenrolWindow)
	c, found, err := s.cfg.Store.GetCluster(cluster)
	if err != nil {
		return nil, toStatus(reword(err, "cluster registry unavailable: %s", retry))
	}
	if !found || c.Revoked {
		return nil, toStatus(reword(errDenied, "cluster %q is not registered or is revoked", cluster))
	}
	cert, err := s.cfg.CA.SignAgent(req.CsrPem, cluster, s.cfg.AgentCertTTL)
	if err != nil {
		s.log.Error("agent certificate not signed", logging.KeyCluster, cluster, logging.Err(err))
		return nil, toStatus(reword(errInternal, "certificate not signed: %s", retry))
	}
	if err := s.recordAgeRecipient(c, req.AgeRecipient); err != nil {
		return nil, toStatus(reword(err, "%v: %s", err, retry))
	}
	detail := "agent " + req.AgentVersion
	if again {
		detail += ", again with the same key"
	}
	s.audit("agent:"+cluster, "join", cluster, detail)
	s.log.Info("agent joined", logging.KeyCluster, cluster, logging.KeyAgain, again)
	return &flotillav1.JoinResponse{Cluster: cluster, CertificatePem: cert, CaPem: s.cfg.CA.CertPEM()}, nil
}

// Status lists every cluster×app, optionally filtered, a page at a time when asked to.
func (s *Server) Status(ctx context.Context, req *flotillav1.StatusRequest) (*flotillav1.StatusResponse, error) {
	var all []fleet.Row
	switch {
	case req.Cluster != "":
		all = s.cfg.Fleet.ClusterRows(req.Cluster)
	case req.PageSize > 0:
		all = s.paged.rows(req.AfterCluster, s.cfg.Fleet.Rows)
	default:
		all = s.cfg.Fleet.Rows()
	}
	resp, err := s.status(ctx, req, all)
	if err == nil && req.PageSize > 0 && resp.NextAfterCluster == "" {
		s.paged.done()
	}
	return resp, err
}

// StatusPages sends every page of a paged Status in one call, one page after another: a
// caller reading a large fleet waits for one answer, not for one per page. The fleet's rows
// are read once, for the first page.
func (s *Server) StatusPages(req *flotillav1.StatusRequest, stream flotillav1.Operator_StatusPagesServer) error {
	page := proto.CloneOf(req)
	if page.PageSize <= 0 {
		page.PageSize = opclient.StatusPageSize
	}
	var all []fleet.Row
	if req.Cluster != "" {
		all = s.cfg.Fleet.ClusterRows(req.Cluster)
	} else {
		all = s.cfg.Fleet.Rows()
	}
	for {
		resp, err := s.status(stream.Context(), page, all)
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
		if resp.NextAfterCluster == "" {
			return nil
		}
		if resp.NextAfterCluster <= page.AfterCluster {
			return toStatus(reword(errInternal, "status: a page after %q ended at %q", page.AfterCluster, resp.NextAfterCluster))
		}
		page.AfterCluster = resp.NextAfterCluster
	}
}

// status answers req (one page of it when paged) from all, the fleet's rows sorted by cluster,
// with the rows the other replicas hold gathered in.
func (s *Server) status(ctx context.Context, req *flotillav1.StatusRequest, all []fleet.Row) (*flotillav1.StatusResponse, error) {
	inSelector, err := s.selectClusters(req.Selector)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &flotillav1.StatusResponse{}
	// Rows are sorted by cluster: a page starts after the cursor's cluster.
	from := sort.Search(len(all), func(i int) bool { return all[i].Cluster > req.AfterCluster })
	page := newStatusPage(req.PageSize)
	for i := from; i < len(all); i++ {
		r := &all[i]
		if page.full(r.Cluster) {
			resp.NextAfterCluster = page.last
			break
		}
		if (req.App != "" && r.App != req.App) || (req.Cluster != "" && r.Cluster != req.Cluster) {
			continue
		}
		if inSelector != nil && !inSelector[r.Cluster] {
			continue
		}
		if req.Stale {
			if _, state := s.cfg.Fleet.Presence(r.Cluster); state == fleet.StateConnected {
				continue
			}
		}
		if req.Drifted && len(r.Drift) == 0 {
			continue
		}
		if req.Revision != "" && !strings.HasPrefix(r.DesiredRevision, req.Revision) && !strings.HasPrefix(r.AppliedRevision, req.Revision) {
			continue
		}
		it := s.statusItem(r, req.Resources)
		page.add(it)
		resp.Items = append(resp.Items, it)
	}
	return mapped(s.gatherStatus(ctx, req, resp))
}

// statusItem is one row of Status (and of a FleetPage): with resources, the app's objects and
// the Warning Events of them, as the agent last reported (`flotilla status` asks for neither).
func (s *Server) statusItem(r *fleet.Row, resources bool) *flotillav1.AppClusterStatus {
	item := &flotillav1.AppClusterStatus{
		Cluster: r.Cluster, App: r.App, Sync: r.Sync, Health: r.Health,
		DesiredRevision: r.DesiredRevision, AppliedRevision: r.AppliedRevision, HealthyRevision: r.HealthyRevision,
		Message: r.Message, CommitToAppliedMs: r.CommitToApplied.Milliseconds(), LastError: r.LastError,
		PinnedRevision: r.Pinned, Rollout: r.Rollout, DriftCount: int32(len(r.Drift)),
	}
	item.LastSeenUnixMs = unixMs(r.LastSeen)
	item.RolledBackRevision, item.HealthySinceUnixMs, item.AppliedAtUnixMs = r.RolledBackRevision, unixMs(r.HealthySince), unixMs(r.AppliedAt)
	item.DesiredSpec, item.AppliedDesired = r.DesiredSpec, r.AppliedDesired
	for _, d := range r.Drift {
		item.Drift = append(item.Drift, &flotillav1.DriftItem{
			Object: &flotillav1.ObjectRef{Group: d.Group, Version: d.Version, Kind: d.Kind, Namespace: d.Namespace, Name: d.Name},
			Type:   d.Type, Diff: d.Diff, Contested: d.Contested,
		})
	}
	if !resources {
		return item
	}
	rep, ok := s.cfg.Fleet.LatestReport(r.Cluster, r.App)
	if !ok {
		return item
	}
	for _, o := range rep.Resources {
		item.Resources = append(item.Resources, &flotillav1.ResourceStatus{
			Object: &flotillav1.ObjectRef{Group: o.Group, Version: o.Version, Kind: o.Kind, Namespace: o.Namespace, Name: o.Name},
			Health: o.Health, Message: o.Message,
		})
	}
	for _, e := range rep.Events {
		item.Events = append(item.Events, &flotillav1.ObjectEvent{
			Object: &flotillav1.ObjectRef{Group: e.Group, Version: e.Version, Kind: e.Kind, Namespace: e.Namespace, Name: e.Name},
			Type:   e.Type, Reason: e.Reason, Message: e.Message, Count: e.Count, LastSeenUnixMs: unixMs(e.LastSeen),
		})
	}
	return item
}

// ListClusters lists the registered clusters with their link state.
func (s *Server) ListClusters(ctx context.Context, _ *flotillav1.ListClustersRequest) (*flotillav1.ListClustersResponse, error) {
	list, err := s.cfg.Store.ListClusters()
	if err != nil {
		return nil, toStatus(fmt.Errorf("list clusters: %w", err))
	}
	resp := &flotillav1.ListClustersResponse{}
	for _, c := range list {
		resp.Items = append(resp.Items, s.clusterItem(c))
	}
	return mapped(s.gatherClusters(ctx, resp))
}

// clusterItem is a registered cluster with its link state as this replica knows it.
func (s *Server) clusterItem(c store.Cluster) *flotillav1.Cluster {
	p, state := s.cfg.Fleet.Presence(c.Name)
	item := &flotillav1.Cluster{
		Name: c.Name, Labels: c.Labels, Connected: state == fleet.StateConnected, State: state,
		AgentVersion: c.AgentVersion, AgeRecipient: c.AgeRecipient,
	}
	if p.AgentVersion != "" {
		item.AgentVersion = p.AgentVersion
	}
	if c.Revoked {
		item.State = "Revoked"
	}
	last := p.LastSeen
	if last.IsZero() {
		last = c.LastSeen
	}
	if !last.IsZero() {
		item.LastSeenUnixMs = last.UnixMilli()
	}
	return item
}

// ListApps lists the Applications the hub knows, with their errors and warnings, and every
// cluster each targets, owned by this replica or another.
func (s *Server) ListApps(ctx context.Context, req *flotillav1.ListAppsRequest) (*flotillav1.ListAppsResponse, error) {
	targets, err := s.targeting()
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &flotillav1.ListAppsResponse{}
	for _, a := range s.cfg.Fleet.Apps() {
		if req.Name != "" && a.Name != req.Name {
			continue
		}
		item := &flotillav1.App{
			Name: a.Name, RepoUrl: a.RepoURL, TargetRevision: a.TargetRevision, Path: a.Path,
			Revision: a.Revision, Clusters: targets(a), Error: a.Error, Warnings: a.Warnings, SourceFile: a.SourceFile,
			RepoState: a.RepoState, Chart: a.Chart, ChartVersion: a.ChartVersion,
		}
		if !a.LastFetched.IsZero() {
			item.LastFetchedUnixMs = a.LastFetched.UnixMilli()
		}
		resp.Items = append(resp.Items, item)
	}
	if h, ok := s.cfg.Fleet.RemovalHeld(); ok {
		resp.RemovalHold = &flotillav1.RemovalHold{Apps: h.Apps, Total: int32(h.Total), SinceUnixMs: h.Since.UnixMilli()}
	}
	return resp, nil
}

// ConfirmRemoval lets the held removal of most Applications go ahead, on this replica and, by
// broadcast, on the others (each decides for the clusters it owns).
func (s *Server) ConfirmRemoval(ctx context.Context, _ *flotillav1.ConfirmRemovalRequest) (*flotillav1.ConfirmRemovalResponse, error) {
	h, ok := s.cfg.Fleet.RemovalHeld()
	if !ok {
		return nil, toStatus(fmt.Errorf("%w: `flotilla apps` shows a held removal when there is one", fleet.ErrNoRemovalHeld))
	}
	s.confirmRemoval(h.Apps)
	s.replicator.ConfirmRemoval(h.Apps)
	s.audit(callerFrom(ctx).Name, "apps.confirm-removal", strings.Join(h.Apps, ","), fmt.Sprintf("%d of %d applications", len(h.Apps), h.Total))
	s.log.Warn("held removal confirmed", logging.KeyCount, len(h.Apps))
	return &flotillav1.ConfirmRemovalResponse{Apps: h.Apps}, nil
}

func (s *Server) confirmRemoval(apps []string) {
	s.cfg.Fleet.ConfirmRemoval(apps)
	s.trigger()
}

// trigger asks the reconciler for a round now, when there is one.
func (s *Server) trigger() {
	if s.cfg.Reconcile != nil {
		s.cfg.Reconcile.Trigger()
	}
}

// AddCluster registers a cluster and returns a join token for its agent.
func (s *Server) AddCluster(ctx context.Context, req *flotillav1.AddClusterRequest) (*flotillav1.AddClusterResponse, error) {
	if errs := validation.IsDNS1123Label(req.Name); len(errs) > 0 {
		return nil, toStatus(invalidArgument("cluster name %q: %s", req.Name, errs[0]))
	}
	for k, v := range req.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return nil, toStatus(invalidArgument("label %q: %s", k, errs[0]))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return nil, toStatus(invalidArgument("label %s=%q: %s", k, v, errs[0]))
		}
	}
	ttl, err := s.tokenTTL(req.TokenTtlSeconds)
	if err != nil {
		return nil, toStatus(err)
	}
	if _, found, err := s.cfg.Store.GetCluster(req.Name); err != nil {
		return nil, toStatus(fmt.Errorf("cluster registry: %w", err))
	} else if found {
		return nil, toStatus(fmt.Errorf("cluster %q %w: use `flotilla token create --cluster %s` for a new join token", req.Name, store.ErrClusterExists, req.Name))
	}
	if err := s.cfg.Store.PutCluster(store.Cluster{Name: req.Name, Labels: req.Labels, CreatedAt: time.Now()}); err != nil {
		return nil, toStatus(fmt.Errorf("register cluster: %w", err))
	}
	s.replicator.Cluster(req.Name)
	token, expires, err := s.newToken(req.Name, ttl)
	if err != nil {
		return nil, toStatus(err)
	}
	s.audit(callerFrom(ctx).Name, "cluster.add", req.Name, fmt.Sprintf("labels=%v", req.Labels))
	if s.cfg.Reconcile != nil {
		s.cfg.Reconcile.Trigger()
	}
	return &flotillav1.AddClusterResponse{JoinToken: token, ExpiresUnixMs: expires.UnixMilli()}, nil
}

// CreateToken issues a new join token for a registered cluster.
func (s *Server) CreateToken(ctx context.Context, req *flotillav1.CreateTokenRequest) (*flotillav1.CreateTokenResponse, error) {
	ttl, err := s.tokenTTL(req.TtlSeconds)
	if err != nil {
		return nil, toStatus(err)
	}
	c, found, err := s.cfg.Store.GetCluster(req.Cluster)
	if err != nil {
		return nil, toStatus(fmt.Errorf("cluster registry: %w", err))
	}
	if !found {
		return nil, toStatus(fmt.Errorf("cluster %q is %w: use `flotilla cluster add`", req.Cluster, store.ErrNotRegistered))
	}
	if c.Revoked {
		return nil, toStatus(fmt.Errorf("cluster %q is %w", req.Cluster, store.ErrRevoked))
	}
	token, expires, err := s.newToken(req.Cluster, ttl)
	if err != nil {
		return nil, toStatus(err)
	}
	s.audit(callerFrom(ctx).Name, "token.create", req.Cluster, "")
	return &flotillav1.CreateTokenResponse{JoinToken: token, ExpiresUnixMs: expires.UnixMilli()}, nil
}

// tokenTTL is the lifetime a request asks for: the default when it gives none (0), else within
// the bounds of jointoken.CheckTTL (never a silent default for a value out of them).
func (s *Server) tokenTTL(seconds int64) (time.Duration, error) {
	if seconds == 0 {
		return s.cfg.DefaultTokenTTL, nil
	}
	ttl := time.Duration(min(seconds, 1<<33)) * time.Second // 272 years: refused, and no overflow
	if err := jointoken.CheckTTL("ttl", ttl); err != nil {
		return 0, invalidArgument("%v", err)
	}
	return ttl, nil
}

func (s *Server) newToken(cluster string, ttl time.Duration) (string, time.Time, error) {
	tok, err := jointoken.Generate(s.cfg.CA.Fingerprint())
	if err != nil {
		return "", time.Time{}, reword(errInternal, "generate token: %v", err)
	}
	expires := time.Now().Add(ttl)
	if err := s.cfg.Store.PutToken(store.JoinToken{
		ID: tok.ID, SecretHash: jointoken.HashSecret(tok.Secret), Cluster: cluster, ExpiresAt: expires,
	}); err != nil {
		return "", time.Time{}, fmt.Errorf("store token: %w", err)
	}
	s.replicator.Token(tok.ID)
	return tok.String(), expires, nil
}

// RetentionHeader is the response header of History telling what history the hub keeps.
const RetentionHeader = "flotilla-history-retention"

// History lists what was applied, newest first.
func (s *Server) History(ctx context.Context, req *flotillav1.HistoryRequest) (*flotillav1.HistoryResponse, error) {
	limit := int(req.Limit)
	if limit <= 0 {
		limit = 50
	}
	recs, err := s.cfg.Store.ListHistory(req.App, req.Cluster, limit)
	if err != nil {
		return nil, toStatus(fmt.Errorf("history: %w", err))
	}
	// What is kept, for the CLI to say (a header: the message is shared with older hubs).
	_ = grpc.SetHeader(ctx, metadata.Pairs(RetentionHeader, s.cfg.Retention.HistoryString()))
	resp := &flotillav1.HistoryResponse{}
	for _, r := range recs {
		resp.Items = append(resp.Items, &flotillav1.HistoryEntry{
			TimeUnixMs: r.Time.UnixMilli(), Cluster: r.Cluster, App: r.App, Revision: r.Revision,
			Author: r.Author, Message: r.Message, Result: r.Result, Health: r.Health,
			ChartVersion: r.ChartVersion, ValuesDigest: r.ValuesDigest,
		})
	}
	return mapped(s.gatherHistory(ctx, req, limit, resp))
}

// selectClusters returns the names of registered clusters matching a label selector, or nil
// when the selector is empty.
func (s *Server) selectClusters(selector string) (map[string]bool, error) {
	if strings.TrimSpace(selector) == "" {
		return nil, nil
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, invalidArgument("selector %q: %v", selector, err)
	}
	list, err := s.cfg.Store.ListClusters()
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	out := map[string]bool{}
	for _, c := range list {
		if sel.Matches(labels.Set(c.Labels)) {
			out[c.Name] = true
		}
	}
	return out, nil
}

func (s *Server) audit(actor, action, target, detail string) {
	if err := s.cfg.Store.Audit(store.AuditRecord{Time: time.Now(), Actor: actor, Action: action, Target: target, Detail: detail}); err != nil {
		s.log.Warn("audit record not written", logging.KeyAction, action, logging.Err(err))
	}
}
