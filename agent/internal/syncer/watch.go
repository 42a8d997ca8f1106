package syncer

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// watcher keeps informers on the kinds the apps' inventories hold, filtered by LabelApp, and
// tells its owner which app's objects changed. It only ever lists and watches.
type watcher struct {
	factory dynamicinformer.DynamicSharedInformerFactory
	notify  func(app string)

	mu      sync.Mutex
	watched map[schema.GroupVersionResource]bool
	stop    <-chan struct{} // set by run; nil until then
}

func newWatcher(a *Applier, notify func(app string)) *watcher {
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(a.dyn, 0, metav1.NamespaceAll, func(o *metav1.ListOptions) {
		o.LabelSelector = LabelApp
	})
	return &watcher{factory: f, notify: notify, watched: map[schema.GroupVersionResource]bool{}}
}

// watch makes sure the kinds of refs are watched.
func (w *watcher) watch(ctx context.Context, a *Applier, refs []ObjectRef) {
	w.mu.Lock()
	defer w.mu.Unlock()
	added := false
	for _, r := range refs {
		m, err := a.restMapping(ctx, schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind})
		if err != nil || w.watched[m.Resource] {
			continue
		}
		w.watched[m.Resource] = true
		inf := w.factory.ForResource(m.Resource).Informer()
		if _, err := inf.AddEventHandler(w); err == nil {
			added = true
		}
	}
	if added && w.stop != nil {
		w.factory.Start(w.stop)
	}
}

// run starts the informers and stops them when ctx ends, returning once they have.
func (w *watcher) run(ctx context.Context) {
	w.mu.Lock()
	w.stop = ctx.Done()
	w.factory.Start(w.stop)
	w.mu.Unlock()
	<-ctx.Done()
	w.factory.Shutdown()
}

var _ cache.ResourceEventHandler = (*watcher)(nil)

// OnAdd ignores the initial list: what exists at start is checked by the health loop.
func (w *watcher) OnAdd(obj any, isInInitialList bool) {
	if !isInInitialList {
		w.changed(obj)
	}
}

// OnUpdate reports changes other than status and bookkeeping.
func (w *watcher) OnUpdate(oldObj, newObj any) {
	o, ok1 := oldObj.(*unstructured.Unstructured)
	n, ok2 := newObj.(*unstructured.Unstructured)
	if ok1 && ok2 && sameObject(o, n) {
		return
	}
	w.changed(newObj)
}

func (w *watcher) OnDelete(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	w.changed(obj)
}

func (w *watcher) changed(obj any) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if app := u.GetLabels()[LabelApp]; app != "" {
			w.notify(app)
		}
	}
}

// driftDelay coalesces bursts of events (a sync writing many objects) into one check.
const driftDelay = 500 * time.Millisecond
