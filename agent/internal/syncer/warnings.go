package syncer

import (
	"cmp"
	"context"
	"reflect"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/cache"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
)

// The Warning Events of each app's objects, for the dashboard's "Events' summary": one
// informer over the cluster's core/v1 Events of type Warning, indexed by the object each is
// about; after a change (looked at every warningsEvery), each app's most recent ones among the
// objects of its inventory, at most maxWarnings, messages cut at maxWarningMessage, are kept
// here and the app's status is published when they changed (publish sends only a changed
// status). An Event carries a reason and a message from a controller, never an object's data.

const (
	maxWarnings       = 10
	maxWarningMessage = 256
	warningsEvery     = time.Second
	// warningsRefresh: the lists are made again at least this often, for objects applied since.
	warningsRefresh = 15 * time.Second
	byInvolved      = "involved"
)

// ObjectEvent is a Kubernetes Warning Event about one of an app's objects.
type ObjectEvent struct {
	Object   apply.ObjectRef
	Type     string
	Reason   string
	Message  string
	Count    int32
	LastSeen time.Time
}

// warningSet is each app's latest Warning Events; the zero value is empty and ready.
type warningSet struct {
	mu    sync.Mutex
	byApp map[string][]ObjectEvent
}

// of returns the app's Warning Events (shared: never modified, only replaced).
func (w *warningSet) of(app string) []ObjectEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byApp[app]
}

// set replaces the app's events and reports whether they changed.
func (w *warningSet) set(app string, evs []ObjectEvent) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if reflect.DeepEqual(w.byApp[app], evs) {
		return false
	}
	if w.byApp == nil {
		w.byApp = map[string][]ObjectEvent{}
	}
	if evs == nil {
		delete(w.byApp, app)
	} else {
		w.byApp[app] = evs
	}
	return true
}

// retain forgets the apps keep does not keep (removed ones).
func (w *warningSet) retain(keep func(app string) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for app := range w.byApp {
		if !keep(app) {
			delete(w.byApp, app)
		}
	}
}

func involvedKey(group, kind, namespace, name string) string {
	return group + "/" + kind + "/" + namespace + "/" + name
}

func indexInvolved(obj any) ([]string, error) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return nil, nil
	}
	o := e.InvolvedObject
	gv, _ := schema.ParseGroupVersion(o.APIVersion)
	return []string{involvedKey(gv.Group, o.Kind, o.Namespace, o.Name)}, nil
}

// watchWarnings keeps every app's Warning Events until ctx ends. Without the right to list
// Events (a namespace-scoped agent), the informer keeps retrying and apps report none.
func (c *Controller) watchWarnings(ctx context.Context) {
	lw := cache.NewFilteredListWatchFromClient(c.kube.RESTClient(), "events", metav1.NamespaceAll,
		func(o *metav1.ListOptions) { o.FieldSelector = "type=" + corev1.EventTypeWarning })
	inf := cache.NewSharedIndexInformer(lw, &corev1.Event{}, 0, cache.Indexers{byInvolved: indexInvolved})
	if err := inf.SetTransform(compactEvent); err != nil {
		return
	}
	changed := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, UpdateFunc: func(_, o any) { poke(o) }, DeleteFunc: poke,
	}); err != nil {
		return
	}
	go inf.Run(ctx.Done())
	tick := time.NewTicker(warningsEvery)
	defer tick.Stop()
	last := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case <-changed:
		default:
			if time.Since(last) < warningsRefresh {
				continue
			}
		}
		last = time.Now()
		c.refreshWarnings(inf.GetIndexer())
	}
}

// refreshWarnings makes each app's list again from the Events indexed, and publishes the
// status of each app whose list changed.
func (c *Controller) refreshWarnings(idx cache.Indexer) {
	apps := c.snapshot()
	names := map[string]bool{}
	for _, a := range apps {
		names[a.name] = true
	}
	c.warnings.retain(func(name string) bool { return names[name] })
	for _, a := range apps {
		c.mu.Lock()
		st := a.applied
		c.mu.Unlock()
		var evs []ObjectEvent
		if st != nil {
			for _, ref := range fromStateRefs(st.Inventory) {
				objs, _ := idx.ByIndex(byInvolved, involvedKey(ref.Group, ref.Kind, ref.Namespace, ref.Name))
				for _, o := range objs {
					if e, ok := o.(*corev1.Event); ok {
						evs = append(evs, objectEvent(ref, e))
					}
				}
			}
		}
		slices.SortFunc(evs, func(x, y ObjectEvent) int {
			if n := y.LastSeen.Compare(x.LastSeen); n != 0 {
				return n
			}
			return cmp.Compare(x.Object.String()+x.Reason, y.Object.String()+y.Reason)
		})
		if len(evs) > maxWarnings {
			evs = slices.Clip(evs[:maxWarnings])
		}
		if c.warnings.set(a.name, evs) {
			c.publish(a, false)
		}
	}
}

func objectEvent(ref apply.ObjectRef, e *corev1.Event) ObjectEvent {
	out := ObjectEvent{Object: ref, Type: e.Type, Reason: e.Reason, Message: cut(e.Message, maxWarningMessage), Count: e.Count}
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		out.LastSeen, out.Count = e.Series.LastObservedTime.Time, max(out.Count, e.Series.Count)
	case !e.LastTimestamp.IsZero():
		out.LastSeen = e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		out.LastSeen = e.EventTime.Time
	default:
		out.LastSeen = e.CreationTimestamp.Time
	}
	out.Count = max(out.Count, 1)
	return out
}

// compactEvent keeps of an Event only what indexInvolved and objectEvent read, its message
// already cut: the informer holds every Warning Event of the cluster, and a busy cluster has
// thousands, most about objects of no app.
func compactEvent(obj any) (any, error) {
	e, ok := obj.(*corev1.Event)
	if !ok {
		return obj, nil // a deletion's tombstone
	}
	out := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: e.Name, Namespace: e.Namespace, UID: e.UID,
			ResourceVersion: e.ResourceVersion, CreationTimestamp: e.CreationTimestamp},
		InvolvedObject: corev1.ObjectReference{APIVersion: e.InvolvedObject.APIVersion, Kind: e.InvolvedObject.Kind,
			Namespace: e.InvolvedObject.Namespace, Name: e.InvolvedObject.Name},
		Type: e.Type, Reason: e.Reason, Message: cut(e.Message, maxWarningMessage), Count: e.Count,
		LastTimestamp: e.LastTimestamp, EventTime: e.EventTime,
	}
	if e.Series != nil {
		out.Series = &corev1.EventSeries{Count: e.Series.Count, LastObservedTime: e.Series.LastObservedTime}
	}
	return out, nil
}

// cut shortens s to at most n bytes on a character boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n - len("…")
	for i > 0 && (s[i]&0xC0) == 0x80 {
		i--
	}
	return s[:i] + "…"
}
