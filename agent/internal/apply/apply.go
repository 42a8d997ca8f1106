package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"golang.org/x/sync/errgroup"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
	"github.com/flotilla-dev/flotilla/shared/ignore"
	"github.com/flotilla-dev/flotilla/shared/syncoptions"
)

// Labels and annotations the agent reads or writes on applied objects.
const (
	// LabelApp names the app an object belongs to; set on every applied object.
	LabelApp = "flotilla.dev/app"
	// AnnotationPrune set to "disabled" keeps an object from ever being deleted by a prune.
	AnnotationPrune = "flotilla.dev/prune"
	// AnnotationArgoSyncOptions containing "Prune=false" does the same (Argo CD compatible).
	AnnotationArgoSyncOptions = syncoptions.Argo
	// DefaultFieldManager is the server-side apply field manager.
	DefaultFieldManager = "flotilla-agent"
)

// crdWait bounds the wait for a CustomResourceDefinition to be Established and served.
const crdWait = time.Minute

var (
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	nsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// Applier applies revisions with server-side apply and prunes what they no longer hold.
type Applier struct {
	dyn          dynamic.Interface
	mapper       *mapper
	fieldManager string
	self         selfGuard // the zero value guards nothing
	// cache serves live objects from informers (watch.go) instead of GETs once it runs.
	cache *watcher
	// owners, when set, tells which objects other apps own (owners.go).
	owners Inventories

	mu            sync.Mutex
	lastDiscovery time.Time // last refresh of the discovery cache
	// own maps each object the Applier last wrote to the resourceVersion its write returned,
	// so that the watch event of the agent's own write is not taken for drift.
	own map[string]string
	// confirmed maps each object to the state in which the Applier last found it as it
	// applies it (confirm.go): a sync or drift check that finds it there again spends no
	// dry-run on it.
	confirmed map[string]confirmation
	// ignoreCache holds compiled ignoreDifferences rules by their JSON (ignore.go).
	ignoreCache map[string]*ignore.Set
}

// Options configure an Applier.
type Options struct {
	// FieldManager is the server-side apply field manager (DefaultFieldManager when empty).
	FieldManager string
	// GuardNamespace is the agent's own namespace: a revision that would modify the agent
	// itself is refused (policy.go). Empty guards nothing (--allow-self-management).
	GuardNamespace string
	// Owners, when set, tells which objects other apps own (owners.go).
	Owners Inventories
	// OnChange, when set, is told of every change to an object labelled for an app that is
	// not the Applier's own write (watch.go), once Run has started the watches.
	OnChange func(app string, ref ObjectRef)
}

// New returns an Applier for the cluster of cfg. Its live view reads from the API server
// until Run starts the watches.
func New(cfg *rest.Config, o Options) (*Applier, error) {
	if o.FieldManager == "" {
		o.FieldManager = DefaultFieldManager
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	disc, err := kube.NewDiscovery(cfg)
	if err != nil {
		return nil, err
	}
	a := &Applier{
		dyn:          dyn,
		mapper:       &mapper{disc: disc},
		fieldManager: o.FieldManager,
		self:         selfGuard{namespace: o.GuardNamespace},
		owners:       o.Owners,
		own:          map[string]string{},
		confirmed:    map[string]confirmation{},
		ignoreCache:  map[string]*ignore.Set{},
	}
	a.cache = newWatcher(a, o.OnChange)
	return a, nil
}

// item is one object of a revision on its way to the cluster.
type item struct {
	obj     *unstructured.Unstructured // what is applied: a labelled, namespaced copy
	ref     ObjectRef
	mapping *meta.RESTMapping // nil while its CRD is still to come
	stage   int               // 0: Namespaces and CRDs; 1: the rest
	order   int               // within the stage
	// deferred: dry-run only after stage 0 (its CRD or namespace arrives in this revision).
	deferred bool
	// inventory: part of the app (false for a namespace made by CreateNamespace).
	inventory bool
	changed   bool // dry-run differs from live: write it
	// recreate is the UID of the live object to delete before writing it: its update changes
	// immutable fields and it has the sync option Force=true (recreate.go).
	recreate types.UID
	// force: the app's or the object's sync options say Force=true (or Replace=true).
	force bool
	// skipValidation: applied with fieldValidation=Ignore (Validate=false; syncoptions.go).
	skipValidation bool
	// respect: the ignoreDifferences rules whose fields are taken from the live object before
	// it is written (a heal, or RespectIgnoreDifferences; ignore.go).
	respect *ignore.Fields
	// digest identifies obj as it is applied (confirm.go); set by dryRun.
	digest string
}

// Apply applies d in stages (Namespaces and CRDs, then the rest), each object dry-run before
// anything is written, unchanged objects skipped, and then prunes from prevInventory what d no
// longer holds, as its policy allows. First of all it checks d against its spec.policy and the
// agent's guard of itself (policy.go): a *PolicyError then, and nothing is written. On error
// nothing of a later stage is written and nothing is pruned; the error is an *ObjectError or
// *NamespaceError when an object is at fault. When
// objects were written before the failure, the Result is returned too, its Inventory being
// prevInventory plus those objects.
func (a *Applier) Apply(ctx context.Context, d *Revision, prevInventory []ObjectRef) (*ChangeSet, error) {
	items, err := a.checkAndPrepare(ctx, d)
	if err != nil {
		return nil, err
	}
	var warnings ChangeSet
	if err := a.setOptions(d, items, false, &warnings); err != nil {
		return nil, err
	}
	desired, err := a.unappliedKeys(ctx, d) // hooks and skipped objects are never pruned
	if err != nil {
		return nil, err
	}
	a.warm(ctx, items)
	res, err := a.applyItems(ctx, items, prevInventory)
	if res != nil {
		res.Warnings = append(warnings.Warnings, res.Warnings...)
	}
	if err != nil {
		return res, err
	}
	for _, it := range items {
		if it.inventory {
			desired[it.ref.Key()] = true
			res.Inventory = append(res.Inventory, it.ref)
		}
	}
	a.prune(ctx, d, prevInventory, desired, false, res)
	sortRefs(res.Inventory)
	return res, nil
}

// Heal re-applies the objects of d that refs name (the ones that drifted), as Apply would
// but touching nothing else and pruning nothing. inventory is the app's inventory, which a
// heal does not change: it is the Result's Inventory.
func (a *Applier) Heal(ctx context.Context, d *Revision, refs, inventory []ObjectRef) (*ChangeSet, error) {
	items, err := a.checkAndPrepare(ctx, d)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(refs))
	for _, r := range refs {
		want[r.Key()] = true
	}
	// The destination namespace CreateNamespace adds (not inventory) comes along: it is
	// only there when it is missing.
	items = slices.DeleteFunc(items, func(it *item) bool { return it.inventory && !want[it.ref.Key()] })
	if err := a.setOptions(d, items, true, &ChangeSet{}); err != nil {
		return nil, err
	}
	res, err := a.applyItems(ctx, items, inventory)
	if err != nil {
		return res, err
	}
	res.Inventory = slices.Clone(inventory)
	return res, nil
}

// checkAndPrepare refuses d when it breaks its policy, and otherwise
// prepares its items.
func (a *Applier) checkAndPrepare(ctx context.Context, d *Revision) ([]*item, error) {
	if err := a.checkPolicy(ctx, d); err != nil {
		return nil, err
	}
	return a.prepare(ctx, d)
}

// applyItems dry-runs items, then writes them stage by stage. From the first write on, a
// failure returns what was written too, the Result's Inventory being prevInventory plus
// those objects: the caller must keep them in the inventory.
func (a *Applier) applyItems(ctx context.Context, items []*item, prevInventory []ObjectRef) (*ChangeSet, error) {
	res := &ChangeSet{}
	// Dry-run everything whose type and namespace exist before the first write.
	if err := a.dryRunAll(ctx, items, false, res); err != nil {
		return nil, err
	}
	failed := func(err error) (*ChangeSet, error) {
		if len(res.written) == 0 {
			return nil, err
		}
		res.Inventory = dedupe(append(slices.Clone(prevInventory), res.written...))
		sortRefs(res.Inventory)
		return res, err
	}
	if err := a.write(ctx, items, 0, res); err != nil {
		return failed(err)
	}
	if err := a.waitCRDs(ctx, items); err != nil {
		return failed(err)
	}
	if err := a.resolveDeferred(ctx, items); err != nil {
		return failed(err)
	}
	if err := a.dryRunAll(ctx, items, true, res); err != nil {
		return failed(err)
	}
	if err := a.write(ctx, items, 1, res); err != nil {
		return failed(err)
	}
	return res, nil
}

// warm makes sure the cache covers the kinds of items before they are dry-run, so that
// comparing with live objects costs a watch per kind instead of a GET per object.
func (a *Applier) warm(ctx context.Context, items []*item) {
	seen := map[schema.GroupVersionResource]bool{}
	var gvrs []schema.GroupVersionResource
	for _, it := range items {
		if it.mapping != nil && it.inventory && !seen[it.mapping.Resource] {
			seen[it.mapping.Resource] = true
			gvrs = append(gvrs, it.mapping.Resource)
		}
	}
	a.cache.ensure(ctx, gvrs)
}

// prepare copies, labels and namespaces d's objects, resolves their types, checks their
// namespaces and orders them.
func (a *Applier) prepare(ctx context.Context, d *Revision) ([]*item, error) {
	crds := bundleCRDs(d.Objects)
	bundleNS := map[string]bool{}
	for _, o := range d.Objects {
		if isNamespace(o.GroupVersionKind()) {
			bundleNS[o.GetName()] = true
		}
	}
	nsExists := map[string]bool{}
	exists := func(ns string) (bool, error) {
		if ok, seen := nsExists[ns]; seen {
			return ok, nil
		}
		_, err := a.dyn.Resource(nsGVR).Get(ctx, ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			nsExists[ns] = false
		case err != nil:
			return false, objectError("get", ObjectRef{Version: "v1", Kind: "Namespace", Name: ns}, err)
		default:
			nsExists[ns] = true
		}
		return nsExists[ns], nil
	}

	var items []*item
	fresh := false
	for _, o := range d.Objects {
		obj := prepareObject(o, d.App)
		gvk := obj.GroupVersionKind()
		it := &item{obj: obj, inventory: true, force: d.Policy.Force || syncOptionValue(obj, "Force") == "true"}
		namespaced, known, err := a.scope(ctx, gvk, crds, it, &fresh)
		if err != nil {
			return nil, err
		}
		if !known {
			it.deferred = true
		}
		if namespaced && obj.GetNamespace() == "" {
			if d.Namespace == "" {
				return nil, &ObjectError{Object: RefOf(obj), Op: "resolve", Rejected: true,
					Err: errors.New("namespaced object without a namespace, and the app has no destination namespace")}
			}
			obj.SetNamespace(d.Namespace)
		}
		if !namespaced {
			obj.SetNamespace("")
		}
		it.ref = RefOf(obj)
		it.stage, it.order = stageOf(gvk)
		items = append(items, it)
	}

	// Namespaces the objects go to must exist or come with the revision.
	if d.Policy.CreateNamespace && d.Namespace != "" && !bundleNS[d.Namespace] {
		ok, err := exists(d.Namespace)
		if err != nil {
			return nil, err
		}
		if !ok {
			ns := &unstructured.Unstructured{}
			ns.SetAPIVersion("v1")
			ns.SetKind("Namespace")
			ns.SetName(d.Namespace)
			it := &item{obj: ns, ref: RefOf(ns), stage: 0}
			it.mapping, err = a.lookup(ctx, ns.GroupVersionKind())
			if err != nil {
				return nil, objectError("resolve", it.ref, err)
			}
			items = append(items, it)
			bundleNS[d.Namespace] = true
		}
	}
	for _, it := range items {
		ns := it.obj.GetNamespace()
		if ns == "" {
			continue
		}
		ok, err := exists(ns)
		if err != nil {
			return nil, err
		}
		switch {
		case ok:
		case bundleNS[ns]:
			it.deferred = true // dry-run once its namespace exists
		default:
			return nil, &NamespaceError{Namespace: ns, Destination: ns == d.Namespace}
		}
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].stage != items[j].stage {
			return items[i].stage < items[j].stage
		}
		if items[i].order != items[j].order {
			return items[i].order < items[j].order
		}
		return items[i].ref.Key() < items[j].ref.Key()
	})
	return items, nil
}

