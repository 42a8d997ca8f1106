package plan

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// obj builds an object of kind (apiVersion inferred) named name with annotations as key=value.
func obj(kind, name string, annotations ...string) *unstructured.Unstructured {
	apiVersion := map[string]string{
		"Deployment": "apps/v1", "Job": "batch/v1", "CustomResourceDefinition": "apiextensions.k8s.io/v1",
	}[kind]
	if apiVersion == "" {
		apiVersion = "v1"
	}
	o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}}
	if len(annotations) > 0 {
		ann := map[string]string{}
		for _, kv := range annotations {
			k, v, _ := strings.Cut(kv, "=")
			ann[k] = v
		}
		o.SetAnnotations(ann)
	}
	return o
}

// describe writes a plan as one line per step: "Phase/wave: objects | hooks(policies)".
func describe(p *Plan) []string {
	var out []string
	steps := append(append([]Step{}, p.Steps...), p.SyncFail...)
	for _, s := range steps {
		var objs, hooks []string
		for _, o := range s.Objects {
			objs = append(objs, o.GetName())
		}
		for _, h := range s.Hooks {
			var pol []string
			for _, d := range h.Delete {
				pol = append(pol, string(d))
			}
			hooks = append(hooks, h.Object.GetName()+"("+strings.Join(pol, ",")+")")
		}
		out = append(out, fmt.Sprintf("%s/%d: %s | %s", s.Phase, s.Wave, strings.Join(objs, " "), strings.Join(hooks, " ")))
	}
	for _, o := range p.Skipped {
		out = append(out, "skip: "+o.GetName())
	}
	return out
}

func TestPlan(t *testing.T) {
	cases := []struct {
		name   string
		objs   []*unstructured.Unstructured
		want   []string
		simple bool
	}{
		{
			name:   "no annotations: one step, as always",
			objs:   []*unstructured.Unstructured{obj("Namespace", "ns"), obj("ConfigMap", "a"), obj("Deployment", "web")},
			want:   []string{"Sync/0: ns a web | "},
			simple: true,
		},
		{
			name:   "every object in one other wave is still one step",
			objs:   []*unstructured.Unstructured{obj("ConfigMap", "a", "argocd.argoproj.io/sync-wave=5"), obj("Deployment", "web", "flotilla.dev/wave=5")},
			want:   []string{"Sync/5: a web | "},
			simple: true,
		},
		{
			name:   "only Namespaces and CRDs",
			objs:   []*unstructured.Unstructured{obj("Namespace", "ns", "argocd.argoproj.io/sync-wave=3")},
			want:   []string{"Sync/0: ns | "},
			simple: true,
		},
		{
			name: "waves in order, negative first; Namespaces and CRDs of any wave go first",
			objs: []*unstructured.Unstructured{
				obj("Deployment", "web", "argocd.argoproj.io/sync-wave=1"),
				obj("ConfigMap", "db", "argocd.argoproj.io/sync-wave=-1"),
				obj("ConfigMap", "plain"),
				obj("Namespace", "late-ns", "argocd.argoproj.io/sync-wave=2"),
				obj("CustomResourceDefinition", "crd", "flotilla.dev/wave=7"),
				obj("ConfigMap", "both", "argocd.argoproj.io/sync-wave=1", "flotilla.dev/wave= 1"),
			},
			want: []string{"Sync/-1: late-ns crd db | ", "Sync/0: plain | ", "Sync/1: web both | "},
		},
		{
			name: "Argo CD hooks by phase and wave; BeforeHookCreation by default",
			objs: []*unstructured.Unstructured{
				obj("Job", "migrate", "argocd.argoproj.io/hook=PreSync"),
				obj("Job", "seed", "argocd.argoproj.io/hook=PreSync", "argocd.argoproj.io/sync-wave=-2", "argocd.argoproj.io/hook-delete-policy=HookSucceeded,HookFailed"),
				obj("Deployment", "web"),
				obj("Job", "during", "argocd.argoproj.io/hook=Sync", "argocd.argoproj.io/sync-wave=1"),
				obj("Job", "smoke", "argocd.argoproj.io/hook=PostSync", "argocd.argoproj.io/hook-delete-policy=HookSucceeded"),
				obj("Job", "alert", "argocd.argoproj.io/hook=SyncFail"),
				obj("ConfigMap", "skipped", "argocd.argoproj.io/hook=Skip"),
				obj("Job", "after-delete", "argocd.argoproj.io/hook=PostDelete"),
			},
			want: []string{
				"PreSync/-2:  | seed(HookSucceeded,HookFailed)",
				"PreSync/0:  | migrate(BeforeHookCreation)",
				"Sync/0: web | ",
				"Sync/1:  | during(BeforeHookCreation)",
				"PostSync/0:  | smoke(HookSucceeded)",
				"SyncFail/0:  | alert(BeforeHookCreation)",
				"skip: skipped", "skip: after-delete",
			},
		},
		{
			name: "a hook of two phases runs in each",
			objs: []*unstructured.Unstructured{obj("Job", "check", "argocd.argoproj.io/hook=PreSync,PostSync")},
			want: []string{"PreSync/0:  | check(BeforeHookCreation)", "PostSync/0:  | check(BeforeHookCreation)"},
		},
		{
			name: "Helm hooks: phases, weight as the wave, delete policies; tests never run",
			objs: []*unstructured.Unstructured{
				obj("Job", "pre", "helm.sh/hook=pre-install,pre-upgrade", "helm.sh/hook-weight=-5", "helm.sh/hook-delete-policy=before-hook-creation,hook-succeeded"),
				obj("Job", "post", "helm.sh/hook=post-upgrade", "helm.sh/hook-delete-policy=hook-failed"),
				obj("Pod", "test", "helm.sh/hook=test"),
				obj("Pod", "test-success", "helm.sh/hook=test-success"),
				obj("Job", "cleanup", "helm.sh/hook=pre-delete"),
				obj("Deployment", "web"),
			},
			want: []string{
				"PreSync/-5:  | pre(BeforeHookCreation,HookSucceeded)",
				"Sync/0: web | ",
				"PostSync/0:  | post(HookFailed)",
				"skip: test", "skip: test-success", "skip: cleanup",
			},
		},
		{
			name: "Argo CD's annotations win over Helm's; sync-wave over hook-weight",
			objs: []*unstructured.Unstructured{
				obj("Job", "both", "argocd.argoproj.io/hook=PostSync", "helm.sh/hook=pre-install", "helm.sh/hook-delete-policy=not-read"),
				obj("Job", "weighted", "helm.sh/hook=pre-install", "helm.sh/hook-weight=9", "argocd.argoproj.io/sync-wave=1"),
			},
			want: []string{"PreSync/1:  | weighted(BeforeHookCreation)", "PostSync/0:  | both(BeforeHookCreation)"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.objs)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(p); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("plan:\n got %q\nwant %q", got, tc.want)
			}
			if p.Simple() != tc.simple {
				t.Errorf("Simple() = %v, want %v", p.Simple(), tc.simple)
			}
			applied := 0
			for _, s := range p.Steps {
				applied += len(s.Objects)
			}
			if applied != len(p.Objects) {
				t.Errorf("steps apply %d objects, the plan keeps %d", applied, len(p.Objects))
			}
		})
	}
}

