package fleet

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
)

// Sync and health values shown to operators.
const (
	SyncSynced    = "Synced"
	SyncOutOfSync = "OutOfSync"
	SyncUnknown   = "Unknown"

	HealthUnknown = "Unknown"

	// A cluster is Connected while its agent's stream is open and heard from within the stale
	// bound; Stale when the stream closed or went silent; NeverConnected before its first stream.
	StateConnected = "Connected"
	StateStale     = "Stale"
	StateNeverSeen = "NeverConnected"
)

// Report is the latest an agent said about one app, plus the hub's delivery bookkeeping.
type Report struct {
	App             string      `json:"app"`
	Sync            string      `json:"sync"`
	Health          string      `json:"health"`
	Message         string      `json:"message,omitempty"`
	Generation      uint64      `json:"generation"`
	AppliedRevision string      `json:"appliedRevision,omitempty"`
	AppliedDigest   string      `json:"appliedDigest,omitempty"`
	HealthyRevision string      `json:"healthyRevision,omitempty"`
	AppliedAt       time.Time   `json:"appliedAt,omitempty"`
	Drift           []DriftItem `json:"drift,omitempty"`
	// Resources are the app's objects with their health, as the agent last reported them.
	Resources []ResourceItem `json:"resources,omitempty"`
	// Events are the latest Warning Events of the app's objects, as the agent last reported
	// them (events.go).
	Events []EventItem `json:"events,omitempty"`
	// RolledBackRevision is set while the agent holds the app at its last healthy revision
	// because this one did not become healthy; Message says why.
	RolledBackRevision string `json:"rolledBackRevision,omitempty"`
	// LastError is the latest NACK reason, cleared by the next ACK.
	LastError string `json:"lastError,omitempty"`
	// CommitToApplied is how long the applied revision took from commit to ACK.
	CommitToApplied time.Duration `json:"commitToApplied,omitempty"`
	// Reported is when the hub last heard about this app.
	Reported time.Time `json:"reported"`
	// HealthySince is when Health became Healthy for the applied revision; zero otherwise.
	HealthySince time.Time `json:"healthySince,omitempty"`
	// RenderError is why the hub's latest render of the app for this cluster failed, at
	// RenderRevision; cleared by the next good render (see SetRenderError).
	RenderError    string `json:"renderError,omitempty"`
	RenderRevision string `json:"renderRevision,omitempty"`
}

// DriftItem is one drifted object.
type DriftItem struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Contested bool   `json:"contested,omitempty"`
	Diff      string `json:"diff,omitempty"`
}

// ResourceItem is one of an app's objects with its health.
type ResourceItem struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Health    string `json:"health"`
	Message   string `json:"message,omitempty"`
}

// Presence is what the hub knows about a cluster's agent link.
type Presence struct {
	Connected    bool
	LastSeen     time.Time
	AgentVersion string
}

// AppInfo is the hub's view of one Application.
type AppInfo struct {
	Name           string
	SourceFile     string
	RepoURL        string
	TargetRevision string
	Path           string
	Revision       string
	// Clusters are the clusters the app targets among those this hub renders for (on one of
	// several replicas, those it owns); Destination says which of any cluster it targets.
	Clusters    []string
	Destination apps.Destination
	Error       string
	Warnings    []string
	// RepoState is RepoCurrent, or RepoStale when the latest fetch failed; LastFetched is the
	// last successful fetch.
	RepoState   string
	LastFetched time.Time
	// Rollout is the app's spec.rollout (nil: none), for the replica that coordinates it.
	Rollout *apps.RolloutSpec
	// Spec and Doc are the digest and manifest of the app's definition (apps.Application),
	// for its rollouts: an edit is rolled out like a commit.
	Spec string
	Doc  []byte
	// Chart and ChartVersion are set for an app rendered from a Helm chart: its name in a
	// repository (or path in Git) and the version it resolved to.
	Chart        string
	ChartVersion string
}

// Repository states.
const (
	RepoCurrent = "Current"
	RepoStale   = "Stale"
)