// scope resolves its type: whether it is namespaced and whether the cluster serves it now.
// A type the cluster does not serve yet is fine when a CRD of the bundle defines it. Discovery
// is refreshed for an unknown type once per *fresh (one Apply), or when fresh is nil at most
// every rediscoverEvery.
func (a *Applier) scope(ctx context.Context, gvk schema.GroupVersionKind, crds map[schema.GroupKind]string, it *item, fresh *bool) (namespaced, known bool, err error) {
	m, err := a.lookup(ctx, gvk)
	if err != nil && meta.IsNoMatchError(err) {
		if scope, ok := crds[gvk.GroupKind()]; ok {
			return scope != "Cluster", false, nil
		}
		if skipDryRunOnMissing(it.obj) && fresh != nil {
			// Taken as namespaced until its kind is served (resolveDeferred).
			return true, false, nil
		}
		switch {
		case fresh == nil:
			m, err = a.restMapping(ctx, gvk)
		case !*fresh:
			*fresh = true
			a.rediscover(0)
			m, err = a.lookup(ctx, gvk)
		}
	}
	if err != nil {
		return false, false, objectError("resolve", RefOf(it.obj), err)
	}
	it.mapping = m
	return m.Scope.Name() == meta.RESTScopeNameNamespace, true, nil
}

