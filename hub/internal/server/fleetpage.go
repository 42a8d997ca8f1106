package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// FleetPage is the dashboard's read of the fleet: one page of the cluster × app matrix,
// filtered, counted and paged here, so that what crosses the wire is the page, not the fleet.
// With replicas, each one filters and counts the clusters it owns (fleetShare) and the replica
// asked merges the shares, sorts and pages them; a peer that does not answer is named, and its
// clusters are shown as this replica last knew them (as in Status).

// Bounds of a FleetPage.
const (
	defaultFleetPageSize = 50
	maxFleetPageSize     = 500
)

// FleetStates are the states a FleetPage filters cells by.
var FleetStates = []string{"stale", "drifted", "Degraded", "RolledBack", "Pinned", "OutOfSync"}

// fleetQuery is a FleetPageRequest, checked.
type fleetQuery struct {
	req  *flotillav1.FleetPageRequest
	sel  labels.Selector // nil: every cluster
	page int
	size int
}

func parseFleetQuery(req *flotillav1.FleetPageRequest) (*fleetQuery, error) {
	q := &fleetQuery{req: req, page: max(int(req.Page), 1), size: int(req.PageSize)}
	if q.size <= 0 {
		q.size = defaultFleetPageSize
	}
	if q.size > maxFleetPageSize {
		return nil, invalidArgument("page_size %d: at most %d", req.PageSize, maxFleetPageSize)
	}
	if req.State != "" && !slices.Contains(FleetStates, req.State) {
		return nil, invalidArgument("state %q: one of %s", req.State, strings.Join(FleetStates, ", "))
	}
	if sel := strings.TrimSpace(req.Selector); sel != "" {
		var err error
		if q.sel, err = labels.Parse(sel); err != nil {
			return nil, invalidArgument("selector %q: %v", sel, err)
		}
	}
	return q, nil
}

// cellFilter: only the clusters with a cell the filters keep are rows (else every cluster the
// selector keeps is, with or without cells).
func (q *fleetQuery) cellFilter() bool {
	return q.req.App != "" || q.req.State != "" || q.req.Revision != ""
}

// FleetPage answers one page of the fleet matrix (see the top of this file).
func (s *Server) FleetPage(ctx context.Context, req *flotillav1.FleetPageRequest) (*flotillav1.FleetPageResponse, error) {
	q, err := parseFleetQuery(req)
	if err != nil {
		return nil, toStatus(err)
	}
	if s.cfg.HA == nil {
		share, err := s.fleetShare(q, func(string) bool { return true }, nil)
		if err != nil {
			return nil, toStatus(err)
		}
		return q.answer([]*flotillav1.FleetPageResponse{share}, nil), nil
	}
	owners, err := s.cfg.Ownership.Now()
	if err != nil {
		return nil, toStatus(fmt.Errorf("cluster registry: %w", err))
	}
	replica := func(c string) string { return owners.Of(c).Member.Name }
	if fromPeer(ctx) {
		share, err := s.fleetShare(q, owners.Mine, replica)
		return mapped(share, err)
	}
	peerReq := proto.Clone(req).(*flotillav1.FleetPageRequest)
	peerReq.KnownVersion = ""
	answers, unreachable := askPeers(ctx, s, func(ctx context.Context, conn *grpc.ClientConn) (*flotillav1.FleetPageResponse, error) {
		return flotillav1.NewOperatorClient(conn).FleetPage(ctx, peerReq)
	})
	local, err := s.fleetShare(q, func(c string) bool {
		return owners.Mine(c) || slices.Contains(unreachable, replica(c))
	}, replica)
	if err != nil {
		return nil, toStatus(err)
	}
	shares := []*flotillav1.FleetPageResponse{local}
	for _, a := range answers {
		shares = append(shares, a.resp)
	}
	return q.answer(shares, unreachable), nil
}

