package apply

import (
	"encoding/json"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// The ignoreDifferences rules (shared/ignore) at work in the engine:
//
//   - Drift compares the dry-run and the live object without the fields the rules name (for
//     managedFieldsManagers: the fields the live object's managedFields give those managers),
//     so an ignored field is never drift and never reported.
//   - Heal, and Apply with RespectIgnoreDifferences, write an existing object with its ignored
//     fields taken from the live object (a field the live object lacks is left out), and the
//     fields the named managers own left out of the applied configuration, so the write does
//     not change them. Taking live's value rather than leaving a field out matters: a field the
//     agent's field manager owns alone and leaves out of an apply is removed by the API server
//     (an HPA-scaled Deployment's spec.replicas would fall back to 1); a field another manager
//     owns stays, so leaving those out is safe. An object that does not exist yet is created
//     from Git as it is.
//   - Apply without RespectIgnoreDifferences writes Git's values, as Argo CD does.

// ignoreCacheMax bounds the compiled rule sets kept.
const ignoreCacheMax = 64

// ignoreRules compiles rules, reusing the last compilation of the same rules.
func (a *Applier) ignoreRules(rules []ignore.Rule) (*ignore.Set, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(rules)
	if err != nil {
		return nil, err
	}
	key := string(b)
	a.mu.Lock()
	set, ok := a.ignoreCache[key]
	a.mu.Unlock()
	if ok {
		return set, nil
	}
	if set, err = ignore.Compile(rules); err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.ignoreCache) >= ignoreCacheMax {
		clear(a.ignoreCache)
	}
	a.ignoreCache[key] = set
	a.mu.Unlock()
	return set, nil
}

// respectLive takes it's ignored fields from live (see above); live nil leaves it as Git has it.
func respectLive(it *item, live *unstructured.Unstructured) {
	if it.respect == nil || live == nil {
		return
	}
	it.obj = &unstructured.Unstructured{Object: it.respect.Respect(it.obj.Object, live.Object, live.GetManagedFields())}
}

// normalized returns dry and live without the fields f ignores (both as they are when f is
// nil), for comparing and showing.
func normalized(f *ignore.Fields, dry, live *unstructured.Unstructured) (*unstructured.Unstructured, *unstructured.Unstructured) {
	if f == nil {
		return dry, live
	}
	managed := live.GetManagedFields()
	return &unstructured.Unstructured{Object: f.Normalize(dry.Object, managed)},
		&unstructured.Unstructured{Object: f.Normalize(live.Object, managed)}
}
