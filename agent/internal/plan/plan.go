// Package plan orders one app's objects for a sync, as Argo CD users write them: sync waves
// (argocd.argoproj.io/sync-wave or flotilla.dev/wave) and hooks (argocd.argoproj.io/hook, and
// Helm's helm.sh/hook mapped onto Argo CD's phases). It is pure: it reads annotations and
// returns the phases and waves in the order the agent runs them; applying, waiting for health
// and running hooks are the engine's (agent/internal/apply) and the controller's
// (agent/internal/syncer).
package plan

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// Annotations the planner reads.
const (
	AnnotationArgoWave             = "argocd.argoproj.io/sync-wave"
	AnnotationWave                 = "flotilla.dev/wave"
	AnnotationArgoHook             = "argocd.argoproj.io/hook"
	AnnotationArgoHookDeletePolicy = "argocd.argoproj.io/hook-delete-policy"
	AnnotationHelmHook             = "helm.sh/hook"
	AnnotationHelmHookWeight       = "helm.sh/hook-weight"
	AnnotationHelmHookDeletePolicy = "helm.sh/hook-delete-policy"
)

// Phase is a phase of a sync, as Argo CD names them.
type Phase string

// Phases, in the order a sync runs them; SyncFail runs only when one of them failed.
const (
	PreSync  Phase = "PreSync"
	Sync     Phase = "Sync"
	PostSync Phase = "PostSync"
	SyncFail Phase = "SyncFail"
)

// DeletePolicy says when the agent deletes a hook it ran.
type DeletePolicy string

// Delete policies, as Argo CD names them (Helm's are mapped onto them).
const (
	// BeforeHookCreation: the hook's object from an earlier run is deleted before the hook is
	// created again (the default, as in Argo CD and Helm).
	BeforeHookCreation DeletePolicy = "BeforeHookCreation"
	// HookSucceeded: deleted once it succeeded.
	HookSucceeded DeletePolicy = "HookSucceeded"
	// HookFailed: deleted once it failed.
	HookFailed DeletePolicy = "HookFailed"
)

// Hook is an object run in a phase rather than applied and kept: usually a Job or a Pod.
type Hook struct {
	Object *unstructured.Unstructured
	Phase  Phase
	Wave   int
	// Delete holds the hook's delete policies, never empty.
	Delete []DeletePolicy
}

// Deletes reports whether p is one of h's delete policies.
func (h Hook) Deletes(p DeletePolicy) bool { return slices.Contains(h.Delete, p) }

// Step is one wave of one phase: its objects are applied (the Sync phase only) and its hooks
// run together, and the next step starts once they are Healthy and the hooks done.
type Step struct {
	Phase Phase
	Wave  int
	// Objects are applied and kept in the app's inventory (the Sync phase only). The first
	// step of the Sync phase also carries every Namespace and CustomResourceDefinition of the
	// app, whatever their wave: what other objects need goes first.
	Objects []*unstructured.Unstructured
	Hooks   []Hook
}

// Plan is the order of one sync.
type Plan struct {
	// Objects are every object applied and kept in the inventory: the Sync phase's objects.
	Objects []*unstructured.Unstructured
	// Hooks are every hook of every phase (an object named in two phases is a hook of each).
	Hooks []Hook
	// Skipped are never applied nor pruned: argocd.argoproj.io/hook: Skip, Helm test hooks and
	// hooks of phases Flotilla does not run (Helm's pre/post-delete and -rollback, Argo CD's
	// PostDelete).
	Skipped []*unstructured.Unstructured
	// Steps are the phases PreSync, Sync and PostSync, each in wave order, lowest first.
	Steps []Step
	// SyncFail are the SyncFail hooks, in wave order: run when a step failed.
	SyncFail []Step
}

// Simple reports whether the plan is one step of objects and no hooks: the app is applied in
// one go, as an app without waves or hooks always was.
func (p *Plan) Simple() bool {
	return len(p.Hooks) == 0 && len(p.Steps) <= 1
}

