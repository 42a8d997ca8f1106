package ui

import (
	"context"
	"net/http"
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

// appView is the App page: what `flotilla apps` shows of it, and a row per cluster.
type appView struct {
	App  *flotillav1.App
	Rows []statusRow
	// Rollout is the app's rollout (nil: it has none).
	Rollout *rolloutView
}

func (h *Handler) appPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	name := r.PathValue("app")
	s, err := read(ctx, h.cfg.Backend)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := &appView{}
	for _, a := range s.apps {
		if a.Name == name {
			v.App = a
		}
	}
	if v.App == nil {
		h.fail(w, r, notFound("no app "+name+" in the hub's apps source"))
		return
	}
	v.Rollout = rolloutOf(ctx, h.cfg.Backend, name)
	stale := staleness(s.clusters)
	for _, row := range s.rows {
		if row.App == name {
			v.Rows = append(v.Rows, statusRow{Cell: newCell(row, stale(row.Cluster)), Status: row, LastSeen: agoMs(row.LastSeenUnixMs)})
		}
	}
	sort.Slice(v.Rows, func(i, j int) bool { return v.Rows[i].Status.Cluster < v.Rows[j].Status.Cluster })
	h.render(w, r, http.StatusOK, "app", "App "+name, eventsOf(query{App: name, All: true}), v)
}

func staleness(clusters []*flotillav1.Cluster) func(string) bool {
	state := map[string]string{}
	for _, c := range clusters {
		state[c.Name] = c.State
	}
	return func(n string) bool { return state[n] != "Connected" }
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
	list, err := h.cfg.Backend.ListClusters(ctx, &flotillav1.ListClustersRequest{})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v := &clusterView{}
	for _, c := range list.Items {
		if c.Name == name {
			v.Cluster = c
		}
	}
	if v.Cluster == nil {
		h.fail(w, r, notFound("no cluster "+name+" registered"))
		return
	}
	v.Labels, v.LastSeen = labels.Set(v.Cluster.Labels).String(), agoMs(v.Cluster.LastSeenUnixMs)
	st, err := h.cfg.Backend.Status(ctx, &flotillav1.StatusRequest{Cluster: name})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	stale := v.Cluster.State != "Connected"
	for _, row := range st.Items {
		v.Rows = append(v.Rows, statusRow{Cell: newCell(row, stale), Status: row, LastSeen: agoMs(row.LastSeenUnixMs)})
	}
	sort.Slice(v.Rows, func(i, j int) bool { return v.Rows[i].Status.App < v.Rows[j].Status.App })
	h.render(w, r, http.StatusOK, "cluster", "Cluster "+name, eventsOf(query{Cluster: name}), v)
}

// appClusterView is the App-on-a-cluster page.
type appClusterView struct {
	Cluster, App string
	Row          statusRow
	Drift        []drift.Entry
	Objects      []object
	History      []historyEntry
	// Target is the revision a rollback would pin to: the latest other revision that was
	// Healthy here, else the last healthy one the agent reported.
	Target string
}

// object is one of the app's objects with its health.
type object struct {
	Kind, Name, Health, Message string
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
	list, err := h.cfg.Backend.ListClusters(ctx, &flotillav1.ListClustersRequest{})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	v.Row = statusRow{Cell: newCell(s, staleness(list.Items)(v.Cluster)), Status: s, LastSeen: agoMs(s.LastSeenUnixMs)}
	v.Drift = drift.Entries(st.Items)
	for _, res := range s.Resources {
		kind, name := drift.Object(res.Object)
		v.Objects = append(v.Objects, object{Kind: kind, Name: name, Health: res.Health, Message: res.Message})
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
	h.render(w, r, http.StatusOK, "appcluster", v.App+" on "+v.Cluster, eventsOf(query{App: v.App, Cluster: v.Cluster}), v)
}