// rediscoverEvery bounds how often a lookup of an unknown type refreshes discovery.
const rediscoverEvery = 5 * time.Second

// restMapping maps gvk, refreshing discovery when it does not know the type (at most every
// rediscoverEvery: a type that really is missing must not cost a discovery on every call).
func (a *Applier) restMapping(ctx context.Context, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := a.lookup(ctx, gvk)
	if err != nil && meta.IsNoMatchError(err) && a.rediscover(rediscoverEvery) {
		m, err = a.lookup(ctx, gvk)
	}
	return m, err
}

func (a *Applier) lookup(ctx context.Context, gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	return a.mapper.RESTMapping(ctx, gvk.GroupKind(), gvk.Version)
}

// rediscover drops the cached discovery unless it was refreshed less than minAge ago.
func (a *Applier) rediscover(minAge time.Duration) bool {
	a.mu.Lock()
	if minAge > 0 && time.Since(a.lastDiscovery) < minAge {
		a.mu.Unlock()
		return false
	}
	a.lastDiscovery = time.Now()
	a.mu.Unlock()
	a.mapper.reset()
	return true
}

func (a *Applier) resource(m *meta.RESTMapping, ns string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.dyn.Resource(m.Resource).Namespace(ns)
	}
	return a.dyn.Resource(m.Resource)
}