// Waves returns the wave each object of the plan is applied in, by key, for objects not in wave
// 0 (Namespaces and CRDs count in the first step's wave, where they are applied).
func (p *Plan) Waves(key func(*unstructured.Unstructured) string) map[string]int {
	out := map[string]int{}
	for _, s := range p.Steps {
		for _, o := range s.Objects {
			if s.Wave != 0 {
				out[key(o)] = s.Wave
			}
		}
	}
	return out
}

// AnnotationError is an object whose ordering annotations cannot be read: the sync is refused.
type AnnotationError struct {
	Object string // the object, as people name it
	// Annotations are the annotations at fault (two when they disagree).
	Annotations []string
	Problem     string
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("%s: annotation %s: %s", e.Object, strings.Join(e.Annotations, " and "), e.Problem)
}

// New plans objs. An object whose wave, hook or delete policy annotations cannot be read fails
// the whole plan with an *AnnotationError naming it.
func New(objs []*unstructured.Unstructured) (*Plan, error) {
	p := &Plan{}
	var first []*unstructured.Unstructured // Namespaces and CRDs: the first Sync step
	waves := map[Phase]map[int]*Step{}
	step := func(ph Phase, wave int) *Step {
		if waves[ph] == nil {
			waves[ph] = map[int]*Step{}
		}
		s := waves[ph][wave]
		if s == nil {
			s = &Step{Phase: ph, Wave: wave}
			waves[ph][wave] = s
		}
		return s
	}
	for _, o := range objs {
		spec, err := read(o)
		if err != nil {
			return nil, err
		}
		switch {
		case spec.skip:
			p.Skipped = append(p.Skipped, o)
		case len(spec.phases) > 0:
			for _, ph := range spec.phases {
				h := Hook{Object: o, Phase: ph, Wave: spec.wave, Delete: spec.delete}
				p.Hooks = append(p.Hooks, h)
				s := step(ph, spec.wave)
				s.Hooks = append(s.Hooks, h)
			}
		case firstKind(o):
			p.Objects = append(p.Objects, o)
			first = append(first, o)
		default:
			p.Objects = append(p.Objects, o)
			s := step(Sync, spec.wave)
			s.Objects = append(s.Objects, o)
		}
	}
	if len(first) > 0 && len(waves[Sync]) == 0 {
		step(Sync, 0)
	}
	for _, ph := range []Phase{PreSync, Sync, PostSync, SyncFail} {
		ordered := sortedSteps(waves[ph])
		if ph == Sync && len(ordered) > 0 {
			ordered[0].Objects = append(slices.Clone(first), ordered[0].Objects...)
		}
		if ph == SyncFail {
			p.SyncFail = ordered
		} else {
			p.Steps = append(p.Steps, ordered...)
		}
	}
	return p, nil
}

func sortedSteps(m map[int]*Step) []Step {
	out := make([]Step, 0, len(m))
	for _, s := range m {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Step) int { return a.Wave - b.Wave })
	return out
}

