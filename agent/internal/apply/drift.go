package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Drift compares d's objects with the cluster: an object that is gone is "missing", one that a
// server-side apply of d would change is "modified". With only set, just the objects whose
// keys it holds are compared. It only reads (from the watch caches where it can) and dry-runs,
// and not even that for an object unchanged since it was last confirmed (confirm.go).
// The fields d's ignoreDifferences rules name are left out of the comparison, and an object
// with the compare option IgnoreExtraneous is never drift (syncoptions.go).
func (a *Applier) Drift(ctx context.Context, d *Revision, only map[string]bool) ([]Drift, error) {
	items, err := a.prepare(ctx, d)
	if err != nil {
		return nil, err
	}
	rules, err := a.ignoreRules(d.Ignore)
	if err != nil {
		return nil, err
	}
	var out []Drift
	for _, it := range items {
		if !it.inventory || (only != nil && !only[it.ref.Key()]) || ignoreExtraneous(it.obj) {
			continue
		}
		if it.mapping == nil { // its CRD is gone
			out = append(out, Drift{Object: it.ref, Type: DriftMissing, Fingerprint: DriftMissing})
			continue
		}
		ri := a.resource(it.mapping, it.obj.GetNamespace())
		live, err := a.live(ctx, it.mapping, it.obj.GetNamespace(), it.obj.GetName(), false)
		if err != nil {
			return nil, objectError("get", it.ref, err)
		}
		if live == nil {
			out = append(out, Drift{Object: it.ref, Type: DriftMissing, Fingerprint: DriftMissing})
			continue
		}
		if it.deferred || a.ownedByOther(d.App, it.ref, live) != "" {
			continue // another app's object is not this app's drift (owners.go)
		}
		digest, err := digestOf(it.obj)
		if err != nil {
			return nil, objectError("dry-run", it.ref, err)
		}
		if a.unchangedSince(it.ref, live, digest) {
			continue // as last applied or found (confirm.go)
		}
		dry, err := ri.Apply(ctx, it.obj.GetName(), it.obj, metav1.ApplyOptions{
			FieldManager: a.fieldManager, Force: true, DryRun: []string{metav1.DryRunAll},
		})
		if err != nil {
			return nil, objectError("dry-run", it.ref, err)
		}
		if a.owns(live) && sameObject(dry, live) {
			a.confirm(it.ref, live.GetResourceVersion(), digest)
			continue
		}
		dry, live = normalized(rules.For(it.ref.Group, it.ref.Kind, it.ref.Namespace, it.ref.Name), dry, live)
		if !sameObject(dry, live) {
			secret := it.ref.Group == "" && it.ref.Kind == "Secret"
			out = append(out, Drift{Object: it.ref, Type: DriftModified, Diff: diff(live, dry, secret), Fingerprint: fingerprint(live)})
		}
	}
	return out, nil
}

// fingerprint identifies the drifted state of live (what sameObject compares), so that an
// actor changing an object back to the same state again can be told from new edits.
func fingerprint(live *unstructured.Unstructured) string {
	b, err := json.Marshal(comparableFields(live))
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
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
