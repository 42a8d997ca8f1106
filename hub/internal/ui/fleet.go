package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/labels"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// States the fleet page filters cells by (state=...).
var states = []string{"stale", "drifted", "Degraded", "RolledBack", "Pinned", "OutOfSync"}

// query is a view's filters, all in its URL so that it can be shared.
type query struct {
	Selector string
	App      string
	Cluster  string
	State    string
	Revision string
	Page     int
	// All: every matching cluster, unpaged. Only an event stream takes it (all=1): the App
	// page lists every cluster of its app and listens to all of them.
	All bool
}

func parseQuery(v url.Values) query {
	q := query{
		Selector: strings.TrimSpace(v.Get("selector")), App: v.Get("app"), Cluster: v.Get("cluster"),
		State: v.Get("state"), Revision: strings.TrimSpace(v.Get("revision")),
	}
	q.Page, _ = strconv.Atoi(v.Get("page"))
	q.All = v.Get("all") == "1"
	if q.Page < 1 {
		q.Page = 1
	}
	return q
}

// encode is the query string of q, page included when not the first.
func (q query) encode() string {
	v := url.Values{}
	for k, s := range map[string]string{"selector": q.Selector, "app": q.App, "cluster": q.Cluster, "state": q.State, "revision": q.Revision} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	if q.All {
		v.Set("all", "1")
	}
	return v.Encode()
}

func (q query) withPage(p int) string {
	q.Page = p
	if e := q.encode(); e != "" {
		return "/?" + e
	}
	return "/"
}

// snapshot is the fleet as one read of the backend saw it.
type snapshot struct {
	rows     []*flotillav1.AppClusterStatus
	clusters []*flotillav1.Cluster
	apps     []*flotillav1.App
	// unreachable are hub replicas that did not answer: their clusters' rows may be missing.
	unreachable []string
}

// read takes a snapshot of the whole fleet: three calls, in parallel.
func read(ctx context.Context, b Backend) (*snapshot, error) {
	s := &snapshot{}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		resp, err := b.Status(gctx, &flotillav1.StatusRequest{})
		if err == nil {
			s.rows, s.unreachable = resp.Items, resp.UnreachablePeers
		}
		return err
	})
	g.Go(func() error {
		resp, err := b.ListClusters(gctx, &flotillav1.ListClustersRequest{})
		if err == nil {
			s.clusters = resp.Items
		}
		return err
	})
	g.Go(func() error {
		resp, err := b.ListApps(gctx, &flotillav1.ListAppsRequest{})
		if err == nil {
			s.apps = resp.Items
		}
		return err
	})
	return s, g.Wait()
}

// cell is one app on one cluster as a page shows it, every field already text: the live
// updates send it as JSON and the page's script sets each part's textContent.
type cell struct {
	Key     string `json:"k"`
	Class   string `json:"c"`
	Sync    string `json:"s"`
	Health  string `json:"h"`
	Rev     string `json:"r"`
	Drift   string `json:"d"`
	Flags   string `json:"f"`
	Href    string `json:"-"`
	Cluster string `json:"-"`
	App     string `json:"-"`
}

func cellKey(cluster, app string) string { return cluster + "\x1f" + app }

func newCell(s *flotillav1.AppClusterStatus, stale bool) *cell {
	c := &cell{
		Key: cellKey(s.Cluster, s.App), Sync: s.Sync, Health: s.Health, Rev: short(s.AppliedRevision),
		Href: cellHref(s.Cluster, s.App), Cluster: s.Cluster, App: s.App,
	}
	if c.Rev == "" {
		c.Rev = short(s.DesiredRevision)
	}
	if n := len(s.Drift); n > 0 {
		c.Drift = fmt.Sprintf("drift %d", n)
	}
	var flags []string
	if stale {
		flags = append(flags, "stale")
	}
	if s.PinnedRevision != "" {
		flags = append(flags, "pinned "+short(s.PinnedRevision))
	}
	if s.RolledBackRevision != "" {
		flags = append(flags, "rolled back from "+short(s.RolledBackRevision))
	}
	if s.LastError != "" {
		flags = append(flags, "error")
	}
	c.Flags = strings.Join(flags, ", ")
	switch {
	case s.Health == "Degraded" || s.Sync == "RenderFailed" || s.LastError != "" || s.RolledBackRevision != "":
		c.Class = "bad"
	case s.Sync != "Synced" || s.Health != "Healthy" || len(s.Drift) > 0 || stale:
		c.Class = "warn"
	default:
		c.Class = "ok"
	}
	return c
}

func cellHref(cluster, app string) string {
	return "/clusters/" + url.PathEscape(cluster) + "/apps/" + url.PathEscape(app)
}

// matches tells whether a row is in the state asked for.
func matches(state string, s *flotillav1.AppClusterStatus, stale bool) bool {
	switch state {
	case "":
		return true
	case "stale":
		return stale
	case "drifted":
		return len(s.Drift) > 0
	case "Degraded":
		return s.Health == "Degraded"
	case "RolledBack":
		return s.RolledBackRevision != ""
	case "Pinned":
		return s.PinnedRevision != ""
	case "OutOfSync":
		return s.Sync != "Synced"
	}
	return false
}

// counts are the tallies over every cell the filters keep (all pages).
type counts struct {
	Clusters, Cells                                   int
	Synced, OutOfSync, Healthy, Degraded, Progressing int
	Drifted, Stale, RolledBack, Pinned                int
}

