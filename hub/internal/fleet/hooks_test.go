package fleet

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// TestCheckHooks: `flotilla apps` names the hooks Flotilla never runs, and only those.
func TestCheckHooks(t *testing.T) {
	job := func(name string, ann map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "batch/v1", "kind": "Job",
			"metadata": map[string]any{"name": name, "namespace": "api", "annotations": ann}}}
	}
	b, err := bundle.New([]*unstructured.Unstructured{
		job("migrate", map[string]any{"argocd.argoproj.io/hook": "PreSync"}),
		job("cleanup", map[string]any{"argocd.argoproj.io/hook": "PostDelete"}),
		job("wave", map[string]any{"argocd.argoproj.io/sync-wave": "2"}),
		job("helm-pre", map[string]any{"helm.sh/hook": "pre-install,pre-upgrade"}),
		job("helm-del", map[string]any{"helm.sh/hook": "pre-delete, post-rollback"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"Job.batch/api/cleanup: argocd.argoproj.io/hook: PostDelete is not supported: the object is never applied",
		"Job.batch/api/helm-del: helm.sh/hook: pre-delete is not supported: the object is never applied",
		"Job.batch/api/helm-del: helm.sh/hook: post-rollback is not supported: the object is never applied",
	}
	if got := checkHooks(b); !reflect.DeepEqual(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	plain, err := bundle.New([]*unstructured.Unstructured{job("migrate", map[string]any{"argocd.argoproj.io/sync-wave": "1"})})
	if err != nil {
		t.Fatal(err)
	}
	if got := checkHooks(plain); got != nil {
		t.Errorf("warnings for an app whose waves Flotilla runs: %q", got)
	}
}
