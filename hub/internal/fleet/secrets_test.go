package fleet

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

func TestCheckSecrets(t *testing.T) {
	obj := func(apiVersion, kind, ns, name string, extra map[string]any) *unstructured.Unstructured {
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind,
			"metadata": map[string]any{"name": name, "namespace": ns}}}
		for k, v := range extra {
			o.Object[k] = v
		}
		return o
	}
	const canary = "c2VjcmV0LWNhbmFyeQ=="
	withPlain, err := bundle.New([]*unstructured.Unstructured{
		obj("v1", "ConfigMap", "api", "cfg", nil),
		obj("v1", "Secret", "api", "creds", map[string]any{"data": map[string]any{"password": canary}}),
		obj("flotilla.dev/v1alpha1", "EncryptedSecret", "api", "sealed", map[string]any{"spec": map[string]any{"encryptedData": map[string]any{"k": "x"}}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	encryptedOnly, err := bundle.New([]*unstructured.Unstructured{
		obj("flotilla.dev/v1alpha1", "EncryptedSecret", "api", "sealed", map[string]any{"spec": map[string]any{"encryptedData": map[string]any{"k": "x"}}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &Reconciler{}
	tests := []struct {
		name     string
		mode     apps.SecretsMode
		b        *bundle.Bundle
		warnings int
		wantErr  bool
	}{
		{"default warns", "", withPlain, 1, false},
		{"warn", apps.SecretsWarn, withPlain, 1, false},
		{"deny", apps.SecretsDeny, withPlain, 0, true},
		{"encrypted only, deny", apps.SecretsDeny, encryptedOnly, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warnings, err := r.checkSecrets(&apps.Application{Name: "api", Secrets: tt.mode}, tt.b)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %t", err, tt.wantErr)
			}
			if len(warnings) != tt.warnings {
				t.Fatalf("warnings %q, want %d", warnings, tt.warnings)
			}
			text := strings.Join(warnings, "\n")
			if err != nil {
				text = err.Error()
			}
			if text != "" && !strings.Contains(text, "Secret/api/creds") {
				t.Errorf("%q does not name the Secret", text)
			}
			if strings.Contains(text, canary) || strings.Contains(text, "sealed") {
				t.Errorf("%q holds a value or names the EncryptedSecret", text)
			}
		})
	}

	info := &AppInfo{Warnings: []string{"a"}}
	shared := info.Warnings
	addWarnings(info, []string{"b", "b", "a"})
	if strings.Join(info.Warnings, ",") != "a,b" || len(shared) != 1 {
		t.Errorf("addWarnings: %q (shared %q)", info.Warnings, shared)
	}
}

// TestOptionWarnings: `flotilla apps` names the per-object sync and compare options the agent
// does not honour, and none of those it does.
func TestOptionWarnings(t *testing.T) {
	cm := func(name string, ann map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": name, "namespace": "api", "annotations": ann}}}
	}
	b, err := bundle.New([]*unstructured.Unstructured{
		cm("fine", map[string]any{"argocd.argoproj.io/sync-options": "Prune=false,Delete=false,Replace=true,Validate=false,ServerSideApply=true,SkipDryRunOnMissingResource=true",
			"argocd.argoproj.io/compare-options": "IgnoreExtraneous", "flotilla.dev/sync-options": "Force=true"}),
		cm("odd", map[string]any{"argocd.argoproj.io/sync-options": "PruneLast=true, Prune=confirm", "argocd.argoproj.io/compare-options": "ServerSideDiff=true"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	got := (&Reconciler{}).optionWarnings(b)
	want := "ConfigMap/api/odd: sync options PruneLast=true, Prune=confirm, ServerSideDiff=true are not supported and are ignored"
	if len(got) != 1 || got[0] != want {
		t.Errorf("optionWarnings = %q, want [%q]", got, want)
	}
}
