package ui

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/flotilla-dev/flotilla/hub/internal/drift"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// statusRow is one app on one cluster in a page's table: its live cell and the rest.
type statusRow struct {
	Cell     *cell
	Status   *flotillav1.AppClusterStatus
	LastSeen string
}

// appView is the App page: what `flotilla apps` shows of it, and a row per cluster of one page
// of its clusters.
type appView struct {
	App *flotillav1.App
	// Targets are the first maxTargets clusters the app targets; MoreTargets counts the rest.
	Targets     []string
	MoreTargets int
	Page        *fleetView
	Rows        []statusRow
	// Rollout is the app's rollout (nil: it has none).
	Rollout *rolloutView
}

func (h *Handler) appPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	name := r.PathValue("app")
	list, err := h.cfg.Backend.ListApps(ctx, &flotillav1.ListAppsRequest{Name: name})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := &appView{}
	for _, a := range list.Items {
		if a.Name == name { // a hub older than ListAppsRequest.name lists every app
			v.App = a
		}
	}
	if v.App == nil {
		h.fail(w, r, notFound("no app "+name+" in the hub's apps source"))
		return
	}
	v.Targets, v.MoreTargets = v.App.Clusters, 0
	if n := len(v.Targets); n > maxTargets {
		v.Targets, v.MoreTargets = v.Targets[:maxTargets], n-maxTargets
	}
	q := query{App: name, Page: parseQuery(r.URL.Query()).Page}
	v.Page, err = readPage(ctx, h.cfg.Backend, q, h.cfg.PageSize, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v.Page.Prev, v.Page.Next = pager(v.Page, query{Page: q.Page}, "/apps/"+url.PathEscape(name)) // the path names the app
	v.Rollout = rolloutOf(ctx, h.cfg.Backend, name)
	v.Rows = statusRows(v.Page)
	q.Rollout = true // its event stream carries the Rollout panel too
	h.render(w, r, http.StatusOK, "app", "App "+name, eventsOf(q), v)
}

// maxTargets is how many of an app's target clusters its page names (the rest are counted).
const maxTargets = 50

// pager is the previous and next page links of v, a view of q on path.
func pager(v *fleetView, q query, path string) (prev, next string) {
	if v.Page > 1 {
		prev = q.withPage(path, v.Page-1)
	}
	if v.Page < v.Pages {
		next = q.withPage(path, v.Page+1)
	}
	return prev, next
}

// statusRows are the cells of a page of the fleet as table rows, cluster by cluster and app by
// app.
func statusRows(v *fleetView) []statusRow {
	var out []statusRow
	for _, row := range v.Rows {
		stale := row.State != "Connected"
		for _, s := range row.Statuses {
			out = append(out, statusRow{Cell: newCell(s, stale), Status: s, LastSeen: agoMs(s.LastSeenUnixMs)})
		}
	}
	return out
}

// clusterView is the Cluster page.
type clusterView struct {
	Cluster  *flotillav1.Cluster
	Labels   string
	LastSeen string
	Rows     []statusRow
}

func (h *Handler) clusterPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	name := r.PathValue("cluster")
	q := query{Cluster: name, Page: 1}
	page, err := readPage(ctx, h.cfg.Backend, q, 1, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(page.Rows) == 0 || page.Rows[0].Info.GetName() != name {
		h.fail(w, r, notFound("no cluster "+name+" registered"))
		return
	}
	v := &clusterView{Cluster: page.Rows[0].Info, Rows: statusRows(page)}
	v.Labels, v.LastSeen = labels.Set(v.Cluster.Labels).String(), agoMs(v.Cluster.LastSeenUnixMs)
	sort.Slice(v.Rows, func(i, j int) bool { return v.Rows[i].Status.App < v.Rows[j].Status.App })
	h.render(w, r, http.StatusOK, "cluster", "Cluster "+name, eventsOf(q), v)
}

// appClusterView is the App-on-a-cluster page.
type appClusterView struct {
	Cluster, App string
	Row          statusRow
	Drift        []drift.Entry
	Objects      []object
	// Events are the latest Warning Events of the app's objects, as its agent reported them.
	Events  []event
	History []historyEntry
	// Target is the revision a rollback would pin to: the latest other revision that was
	// Healthy here, else the last healthy one the agent reported.
	Target string
}

// object is one of the app's objects with its health.
type object struct {
	Kind, Name, Health, Message string
}

// event is a Warning Event of one of the app's objects.
type event struct {
	Kind, Name, Reason, Message, LastSeen string
	Count                                 int32
}

type historyEntry struct {
	Time string
	*flotillav1.HistoryEntry
}

func (h *Handler) appOnClusterPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	v := &appClusterView{Cluster: r.PathValue("cluster"), App: r.PathValue("app")}
	st, err := h.cfg.Backend.Status(ctx, &flotillav1.StatusRequest{App: v.App, Cluster: v.Cluster, Resources: true})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if len(st.Items) == 0 {
		h.fail(w, r, notFound("app "+v.App+" has no status on cluster "+v.Cluster))
		return
	}
	s := st.Items[0]
	q := query{App: v.App, Cluster: v.Cluster, Page: 1}
	page, err := readPage(ctx, h.cfg.Backend, q, 1, "")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	stale := len(page.Rows) == 0 || page.Rows[0].State != "Connected"
	v.Row = statusRow{Cell: newCell(s, stale), Status: s, LastSeen: agoMs(s.LastSeenUnixMs)}
	v.Drift = drift.Entries(st.Items)
	for _, res := range s.Resources {
		kind, name := drift.Object(res.Object)
		v.Objects = append(v.Objects, object{Kind: kind, Name: name, Health: res.Health, Message: res.Message})
	}
	for _, e := range s.Events {
		kind, name := drift.Object(e.Object)
		v.Events = append(v.Events, event{Kind: kind, Name: name, Reason: e.Reason, Message: e.Message, Count: e.Count, LastSeen: agoMs(e.LastSeenUnixMs)})
	}
	hist, err := h.cfg.Backend.History(ctx, &flotillav1.HistoryRequest{App: v.App, Cluster: v.Cluster, Limit: 20})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, e := range hist.Items {
		v.History = append(v.History, historyEntry{Time: time.UnixMilli(e.TimeUnixMs).UTC().Format(time.DateTime), HistoryEntry: e})
		if v.Target == "" && e.Health == "Healthy" && e.Revision != s.AppliedRevision {
			v.Target = e.Revision
		}
	}
	if v.Target == "" && s.HealthyRevision != s.AppliedRevision {
		v.Target = s.HealthyRevision
	}
	h.render(w, r, http.StatusOK, "appcluster", v.App+" on "+v.Cluster, eventsOf(q), v)
}
