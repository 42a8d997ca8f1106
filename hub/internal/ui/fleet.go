package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// States the fleet page filters cells by (state=...), as the hub's FleetPage takes them.
var states = []string{"stale", "drifted", "Degraded", "RolledBack", "Pinned", "OutOfSync"}

// query is a view's filters, all in its URL so that it can be shared.
type query struct {
	Selector string
	App      string
	Cluster  string
	State    string
	Revision string
	Page     int
	// Rollout: the App page's event stream, which also carries its Rollout panel (rollout=1).
	Rollout bool
}

func parseQuery(v url.Values) query {
	q := query{
		Selector: strings.TrimSpace(v.Get("selector")), App: v.Get("app"), Cluster: v.Get("cluster"),
		State: v.Get("state"), Revision: strings.TrimSpace(v.Get("revision")),
	}
	q.Page, _ = strconv.Atoi(v.Get("page"))
	q.Rollout = v.Get("rollout") == "1" && q.App != ""
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
	if q.Rollout {
		v.Set("rollout", "1")
	}
	return v.Encode()
}

// withPage is the URL of page p of the view q on path.
func (q query) withPage(path string, p int) string {
	q.Page = p
	if e := q.encode(); e != "" {
		return path + "?" + e
	}
	return path
}

// request is the hub's FleetPage request of q, pages of size; known is the version of the
// page the caller holds ("": none).
func (q query) request(size int, known string) *flotillav1.FleetPageRequest {
	return &flotillav1.FleetPageRequest{
		Selector: q.Selector, App: q.App, Cluster: q.Cluster, State: q.State, Revision: q.Revision,
		Page: int32(q.Page), PageSize: int32(size), KnownVersion: known,
	}
}

// readPage asks the hub for one page of the fleet matrix (it filters, counts and pages), for
// the page on path.
func readPage(ctx context.Context, b Backend, q query, size int, path string) (*fleetView, error) {
	resp, err := b.FleetPage(ctx, q.request(size, ""))
	if err != nil {
		return nil, err
	}
	return viewOf(resp, q, path), nil
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
	if n := max(len(s.Drift), int(s.DriftCount)); n > 0 {
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

// counts are the tallies over every cell the filters keep (all pages), as the hub counted.
type counts struct {
	Clusters, Cells                                   int
	Synced, OutOfSync, Healthy, Degraded, Progressing int
	Drifted, Stale, RolledBack, Pinned                int
}

func countsOf(c *flotillav1.FleetCounts) counts {
	return counts{
		Clusters: int(c.GetClusters()), Cells: int(c.GetCells()), Synced: int(c.GetSynced()), OutOfSync: int(c.GetOutOfSync()),
		Healthy: int(c.GetHealthy()), Degraded: int(c.GetDegraded()), Progressing: int(c.GetProgressing()), Drifted: int(c.GetDrifted()),
		Stale: int(c.GetStale()), RolledBack: int(c.GetRolledBack()), Pinned: int(c.GetPinned()),
	}
}

// fleetRow is one cluster of the matrix: a cell per app column (nil: not targeted).
type fleetRow struct {
	Cluster string
	Href    string
	State   string
	Labels  string
	Cells   []*cell
	// Info is the cluster as the hub knows it; Statuses its cells as the hub sent them.
	Info     *flotillav1.Cluster
	Statuses []*flotillav1.AppClusterStatus
}

// fleetView is one page of the fleet matrix.
type fleetView struct {
	Q           query
	States      []string
	Apps        []string
	Rows        []fleetRow
	Counts      counts
	Page, Pages int
	Prev, Next  string
	Unreachable []string
	// Version is the hub's version of the page (FleetPageResponse.version).
	Version string
}

// viewOf is the hub's page resp of the view q as the page on path shows it.
func viewOf(resp *flotillav1.FleetPageResponse, q query, path string) *fleetView {
	v := &fleetView{Q: q, States: states, Apps: resp.Apps, Counts: countsOf(resp.Counts), Page: int(resp.Page), Pages: int(resp.Pages),
		Unreachable: resp.UnreachablePeers, Version: resp.Version}
	v.Page, v.Pages = max(v.Page, 1), max(v.Pages, 1)
	col := map[string]int{}
	for i, a := range v.Apps {
		col[a] = i
	}
	for _, r := range resp.Rows {
		c := r.Cluster
		row := fleetRow{Cluster: c.GetName(), Href: "/clusters/" + url.PathEscape(c.GetName()), State: c.GetState(),
			Labels: labels.Set(c.GetLabels()).String(), Cells: make([]*cell, len(v.Apps)), Info: c, Statuses: r.Cells}
		stale := c.GetState() != "Connected"
		for _, s := range r.Cells {
			if i, ok := col[s.App]; ok {
				row.Cells[i] = newCell(s, stale)
			}
		}
		v.Rows = append(v.Rows, row)
	}
	v.Prev, v.Next = pager(v, q, path)
	return v
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
	v, err := readPage(ctx, h.cfg.Backend, q, h.cfg.PageSize, "/")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, "fleet", "Fleet", eventsOf(q), v)
}