// Row is one line of `flotilla status`: an app on a cluster.
type Row struct {
	Cluster         string
	App             string
	Sync            string
	Health          string
	DesiredRevision string
	AppliedRevision string
	HealthyRevision string
	LastSeen        time.Time
	Drift           []DriftItem
	Message         string
	LastError       string
	CommitToApplied time.Duration
	// Pinned is the revision an operator pinned the app to on this cluster, if any.
	Pinned string
	// Rollout says why a progressive rollout holds the app back here, if it does.
	Rollout string
	// From the agent's latest report and the desired state, read in the same pass (the
	// operator API's rows need them; reading them row by row took the fleet's lock twice a row).
	RolledBackRevision string
	HealthySince       time.Time
	AppliedAt          time.Time
	// DesiredSpec is the digest of the definition the desired state was rendered with;
	// AppliedDesired, whether the agent reported applying exactly that desired state.
	DesiredSpec    string
	AppliedDesired bool
}

// RestoreReport puts back a report persisted before a restart.
func (f *Fleet) RestoreReport(cluster string, r *Report) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status[cluster] == nil {
		f.status[cluster] = map[string]*Report{}
	}
	f.status[cluster][r.App] = r
	f.noteBaseline(r.App)
}

// Seen records that the cluster's agent said something now. It takes the presence lock only
// (see Fleet.pmu).
func (f *Fleet) Seen(cluster, agentVersion string, connected bool) {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	p := f.presence[cluster]
	if p == nil {
		p = &Presence{}
		f.presence[cluster] = p
	}
	p.Connected = connected
	p.LastSeen = f.now()
	if agentVersion != "" {
		p.AgentVersion = agentVersion
	}
}

// Presence returns what is known of the cluster's link and its state name.
func (f *Fleet) Presence(cluster string) (Presence, string) {
	f.pmu.Lock()
	defer f.pmu.Unlock()
	return f.presenceLocked(cluster)
}

// presenceLocked is Presence with f.pmu held.
func (f *Fleet) presenceLocked(cluster string) (Presence, string) {
	p := f.presence[cluster]
	if p == nil {
		return Presence{}, StateNeverSeen
	}
	switch {
	case !p.Connected, f.now().Sub(p.LastSeen) > f.staleAge:
		return *p, StateStale
	default:
		return *p, StateConnected
	}
}

// Ack records that the agent applied a generation. first is true when this applied a new
// revision or digest (not a duplicate).
func (f *Fleet) Ack(cluster, app string, generation uint64, revision, digest string) (r2 *Report, first bool) {
	f.mu.Lock()
	r := f.reportLocked(cluster, app)
	first = r.AppliedDigest != digest || r.AppliedRevision != revision
	r.Generation = generation
	r.AppliedRevision = revision
	r.AppliedDigest = digest
	if first {
		r.HealthySince = time.Time{} // healthy again only when the agent says so of this one
	}
	r.LastError = ""
	now := f.now()
	r.Reported = now
	if d := f.desired[cluster][app]; d != nil && d.Generation == generation && (d.SyncRequested || d.PruneConfirmed) {
		// An operator's request is done once acknowledged: a reconnect must not look like a new
		// request (that would re-apply a revision the agent rolled back).
		nd := *d
		nd.SyncRequested, nd.PruneConfirmed = false, false
		f.desired[cluster][app] = &nd
	}
	if d := f.desired[cluster][app]; d != nil && d.Revision == revision && first && !d.CommitTime.IsZero() {
		r.CommitToApplied = now.Sub(d.CommitTime)
	}
	out := *r
	f.mu.Unlock()
	f.notify(cluster, &out)
	return &out, first
}

// Nack records that the agent failed to apply a generation.
func (f *Fleet) Nack(cluster, app string, generation uint64, reason string) {
	f.mu.Lock()
	r := f.reportLocked(cluster, app)
	r.LastError = fmt.Sprintf("generation %d: %s", generation, Truncate(reason, MaxMessageBytes))
	r.Reported = f.now()
	out := *r
	f.mu.Unlock()
	f.notify(cluster, &out)
}

