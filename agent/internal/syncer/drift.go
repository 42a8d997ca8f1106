package syncer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Drift types.
const (
	DriftMissing  = "missing"
	DriftModified = "modified"
)

// Drift compares d's objects with the cluster: an object that is gone is "missing", one that a
// server-side apply of d would change is "modified". It only reads and dry-runs.
func (a *Applier) Drift(ctx context.Context, d *Desired) ([]DriftItem, error) {
	items, err := a.prepare(ctx, d)
	if err != nil {
		return nil, err
	}
	var out []DriftItem
	for _, it := range items {
		if !it.inventory {
			continue
		}
		if it.mapping == nil { // its CRD is gone
			out = append(out, DriftItem{Object: it.ref, Type: DriftMissing})
			continue
		}
		ri := a.resource(it.mapping, it.obj.GetNamespace())
		live, err := ri.Get(ctx, it.obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			out = append(out, DriftItem{Object: it.ref, Type: DriftMissing})
			continue
		}
		if err != nil {
			return nil, objectError("get", it.ref, err)
		}
		if it.deferred {
			continue
		}
		dry, err := ri.Apply(ctx, it.obj.GetName(), it.obj, metav1.ApplyOptions{
			FieldManager: a.fieldManager, Force: true, DryRun: []string{metav1.DryRunAll},
		})
		if err != nil {
			return nil, objectError("dry-run", it.ref, err)
		}
		if !sameObject(dry, live) {
			secret := it.ref.Group == "" && it.ref.Kind == "Secret"
			out = append(out, DriftItem{Object: it.ref, Type: DriftModified, Diff: diff(live, dry, secret)})
		}
	}
	return out, nil
}

// diff lists the fields where live differs from desired, one "path: live → desired" a line.
// Secret values are never shown.
func diff(live, desired *unstructured.Unstructured, secret bool) string {
	var lines []string
	diffValues("", comparableFields(live), comparableFields(desired), secret, &lines)
	const maxLines = 20
	if len(lines) > maxLines {
		lines = append(lines[:maxLines], fmt.Sprintf("… and %d more", len(lines)-maxLines))
	}
	return strings.Join(lines, "\n")
}

func diffValues(path string, live, desired any, secret bool, out *[]string) {
	lm, ok1 := live.(map[string]any)
	dm, ok2 := desired.(map[string]any)
	if ok1 && ok2 {
		keys := map[string]bool{}
		for k := range lm {
			keys[k] = true
		}
		for k := range dm {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			p := k
			if path != "" {
				p = path + "." + k
			}
			diffValues(p, lm[k], dm[k], secret, out)
		}
		return
	}
	if reflect.DeepEqual(live, desired) {
		return
	}
	if secret {
		*out = append(*out, path+": (value hidden)")
		return
	}
	*out = append(*out, fmt.Sprintf("%s: %s → %s", path, show(live), show(desired)))
}

func show(v any) string {
	if v == nil {
		return "<none>"
	}
	s := fmt.Sprintf("%v", v)
	if str, ok := v.(string); ok {
		s = fmt.Sprintf("%q", str)
	}
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// noteChange is the watcher's callback: an object of app changed; check for drift shortly.
func (c *Controller) noteChange(app string) {
	c.mu.Lock()
	a := c.apps[app]
	if a == nil || a.applied == nil {
		c.mu.Unlock()
		return
	}
	a.driftDue = true
	c.mu.Unlock()
	c.queue.AddAfter(app, driftDelay)
}

// checkDrift compares what the app holds with the cluster and, with automated self-heal on and
// nothing newer to apply, re-applies what drifted. Caller holds a.op.
func (c *Controller) checkDrift(ctx context.Context, a *app, d *Desired, applied *state.AppState) {
	c.mu.Lock()
	due := a.driftDue
	a.driftDue = false
	c.mu.Unlock()
	if !due || applied == nil {
		return
	}
	log := c.log.With(logging.KeyApp, a.name, logging.KeyRevision, applied.Revision)
	held := d
	if d == nil || d.Digest != applied.Digest {
		var err error
		if held, err = desiredFromState(applied); err != nil {
			log.Warn("drift check skipped: state bundle unreadable", logging.Err(err))
			return
		}
	}
	drift, err := c.applier.Drift(ctx, held)
	if err != nil {
		var ne *NamespaceError
		if !errors.As(err, &ne) {
			log.Warn("drift check failed", logging.Err(errors.New(newScrubber(held).scrub(err.Error()))))
		}
		return
	}
	heal := len(drift) > 0 && held == d && d.Policy.Automated && d.Policy.SelfHeal
	if heal {
		res, err := c.applier.Apply(ctx, d, fromStateRefs(applied.Inventory))
		if err == nil {
			st := *applied
			st.Inventory = toStateRefs(res.Inventory)
			if err = c.store.Save(ctx, &st); err == nil {
				c.mu.Lock()
				if a.applied == applied {
					a.applied = &st
				}
				a.drift = nil
				c.mu.Unlock()
				log.Info("drift healed", logging.KeyCount, len(drift), keyApplied, len(res.Applied))
				return
			}
		}
		log.Warn("self-heal failed", logging.Err(errors.New(newScrubber(d).scrub(err.Error()))))
		c.queue.AddAfter(a.name, backoff(d.Policy.Retry, 1))
	}
	if len(drift) > 0 {
		log.Info("drift detected", logging.KeyCount, len(drift))
	}
	c.mu.Lock()
	a.drift = drift
	c.mu.Unlock()
}