// fleetShare is the part of the matrix of the clusters mine keeps: its counts, columns, every
// matching cluster's name (sorted) and the rows of the first page×size of them (the most any
// page of the merged list can take from one share). replica names each cluster's owner; nil:
// a single hub, whose one share is the whole fleet, and only the page's rows are made.
func (s *Server) fleetShare(q *fleetQuery, mine func(string) bool, replica func(string) string) (*flotillav1.FleetPageResponse, error) {
	m, err := s.fleetMatrix()
	if err != nil {
		return nil, err
	}
	kept := map[string]bool{} // per cluster: ownership and selectors are not asked per row
	keep := func(name string) bool {
		k, seen := kept[name]
		if !seen {
			c, registered := m.registry[name]
			k = (q.req.Cluster == "" || name == q.req.Cluster) && (q.sel == nil || registered && q.sel.Matches(labels.Set(c.Labels))) && mine(name)
			kept[name] = k
		}
		return k
	}
	out := &flotillav1.FleetPageResponse{Counts: &flotillav1.FleetCounts{}}
	cells := map[string][]*fleet.Row{}
	apps := map[string]bool{}
	for i := range m.rows {
		r := &m.rows[i]
		if (q.req.App != "" && r.App != q.req.App) || !keep(r.Cluster) {
			continue
		}
		stale := m.infos[r.Cluster].State != fleet.StateConnected
		if !inState(q.req.State, r, stale) {
			continue
		}
		if rev := q.req.Revision; rev != "" && !strings.HasPrefix(r.DesiredRevision, rev) && !strings.HasPrefix(r.AppliedRevision, rev) {
			continue
		}
		count(out.Counts, r, stale)
		cells[r.Cluster] = append(cells[r.Cluster], r)
		apps[r.App] = true
	}
	switch {
	case !q.cellFilter():
		for name := range m.registry {
			if _, ok := cells[name]; !ok && keep(name) {
				cells[name] = nil
			}
		}
		for _, a := range m.apps {
			apps[a] = true
		}
	case q.req.App != "":
		apps[q.req.App] = true
	}
	for n := range cells {
		out.MatchingClusters = append(out.MatchingClusters, n)
	}
	slices.Sort(out.MatchingClusters)
	for a := range apps {
		out.Apps = append(out.Apps, a)
	}
	slices.Sort(out.Apps)
	out.Counts.Clusters = int32(len(out.MatchingClusters))
	from, to := 0, min(q.page*q.size, len(out.MatchingClusters))
	if replica == nil { // the whole fleet: only the page's rows (the last page, past it)
		from = (min(q.page, max((len(out.MatchingClusters)+q.size-1)/q.size, 1)) - 1) * q.size
	}
	for _, n := range out.MatchingClusters[from:to] {
		row := &flotillav1.FleetPageRow{Cluster: proto.Clone(m.infos[n]).(*flotillav1.Cluster)}
		if replica != nil {
			row.Cluster.Replica = replica(n)
		}
		for _, r := range cells[n] {
			it := s.statusItem(r, false)
			it.Drift = nil // drift_count says how many; the diffs are the app-on-cluster page's
			row.Cells = append(row.Cells, it)
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

// matrixTTL is how long one read of the whole fleet serves FleetPage calls at least: every
// page read within it (the live updates of many pages, a burst of browsers) costs a filter
// over the rows read, not another read of the fleet. Well under the dashboard's second from a
// change to the page. A read that took longer serves for twice as long as it took, so that
// the dashboard's polls never keep more than a third of a core reading a large fleet.
const matrixTTL = 250 * time.Millisecond

// matrix is the whole fleet as one read saw it: its rows (with the revision each rolled back
// from), the registry, each cluster as this replica knows it, the apps.
type matrix struct {
	at, until time.Time
	rows      []fleet.Row
	registry  map[string]store.Cluster
	infos     map[string]*flotillav1.Cluster
	apps      []string
}

type matrixCache struct {
	mu sync.Mutex
	m  *matrix
}

// fleetMatrix is the fleet as read within matrixTTL; callers that arrive while it is read
// wait for that read.
func (s *Server) fleetMatrix() (*matrix, error) {
	s.matrix.mu.Lock()
	defer s.matrix.mu.Unlock()
	if m := s.matrix.m; m != nil && time.Now().Before(m.until) {
		return m, nil
	}
	list, err := s.cfg.Store.ListClusters()
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	m := &matrix{at: time.Now(), registry: make(map[string]store.Cluster, len(list)), infos: make(map[string]*flotillav1.Cluster, len(list))}
	for _, c := range list {
		m.registry[c.Name] = c
		m.infos[c.Name] = s.clusterItem(c)
	}
	rows := s.cfg.Fleet.Rows()
	m.rows = rows
	for _, r := range rows {
		if m.infos[r.Cluster] == nil {
			m.infos[r.Cluster] = s.clusterItem(store.Cluster{Name: r.Cluster})
		}
	}
	for _, a := range s.cfg.Fleet.Apps() {
		m.apps = append(m.apps, a.Name)
	}
	reuse := s.cfg.FleetReadReuse
	if reuse == 0 {
		reuse = matrixTTL
	}
	m.until = time.Now().Add(max(reuse, 2*time.Since(m.at)))
	if reuse < 0 {
		m.until = time.Time{}
	}
	s.matrix.m = m
	return m, nil
}

// inState tells whether a row is in the state asked for ("": any).
func inState(state string, r *fleet.Row, stale bool) bool {
	switch state {
	case "":
		return true
	case "stale":
		return stale
	case "drifted":
		return len(r.Drift) > 0
	case "Degraded":
		return r.Health == "Degraded"
	case "RolledBack":
		return r.RolledBackRevision != ""
	case "Pinned":
		return r.Pinned != ""
	case "OutOfSync":
		return r.Sync != fleet.SyncSynced
	}
	return false
}

func count(c *flotillav1.FleetCounts, r *fleet.Row, stale bool) {
	c.Cells++
	if r.Sync == fleet.SyncSynced {
		c.Synced++
	} else {
		c.OutOfSync++
	}
	switch r.Health {
	case "Healthy":
		c.Healthy++
	case "Degraded":
		c.Degraded++
	case "Progressing":
		c.Progressing++
	}
	if len(r.Drift) > 0 {
		c.Drifted++
	}
	if stale {
		c.Stale++
	}
	if r.RolledBackRevision != "" {
		c.RolledBack++
	}
	if r.Pinned != "" {
		c.Pinned++
	}
}

// answer merges the shares of the fleet (one per replica; a cluster is in one share only):
// counts added, columns and matching clusters merged, the page cut from them, and the
// version of what it shows.
func (q *fleetQuery) answer(shares []*flotillav1.FleetPageResponse, unreachable []string) *flotillav1.FleetPageResponse {
	resp := &flotillav1.FleetPageResponse{Counts: &flotillav1.FleetCounts{}, UnreachablePeers: unreachable}
	var names []string
	rows := map[string]*flotillav1.FleetPageRow{}
	for _, sh := range shares {
		addCounts(resp.Counts, sh.Counts)
		resp.Apps = append(resp.Apps, sh.Apps...)
		names = append(names, sh.MatchingClusters...)
		for _, r := range sh.Rows {
			rows[r.Cluster.GetName()] = r
		}
	}
	slices.Sort(resp.Apps)
	resp.Apps = slices.Compact(resp.Apps)
	slices.Sort(names)
	names = slices.Compact(names)
	resp.Counts.Clusters = int32(len(names))
	pages := max((len(names)+q.size-1)/q.size, 1)
	page := min(q.page, pages)
	resp.Page, resp.Pages = int32(page), int32(pages)
	from := (page - 1) * q.size
	for _, n := range names[from:min(from+q.size, len(names))] {
		if r := rows[n]; r != nil {
			resp.Rows = append(resp.Rows, r)
		}
	}
	resp.Version = pageVersion(resp)
	if q.req.KnownVersion != "" && q.req.KnownVersion == resp.Version {
		return &flotillav1.FleetPageResponse{Version: resp.Version, Unchanged: true}
	}
	return resp
}

func addCounts(to, c *flotillav1.FleetCounts) {
	if c == nil {
		return
	}
	to.Cells += c.Cells
	to.Synced += c.Synced
	to.OutOfSync += c.OutOfSync
	to.Healthy += c.Healthy
	to.Degraded += c.Degraded
	to.Progressing += c.Progressing
	to.Drifted += c.Drifted
	to.Stale += c.Stale
	to.RolledBack += c.RolledBack
	to.Pinned += c.Pinned
}

// pageVersion is a digest of what the page shows live: everything but the times (last seen,
// healthy since, applied at, commit to applied) and the messages, which say how long a
// silent cluster has been silent and so change every second.
func pageVersion(resp *flotillav1.FleetPageResponse) string {
	v := proto.Clone(resp).(*flotillav1.FleetPageResponse)
	for _, r := range v.Rows {
		r.Cluster.LastSeenUnixMs = 0
		for _, c := range r.Cells {
			c.LastSeenUnixMs, c.HealthySinceUnixMs, c.AppliedAtUnixMs, c.CommitToAppliedMs, c.Message = 0, 0, 0, 0, ""
		}
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:12])
}