// Status records an agent's status report for an app.
func (f *Fleet) Status(cluster string, s Report) {
	capReport(&s)
	f.mu.Lock()
	r := f.reportLocked(cluster, s.App)
	lastErr, c2a := r.LastError, r.CommitToApplied
	renderErr, renderRev := r.RenderError, r.RenderRevision
	if s.AppliedDigest != "" && s.AppliedDigest == r.AppliedDigest && s.Generation < r.Generation {
		s.Generation = r.Generation
	}
	s.HealthySince = healthySince(r, &s, f.now())
	*r = s
	r.LastError, r.CommitToApplied = lastErr, c2a
	r.RenderError, r.RenderRevision = renderErr, renderRev
	r.Reported = f.now()
	out := *r
	f.mu.Unlock()
	f.notify(cluster, &out)
}

// Forget drops the reports of an app on a cluster (after it was removed there).
func (f *Fleet) Forget(cluster, app string) {
	f.mu.Lock()
	delete(f.status[cluster], app)
	delete(f.rm.since[cluster], app)
	f.mu.Unlock()
	if f.onForget != nil {
		f.onForget(cluster, app)
	}
}

func (f *Fleet) reportLocked(cluster, app string) *Report {
	if f.status[cluster] == nil {
		f.status[cluster] = map[string]*Report{}
	}
	r := f.status[cluster][app]
	if r == nil {
		r = &Report{App: app, Sync: SyncUnknown, Health: HealthUnknown}
		f.status[cluster][app] = r
	}
	return r
}

func (f *Fleet) notify(cluster string, r *Report) {
	if f.onReport != nil {
		f.onReport(cluster, r)
	}
}

// SetApps replaces the hub's list of apps (for `flotilla apps`).
func (f *Fleet) SetApps(list []*AppInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.apps = make(map[string]*AppInfo, len(list))
	for _, a := range list {
		f.apps[a.Name] = a
	}
}