// dryRun server-side applies it with DryRun=All and decides whether it needs a write. A
// conflict with another field manager is reported as a warning and then forced.
func (a *Applier) dryRun(ctx context.Context, it *item, res *ChangeSet) error {
	// Absent from the cache, the object either does not exist or lacks LabelApp: either
	// way it needs a write.
	live, err := a.live(ctx, it.mapping, it.obj.GetNamespace(), it.obj.GetName(), true)
	if err != nil {
		return objectError("get", it.ref, err)
	}
	app := it.obj.GetLabels()[LabelApp]
	if other := a.ownedByOther(app, it.ref, live); other != "" {
		return ownerConflict(app, other, it.ref)
	}
	respectLive(it, live)
	if it.digest, err = digestOf(it.obj); err != nil {
		return objectError("dry-run", it.ref, err)
	}
	if a.unchangedSince(it.ref, live, it.digest) {
		return nil // as it was when last applied or found unchanged: nothing to dry-run or write
	}
	dry, err := a.ssa(ctx, it, true, false)
	if apierrors.IsConflict(err) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %v; taking the fields over", it.ref, err))
		dry, err = a.ssa(ctx, it, true, true)
	}
	if fields := immutableFields(err); len(fields) > 0 {
		if !it.force {
			return immutableError(it, fields, err)
		}
		if live == nil { // not in the cache: not labelled for an app yet
			if live, err = a.live(ctx, it.mapping, it.obj.GetNamespace(), it.obj.GetName(), false); err != nil {
				return objectError("get", it.ref, err)
			}
			if live == nil { // gone meanwhile: created anew
				it.changed = true
				return nil
			}
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: immutable field %s changed; deleting and recreating it (Force=true)", it.ref, strings.Join(fields, ", ")))
		it.recreate, it.changed = live.GetUID(), true
		return nil
	}
	if err != nil {
		return objectError("dry-run", it.ref, err)
	}
	switch {
	case live == nil:
		it.changed = true
	default:
		it.changed = !a.owns(live) || !sameObject(dry, live)
	}
	if !it.changed {
		a.confirm(it.ref, live.GetResourceVersion(), it.digest)
	}
	return nil
}

