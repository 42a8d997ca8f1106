package apply

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// watcher keeps informers on the kinds the apps' inventories hold (one per kind, shared by
// every app), filtered by LabelApp, their objects compacted (compact.go), and
// tells its owner which object of which app changed. It only ever lists and watches. Its
// caches are also the Applier's view of live objects (liveCache): reading them instead of
// the API server keeps health checks, drift checks and unchanged applies free of requests.
type watcher struct {
	applier *Applier
	notify  func(app string, ref ObjectRef) // nil: nobody listens

	mu      sync.Mutex
	watched map[schema.GroupVersionResource]cache.SharedIndexInformer
	started map[schema.GroupVersionResource]bool
	stop    <-chan struct{} // set by run; nil until then
	closed  bool            // run is returning: nothing more starts
	running sync.WaitGroup  // the informers' goroutines
}

func newWatcher(a *Applier, notify func(app string, ref ObjectRef)) *watcher {
	return &watcher{
		applier: a,
		notify:  notify,
		watched: map[schema.GroupVersionResource]cache.SharedIndexInformer{},
		started: map[schema.GroupVersionResource]bool{},
	}
}

// informer makes the informer of gvr: every namespace, objects labelled LabelApp, no resync,
// indexed by namespace.
func (w *watcher) informer(gvr schema.GroupVersionResource) cache.SharedIndexInformer {
	dyn := w.applier.dyn
	labelled := func(o metav1.ListOptions) metav1.ListOptions {
		o.LabelSelector = LabelApp
		return o
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return dyn.Resource(gvr).List(ctx, labelled(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return dyn.Resource(gvr).Watch(ctx, labelled(o))
		},
	}
	return cache.NewSharedIndexInformerWithOptions(cache.ToListWatcherWithWatchListSemantics(lw, dyn), &unstructured.Unstructured{},
		cache.SharedIndexInformerOptions{
			Indexers:          cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
			ObjectDescription: gvr.String(),
		})
}

// Watch makes sure the kinds of refs are watched (once Run has started the watches, their
// objects are read from the watch caches and their changes reported to Options.OnChange).
func (a *Applier) Watch(ctx context.Context, refs []ObjectRef) {
	a.cache.watch(ctx, refs)
}

// Run runs the watches until ctx ends, returning once they have stopped.
func (a *Applier) Run(ctx context.Context) { a.cache.run(ctx) }

// watch makes sure the kinds of refs are watched.
func (w *watcher) watch(ctx context.Context, refs []ObjectRef) {
	a := w.applier
	var gvrs []schema.GroupVersionResource
	for _, r := range refs {
		m, err := a.restMapping(ctx, schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind})
		if err == nil {
			gvrs = append(gvrs, m.Resource)
		}
	}
	w.start(gvrs)
}

// start makes sure gvrs are watched; it returns their informers.
func (w *watcher) start(gvrs []schema.GroupVersionResource) []cache.SharedIndexInformer {
	w.mu.Lock()
	defer w.mu.Unlock()
	added := false
	var out []cache.SharedIndexInformer
	for _, gvr := range gvrs {
		if inf := w.watched[gvr]; inf != nil {
			out = append(out, inf)
			continue
		}
		inf := w.informer(gvr)
		if err := inf.SetTransform(compact(w.applier.fieldManager)); err != nil {
			continue // started already: cannot happen, each kind's informer is made here once
		}
		if _, err := inf.AddEventHandler(w); err != nil {
			continue
		}
		w.watched[gvr] = inf
		out = append(out, inf)
		added = true
	}
	if added && w.stop != nil {
		w.startLocked()
	}
	return out
}

// startLocked runs the informers not yet running until w.stop closes; w.mu is held.
func (w *watcher) startLocked() {
	if w.closed {
		return
	}
	for gvr, inf := range w.watched {
		if w.started[gvr] {
			continue
		}
		w.started[gvr] = true
		w.running.Go(func() { inf.Run(w.stop) })
	}
}

// run starts the informers and stops them when ctx ends, returning once they have.
func (w *watcher) run(ctx context.Context) {
	w.mu.Lock()
	w.stop = ctx.Done()
	w.startLocked()
	w.mu.Unlock()
	<-ctx.Done()
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.running.Wait()
}

// cacheWait bounds how long an apply waits for a new informer to list its kind; past it the
// apply reads from the API server instead.
const cacheWait = 10 * time.Second

// ensure starts informers for gvrs and waits (bounded) until they
// have listed.
func (w *watcher) ensure(ctx context.Context, gvrs []schema.GroupVersionResource) {
	w.mu.Lock()
	running := w.stop != nil
	w.mu.Unlock()
	if !running {
		return
	}
	infs := w.start(gvrs)
	_ = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, cacheWait, true, func(context.Context) (bool, error) {
		for _, inf := range infs {
			if !inf.HasSynced() {
				return false, nil
			}
		}
		return true, nil
	})
}

// lookup returns the cached object. ok is false when no listed informer covers gvr; found is false
// when the object is not in the cache: it does not exist, or it does not carry LabelApp.
// The object returned belongs to the cache: callers must not modify it.
func (w *watcher) lookup(gvr schema.GroupVersionResource, ns, name string) (obj *unstructured.Unstructured, found, ok bool) {
	w.mu.Lock()
	inf := w.watched[gvr]
	running := w.stop != nil
	w.mu.Unlock()
	if inf == nil || !running || !inf.HasSynced() {
		return nil, false, false
	}
	key := name
	if ns != "" {
		key = ns + "/" + name
	}
	item, exists, err := inf.GetIndexer().GetByKey(key)
	if err != nil {
		return nil, false, false
	}
	if !exists {
		return nil, false, true
	}
	u, isU := item.(*unstructured.Unstructured)
	if !isU {
		return nil, false, false
	}
	return u, true, true
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
	if u, ok := obj.(*unstructured.Unstructured); ok {
		w.applier.forgetWrite(RefOf(u)) // a delete is never our write
	}
	w.changed(obj)
}

// changed tells the owner which object changed, unless the change is the agent's own write.
func (w *watcher) changed(obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	app := u.GetLabels()[LabelApp]
	if app == "" {
		return
	}
	ref := RefOf(u)
	if w.applier.ownWrite(ref, u.GetResourceVersion()) || w.notify == nil {
		return
	}
	w.notify(app, ref)
}