// Apps lists the apps, sorted by name.
func (f *Fleet) Apps() []AppInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]AppInfo, 0, len(f.apps))
	for _, a := range f.apps {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Rows returns one row per cluster×app that is desired, reported, or targeted by an app
// (after a complete load of the apps), sorted by cluster and app. A cluster whose agent is not
// connected, or stale, never shows Healthy: its health is Unknown and the message says since
// when it has been silent. An app whose latest render for the cluster failed is RenderFailed.
func (f *Fleet) Rows() []Row {
	f.mu.Lock()
	defer f.mu.Unlock()
	// The clusters of every map that may hold a row; rows are made cluster by cluster, so that
	// only each cluster's few apps are sorted, not every row.
	seen := make(map[string]bool, len(f.status))
	var clusters []string
	note := func(c string) {
		if !seen[c] {
			seen[c] = true
			clusters = append(clusters, c)
		}
	}
	for c := range f.targets {
		note(c)
	}
	for c := range f.desired {
		note(c)
	}
	for c := range f.status {
		note(c)
	}
	for c := range f.rm.since {
		note(c)
	}
	slices.Sort(clusters)
	rows := make([]Row, 0, 2*len(clusters))
	var names []string
	for _, c := range clusters {
		rows, names = f.appendClusterRows(rows, names[:0], c)
	}
	return rows
}

// ClusterRows is Rows of one cluster: what a status call for one cluster reads, without
// building the whole fleet's rows.
func (f *Fleet) ClusterRows(cluster string) []Row {
	f.mu.Lock()
	defer f.mu.Unlock()
	rows, _ := f.appendClusterRows(nil, nil, cluster)
	return rows
}

// appendClusterRows appends the rows of cluster's apps, sorted by app, using names as scratch
// space; it returns both. Called with f.mu held.
func (f *Fleet) appendClusterRows(rows []Row, names []string, cluster string) ([]Row, []string) {
	names = slices.AppendSeq(names, maps.Keys(f.targets[cluster]))
	names = slices.AppendSeq(names, maps.Keys(f.desired[cluster]))
	names = slices.AppendSeq(names, maps.Keys(f.status[cluster]))
	names = slices.AppendSeq(names, maps.Keys(f.rm.since[cluster]))
	slices.Sort(names)
	for _, a := range slices.Compact(names) {
		rows = append(rows, f.rowLocked(cluster, a))
	}
	return rows, names
}

func (f *Fleet) rowLocked(cluster, app string) Row {
	row := Row{Cluster: cluster, App: app, Sync: SyncUnknown, Health: HealthUnknown}
	d := f.desired[cluster][app]
	if d != nil {
		row.DesiredRevision = d.Revision
	}
	row.Pinned = f.pins[app][cluster]
	p, state := f.Presence(cluster)
	row.LastSeen = p.LastSeen
	r := f.status[cluster][app]
	if r != nil {
		row.RolledBackRevision, row.HealthySince, row.AppliedAt = r.RolledBackRevision, r.HealthySince, r.AppliedAt
		if d != nil {
			row.DesiredSpec, row.AppliedDesired = d.Spec, r.AppliedDigest == d.Digest()
		}
		row.Sync, row.Health = r.Sync, r.Health
		row.AppliedRevision, row.HealthyRevision = r.AppliedRevision, r.HealthyRevision
		if d != nil && r.AppliedDigest == d.Bundle.Digest && r.AppliedRevision != d.Revision {
			// The agent holds exactly what the desired revision renders to: a later commit
			// that did not change this app's objects was not re-sent.
			row.AppliedRevision = d.Revision
			if r.HealthyRevision == r.AppliedRevision {
				row.HealthyRevision = d.Revision
			}
		}
		row.Drift = r.Drift
		row.Message = r.Message
		if rev := r.RolledBackRevision; rev != "" {
			row.Message = "RolledBack from " + shortRev(rev) + ": " + strings.TrimPrefix(r.Message, rolledBackPrefix+rev+" ")
		}
		row.CommitToApplied = r.CommitToApplied
		if r.LastError != "" {
			row.LastError = r.LastError
			// The agent's own message, once it reports after the NACK, tells the same failure
			// with its retry progress ("attempt 2/4, retrying in 10s"): keep that one.
			_, reason, _ := strings.Cut(r.LastError, ": ")
			if reason == "" || !strings.Contains(r.Message, reason) {
				row.Message = r.LastError
			}
		}
		if d != nil && r.AppliedDigest != d.Bundle.Digest && row.Sync == SyncSynced {
			row.Sync = SyncOutOfSync
			if row.Message == "" {
				row.Message = "waiting for the agent to apply " + shortRev(d.Revision)
			}
		}
	}
	switch {
	case d == nil && f.targets[cluster][app]:
		row.Message = "not rendered yet (see flotilla apps)"
	case d == nil && r != nil:
		row.Message = "no longer desired on this cluster"
	}
	f.removingRow(&row)
	if row.Pinned != "" && row.Message == "" {
		row.Message = "Pinned to " + shortRev(row.Pinned) + " by an operator (flotilla rollback --clear to follow Git again)"
	}
	if hold := f.holds[app][cluster]; hold != "" && row.Pinned == "" {
		row.Rollout = hold
		if row.Message == "" {
			row.Message = hold
		}
	}
	if state != StateConnected {
		row.Health = HealthUnknown
		row.Sync = SyncUnknown
		switch {
		case state == StateNeverSeen:
			row.Message = "agent has never connected"
		case !p.Connected:
			row.Message = fmt.Sprintf("cluster Stale: agent disconnected, silent for %s", f.now().Sub(p.LastSeen).Round(time.Second))
		default:
			row.Message = fmt.Sprintf("cluster Stale: silent for %s", f.now().Sub(p.LastSeen).Round(time.Second))
		}
	}
	if r != nil && r.RenderError != "" {
		renderFailedRow(&row, r, d)
	}
	return row
}

// rolledBackPrefix starts the message of an agent that rolled an app back: "RolledBack:
// revision <rev> <reason>" (agent/internal/syncer).
const rolledBackPrefix = "RolledBack: revision "

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