// live reads an object from the cache when it covers the object's kind, else from the API
// server; nil, nil when it does not exist. With absentOK, an object missing from the cache
// is taken as absent (it may exist without LabelApp); otherwise the API server is asked.
// The object may belong to the cache: callers must not modify it.
func (a *Applier) live(ctx context.Context, m *meta.RESTMapping, ns, name string, absentOK bool) (*unstructured.Unstructured, error) {
	cns := ns
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		cns = ""
	}
	if obj, found, ok := a.cache.lookup(m.Resource, cns, name); ok && (found || absentOK) {
		return obj, nil
	}
	obj, err := a.resource(m, ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}

// dryRunAll dry-runs the items that are deferred (or not), one kind at a time and the
// objects of a kind concurrently.
func (a *Applier) dryRunAll(ctx context.Context, items []*item, deferred bool, res *ChangeSet) error {
	var todo []*item
	for _, it := range items {
		if it.deferred == deferred {
			todo = append(todo, it)
		}
	}
	return a.each(ctx, todo, func(ctx context.Context, it *item, r *ChangeSet) error { return a.dryRun(ctx, it, r) }, res)
}

// owns reports whether live has fields applied by this Applier's field manager.
func (a *Applier) owns(live *unstructured.Unstructured) bool {
	for _, mf := range live.GetManagedFields() {
		if mf.Manager == a.fieldManager && mf.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

// write applies the changed items of stage, one kind at a time (in install order) and the
// objects of a kind concurrently.
func (a *Applier) write(ctx context.Context, items []*item, stage int, res *ChangeSet) error {
	var todo []*item
	for _, it := range items {
		switch {
		case it.stage != stage:
		case !it.changed:
			res.add(Unchanged, it.ref)
		default:
			todo = append(todo, it)
		}
	}
	return a.each(ctx, todo, func(ctx context.Context, it *item, r *ChangeSet) error {
		var out *unstructured.Unstructured
		var err error
		if it.recreate != "" {
			out, err = a.recreate(ctx, it, it.recreate)
		} else if out, err = a.ssa(ctx, it, false, true); err != nil {
			err = objectError("apply", it.ref, err)
		}
		if err != nil {
			return err
		}
		a.noteWrite(it.ref, out.GetResourceVersion())
		a.confirm(it.ref, out.GetResourceVersion(), it.digest)
		r.add(Applied, it.ref)
		r.wrote(it.ref.Key(), out.GetGeneration())
		if it.inventory {
			r.written = append(r.written, it.ref)
		}
		return nil
	}, res)
}

// applyConcurrency is how many requests of one kind an apply has in flight (the client's QPS
// limit, --kube-api-qps, bounds their rate).
const applyConcurrency = 8

// each runs fn over items: groups of consecutive items of one stage and order (one kind in
// install order) one after another, the items of a group concurrently. It stops at the first
// error; the results of fn (each into its own ChangeSet) are merged into res in item order.
func (a *Applier) each(ctx context.Context, items []*item, fn func(context.Context, *item, *ChangeSet) error, res *ChangeSet) error {
	for start := 0; start < len(items); {
		end := start + 1
		for end < len(items) && items[end].stage == items[start].stage && items[end].order == items[start].order {
			end++
		}
		group := items[start:end]
		parts := make([]ChangeSet, len(group))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(applyConcurrency)
		for i, it := range group {
			if gctx.Err() != nil {
				break
			}
			g.Go(func() error { return fn(gctx, it, &parts[i]) })
		}
		err := g.Wait() // the first error, not the cancellations it caused
		for i := range group {
			res.merge(&parts[i])
		}
		if err != nil {
			return err
		}
		start = end
	}
	return nil
}

// noteWrite records that the Applier wrote ref at resourceVersion rv.
func (a *Applier) noteWrite(ref ObjectRef, rv string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.own[ref.Key()] = rv
}

// ownWrite reports whether a watch event showing ref at resourceVersion rv is the Applier's
// own last write of it. Any event settles the record: later events are someone else's.
func (a *Applier) ownWrite(ref ObjectRef, rv string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	want, ok := a.own[ref.Key()]
	if ok {
		delete(a.own, ref.Key())
	}
	return ok && want == rv
}

// forgetWrite drops the record of the Applier's last write of ref, and its confirmation.
func (a *Applier) forgetWrite(ref ObjectRef) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.own, ref.Key())
	delete(a.confirmed, ref.Key())
}

