package render

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestPatchObjects: Kustomize patches over a chart's rendered objects, a strategic-merge
// patch naming its object and a JSON6902 patch with a target; a patch that selects nothing is
// an error naming it.
func TestPatchObjects(t *testing.T) {
	objs := func() []*unstructured.Unstructured {
		return []*unstructured.Unstructured{
			{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web"},
				"spec": map[string]any{"replicas": int64(1)}}},
			{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "web-config"},
				"data": map[string]any{"a": "1"}}},
		}
	}
	smp := Patch{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {team: platform}}\nspec: {replicas: 3}\n"}
	jsonPatch := Patch{Patch: `[{"op": "add", "path": "/data/b", "value": "2"}]`, Target: &PatchTarget{Kind: "ConfigMap", Name: "web-.*"}}
	tests := []struct {
		name    string
		patches []Patch
		check   func(t *testing.T, byName map[string]*unstructured.Unstructured)
		wantErr string
	}{
		{name: "strategic merge and JSON6902", patches: []Patch{smp, jsonPatch}, check: func(t *testing.T, by map[string]*unstructured.Unstructured) {
			if r, _, _ := unstructured.NestedInt64(by["web"].Object, "spec", "replicas"); r != 3 || by["web"].GetLabels()["team"] != "platform" {
				t.Errorf("Deployment not patched: %v", by["web"].Object)
			}
			if d, _, _ := unstructured.NestedStringMap(by["web-config"].Object, "data"); d["a"] != "1" || d["b"] != "2" {
				t.Errorf("ConfigMap data %v, want a=1 b=2", d)
			}
		}},
		{name: "no patches", check: func(t *testing.T, by map[string]*unstructured.Unstructured) {
			if len(by) != 2 {
				t.Errorf("%d objects", len(by))
			}
		}},
		{name: "target selects nothing", patches: []Patch{smp, {Patch: jsonPatch.Patch, Target: &PatchTarget{Kind: "Secret"}}},
			wantErr: "kustomize.patches[1] (kind=Secret): selects no object the chart rendered"},
		{name: "strategic merge naming no object", patches: []Patch{{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {replicas: 2}\n"}},
			wantErr: "kustomize.patches[0] (group=apps version=v1 kind=Deployment name=api): selects no object"},
		{name: "JSON6902 without target", patches: []Patch{{Patch: jsonPatch.Patch}},
			wantErr: "kustomize.patches[0]: without a target, patch must be a strategic-merge patch"},
		{name: "empty patch", patches: []Patch{{Target: &PatchTarget{Kind: "ConfigMap"}}}, wantErr: "kustomize.patches[0]: patch: required"},
	}
	r := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := r.PatchObjects(context.Background(), objs(), tt.patches)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			by := map[string]*unstructured.Unstructured{}
			for _, u := range out {
				by[u.GetName()] = u
			}
			tt.check(t, by)
		})
	}
}