func (c *counts) add(s *flotillav1.AppClusterStatus, stale bool) {
	c.Cells++
	if s.Sync == "Synced" {
		c.Synced++
	} else {
		c.OutOfSync++
	}
	switch s.Health {
	case "Healthy":
		c.Healthy++
	case "Degraded":
		c.Degraded++
	case "Progressing":
		c.Progressing++
	}
	if len(s.Drift) > 0 {
		c.Drifted++
	}
	if stale {
		c.Stale++
	}
	if s.RolledBackRevision != "" {
		c.RolledBack++
	}
	if s.PinnedRevision != "" {
		c.Pinned++
	}
}

// fleetRow is one cluster of the matrix: a cell per app column (nil: not targeted).
type fleetRow struct {
	Cluster string
	Href    string
	State   string
	Labels  string
	Cells   []*cell
}

// fleetView is the fleet page.
type fleetView struct {
	Q           query
	States      []string
	Apps        []string
	Rows        []fleetRow
	Counts      counts
	Page, Pages int
	Prev, Next  string
	Unreachable []string
}

// build applies q to s: the clusters that match (and, with an app, state or revision filter,
// have a cell that does), sorted by name, the page asked for of them, and the counts of all.
func build(s *snapshot, q query, pageSize int) (*fleetView, error) {
	var sel labels.Selector
	if q.Selector != "" {
		var err error
		if sel, err = labels.Parse(q.Selector); err != nil {
			return nil, badQuery(fmt.Sprintf("selector %q: %v", q.Selector, err))
		}
	}
	known := map[string]*flotillav1.Cluster{}
	for _, c := range s.clusters {
		known[c.Name] = c
	}
	keep := func(name string) bool {
		if q.Cluster != "" && name != q.Cluster {
			return false
		}
		if sel == nil {
			return true
		}
		c, ok := known[name]
		return ok && sel.Matches(labels.Set(c.Labels))
	}
	stale := func(name string) bool {
		c, ok := known[name]
		return !ok || c.State != "Connected"
	}
	v := &fleetView{Q: q, States: states, Unreachable: s.unreachable}
	byCluster := map[string][]*flotillav1.AppClusterStatus{}
	apps := map[string]bool{}
	cellFilter := q.App != "" || q.State != "" || q.Revision != ""
	for _, r := range s.rows {
		if (q.App != "" && r.App != q.App) || !keep(r.Cluster) {
			continue
		}
		st := stale(r.Cluster)
		if !matches(q.State, r, st) {
			continue
		}
		if q.Revision != "" && !strings.HasPrefix(r.DesiredRevision, q.Revision) && !strings.HasPrefix(r.AppliedRevision, q.Revision) {
			continue
		}
		v.Counts.add(r, st)
		byCluster[r.Cluster] = append(byCluster[r.Cluster], r)
		apps[r.App] = true
	}
	if !cellFilter {
		for _, c := range s.clusters {
			if keep(c.Name) {
				if _, ok := byCluster[c.Name]; !ok {
					byCluster[c.Name] = nil
				}
			}
		}
		for _, a := range s.apps {
			apps[a.Name] = true
		}
	} else if q.App != "" {
		apps[q.App] = true
	}
	names := make([]string, 0, len(byCluster))
	for n := range byCluster {
		names = append(names, n)
	}
	sort.Strings(names)
	for a := range apps {
		v.Apps = append(v.Apps, a)
	}
	sort.Strings(v.Apps)
	col := map[string]int{}
	for i, a := range v.Apps {
		col[a] = i
	}
	v.Counts.Clusters = len(names)
	if q.All {
		pageSize = max(len(names), 1)
	}
	v.Pages = (len(names) + pageSize - 1) / pageSize
	if v.Pages == 0 {
		v.Pages = 1
	}
	v.Page = min(q.Page, v.Pages)
	from := (v.Page - 1) * pageSize
	to := min(from+pageSize, len(names))
	for _, n := range names[from:to] {
		row := fleetRow{Cluster: n, Href: "/clusters/" + url.PathEscape(n), Cells: make([]*cell, len(v.Apps)), State: "Unknown"}
		if c, ok := known[n]; ok {
			row.State = c.State
			row.Labels = labels.Set(c.Labels).String()
		}
		st := stale(n)
		for _, r := range byCluster[n] {
			row.Cells[col[r.App]] = newCell(r, st)
		}
		v.Rows = append(v.Rows, row)
	}
	if v.Page > 1 {
		v.Prev = q.withPage(v.Page - 1)
	}
	if v.Page < v.Pages {
		v.Next = q.withPage(v.Page + 1)
	}
	return v, nil
}

// cells are the cells on the view's page, by key.
func (v *fleetView) cells() map[string]*cell {
	out := map[string]*cell{}
	for _, r := range v.Rows {
		for _, c := range r.Cells {
			if c != nil {
				out[c.Key] = c
			}
		}
	}
	return out
}

// badQuery is a filter the page cannot apply.
type badQuery string

func (b badQuery) Error() string { return string(b) }

func (h *Handler) fleetPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	q := parseQuery(r.URL.Query())
	q.All = false // the fleet page is always paged
	s, err := read(ctx, h.cfg.Backend)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v, err := build(s, q, h.cfg.PageSize)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "fleet", "Fleet", eventsOf(q), v)
}