// waitCRDs waits until every CRD of the revision is Established.
func (a *Applier) waitCRDs(ctx context.Context, items []*item) error {
	for _, it := range items {
		if !isCRD(it.obj.GroupVersionKind()) {
			continue
		}
		var last string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, crdWait, true, func(ctx context.Context) (bool, error) {
			crd, err := a.dyn.Resource(crdGVR).Get(ctx, it.obj.GetName(), metav1.GetOptions{})
			if err != nil {
				last = err.Error()
				return false, nil
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conds {
				cm, _ := c.(map[string]any)
				if cm["type"] == "Established" && cm["status"] == "True" {
					return true, nil
				}
			}
			last = "not Established"
			return false, nil
		})
		if err != nil {
			return &ObjectError{Object: it.ref, Op: "wait", Err: fmt.Errorf("%s: %w", last, err)}
		}
	}
	return nil
}

// resolveDeferred maps the items whose types arrived with this revision's CRDs, waiting
// (bounded) for discovery to serve them.
func (a *Applier) resolveDeferred(ctx context.Context, items []*item) error {
	fresh := false
	for _, it := range items {
		if it.mapping != nil {
			continue
		}
		gvk := it.obj.GroupVersionKind()
		var last error
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, crdWait, true, func(ctx context.Context) (bool, error) {
			if !fresh {
				a.rediscover(0) // new types: discovery may lag a moment behind Established
			}
			it.mapping, last = a.lookup(ctx, gvk)
			fresh = last == nil
			return last == nil, nil
		})
		if err != nil {
			if last == nil {
				last = err
			}
			return objectError("resolve", it.ref, last)
		}
		if it.mapping.Scope.Name() != meta.RESTScopeNameNamespace {
			it.obj.SetNamespace("")
			it.ref = RefOf(it.obj)
		}
	}
	return nil
}

// Get reads the live object ref names; nil, nil when it does not exist.
func (a *Applier) Get(ctx context.Context, ref ObjectRef) (*unstructured.Unstructured, error) {
	m, err := a.restMapping(ctx, schema.GroupVersionKind{Group: ref.Group, Version: ref.Version, Kind: ref.Kind})
	if meta.IsNoMatchError(err) {
		return nil, nil // its type is gone, so is it
	}
	if err != nil {
		return nil, err
	}
	return a.live(ctx, m, ref.Namespace, ref.Name, false)
}

func sortRefs(refs []ObjectRef) {
	sort.Slice(refs, func(i, j int) bool { return refs[i].Key() < refs[j].Key() })
}