func TestPlanRefusesBadAnnotations(t *testing.T) {
	cases := []struct {
		name string
		o    *unstructured.Unstructured
		want string // the whole error: object, annotation(s), problem
	}{
		{"not an integer", obj("ConfigMap", "a", "argocd.argoproj.io/sync-wave=one"),
			`ConfigMap/a: annotation argocd.argoproj.io/sync-wave: "one" is not an integer`},
		{"Flotilla's not an integer", obj("Deployment", "web", "flotilla.dev/wave=1.5"),
			`Deployment.apps/web: annotation flotilla.dev/wave: "1.5" is not an integer`},
		{"both set, different", obj("ConfigMap", "a", "argocd.argoproj.io/sync-wave=1", "flotilla.dev/wave=2"),
			`ConfigMap/a: annotation argocd.argoproj.io/sync-wave and flotilla.dev/wave: the waves differ (1 and 2): set one`},
		{"both set, one bad", obj("ConfigMap", "a", "argocd.argoproj.io/sync-wave=1", "flotilla.dev/wave=x"),
			`ConfigMap/a: annotation flotilla.dev/wave: "x" is not an integer`},
		{"unknown hook", obj("Job", "j", "argocd.argoproj.io/hook=PreSynk"),
			`Job.batch/j: annotation argocd.argoproj.io/hook: "PreSynk" is not a hook (want PreSync, Sync, PostSync, SyncFail or Skip)`},
		{"unknown delete policy", obj("Job", "j", "argocd.argoproj.io/hook=PreSync", "argocd.argoproj.io/hook-delete-policy=Never"),
			`Job.batch/j: annotation argocd.argoproj.io/hook-delete-policy: "Never" is not a delete policy (want BeforeHookCreation, HookFailed, HookSucceeded)`},
		{"unknown Helm hook", obj("Job", "j", "helm.sh/hook=pre-instal"),
			`Job.batch/j: annotation helm.sh/hook: "pre-instal" is not a Helm hook`},
		{"bad Helm weight", obj("Job", "j", "helm.sh/hook=pre-install", "helm.sh/hook-weight=high"),
			`Job.batch/j: annotation helm.sh/hook-weight: "high" is not an integer`},
		{"bad Helm delete policy", obj("Job", "j", "helm.sh/hook=pre-install", "helm.sh/hook-delete-policy=HookSucceeded"),
			`Job.batch/j: annotation helm.sh/hook-delete-policy: "HookSucceeded" is not a delete policy (want before-hook-creation, hook-failed, hook-succeeded)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New([]*unstructured.Unstructured{obj("ConfigMap", "fine"), tc.o})
			var ae *AnnotationError
			if !errors.As(err, &ae) {
				t.Fatalf("got %v, want an *AnnotationError", err)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func TestWaves(t *testing.T) {
	p, err := New([]*unstructured.Unstructured{
		obj("Namespace", "ns"), obj("ConfigMap", "a", "flotilla.dev/wave=-1"), obj("ConfigMap", "b"), obj("ConfigMap", "c", "flotilla.dev/wave=2"),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := p.Waves(func(o *unstructured.Unstructured) string { return o.GetName() })
	want := map[string]int{"ns": -1, "a": -1, "c": 2}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Waves = %v, want %v", got, want)
	}
}