// firstKind: Namespaces and CRDs go before every wave.
func firstKind(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return (gvk.Group == "" && gvk.Kind == "Namespace") ||
		(gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition")
}

// spec is what an object's annotations say.
type spec struct {
	wave   int
	phases []Phase // empty: not a hook
	skip   bool
	delete []DeletePolicy
}

// read reads o's ordering annotations.
func read(o *unstructured.Unstructured) (spec, error) {
	ann := o.GetAnnotations()
	fail := func(problem string, keys ...string) (spec, error) {
		return spec{}, &AnnotationError{Object: bundle.Ref(o), Annotations: keys, Problem: problem}
	}
	var s spec
	wave, waveKey, err := waveOf(ann)
	if err != nil {
		return fail(err.Error(), waveKey...)
	}
	s.wave = wave

	argoHook, isArgo := ann[AnnotationArgoHook]
	helmHook, isHelm := ann[AnnotationHelmHook]
	switch {
	case isArgo: // Argo CD ignores Helm's hook annotations when its own are there
		for _, v := range list(argoHook) {
			switch Phase(v) {
			case PreSync, Sync, PostSync, SyncFail:
				s.phases = appendNew(s.phases, Phase(v))
			case "Skip", "PostDelete":
				s.skip = true
			default:
				return fail(fmt.Sprintf("%q is not a hook (want PreSync, Sync, PostSync, SyncFail or Skip)", v), AnnotationArgoHook)
			}
		}
		if s.delete, err = deletePolicies(ann[AnnotationArgoHookDeletePolicy], argoDelete); err != nil {
			return fail(err.Error(), AnnotationArgoHookDeletePolicy)
		}
	case isHelm:
		for _, v := range list(helmHook) {
			switch v {
			case "pre-install", "pre-upgrade":
				s.phases = appendNew(s.phases, PreSync)
			case "post-install", "post-upgrade":
				s.phases = appendNew(s.phases, PostSync)
			case "pre-delete", "post-delete", "pre-rollback", "post-rollback":
				s.skip = true
			default:
				if strings.HasPrefix(v, "test") { // test, test-success, test-failure: never run
					s.skip = true
					continue
				}
				return fail(fmt.Sprintf("%q is not a Helm hook", v), AnnotationHelmHook)
			}
		}
		if len(waveKey) == 0 {
			if w, ok := ann[AnnotationHelmHookWeight]; ok {
				if s.wave, err = strconv.Atoi(strings.TrimSpace(w)); err != nil {
					return fail(fmt.Sprintf("%q is not an integer", w), AnnotationHelmHookWeight)
				}
			}
		}
		if s.delete, err = deletePolicies(ann[AnnotationHelmHookDeletePolicy], helmDelete); err != nil {
			return fail(err.Error(), AnnotationHelmHookDeletePolicy)
		}
	}
	if s.skip {
		s.phases = nil // Skip (or a hook Flotilla never runs) wins: never applied
	}
	return s, nil
}

// waveOf reads the wave; keys names the wave annotations set (for errors).
func waveOf(ann map[string]string) (wave int, keys []string, err error) {
	argo, hasArgo := ann[AnnotationArgoWave]
	own, hasOwn := ann[AnnotationWave]
	parse := func(v string) (int, error) {
		w, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", v)
		}
		return w, nil
	}
	switch {
	case hasArgo && hasOwn:
		a, err := parse(argo)
		if err != nil {
			return 0, []string{AnnotationArgoWave}, err
		}
		o, err := parse(own)
		if err != nil {
			return 0, []string{AnnotationWave}, err
		}
		if a != o {
			return 0, []string{AnnotationArgoWave, AnnotationWave}, fmt.Errorf("the waves differ (%d and %d): set one", a, o)
		}
		return a, []string{AnnotationArgoWave}, nil
	case hasArgo:
		w, err := parse(argo)
		return w, []string{AnnotationArgoWave}, err
	case hasOwn:
		w, err := parse(own)
		return w, []string{AnnotationWave}, err
	}
	return 0, nil, nil
}

var (
	argoDelete = map[string]DeletePolicy{
		"BeforeHookCreation": BeforeHookCreation, "HookSucceeded": HookSucceeded, "HookFailed": HookFailed,
	}
	helmDelete = map[string]DeletePolicy{
		"before-hook-creation": BeforeHookCreation, "hook-succeeded": HookSucceeded, "hook-failed": HookFailed,
	}
)

// deletePolicies reads a delete policy annotation; empty is BeforeHookCreation.
func deletePolicies(v string, names map[string]DeletePolicy) ([]DeletePolicy, error) {
	var out []DeletePolicy
	for _, s := range list(v) {
		p, ok := names[s]
		if !ok {
			want := make([]string, 0, len(names))
			for k := range names {
				want = append(want, k)
			}
			slices.Sort(want)
			return nil, fmt.Errorf("%q is not a delete policy (want %s)", s, strings.Join(want, ", "))
		}
		out = appendNew(out, p)
	}
	if len(out) == 0 {
		out = []DeletePolicy{BeforeHookCreation}
	}
	return out, nil
}

// list splits a comma-separated annotation value, dropping blanks.
func list(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func appendNew[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
