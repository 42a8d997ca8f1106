package fleet

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDependsOnCycleKeepsLastGoodState: the reconciler carries each app's spec.dependsOn in its
// desired state. A commit of the Applications that makes a cycle (a → b → a) rejects both apps,
// each with an error naming the cycle as `flotilla apps` shows it; they keep their last good
// desired state although their repository moved on, while the app outside the cycle follows
// Git. Breaking the cycle brings them back.
func TestDependsOnCycleKeepsLastGoodState(t *testing.T) {
	repo := newTestRepo(t)
	cm := func(v string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {v: " + v + "}\n"
	}
	repo.commit("v1", map[string]string{"a/cm.yaml": cm("one"), "b/cm.yaml": cm("one"), "c/cm.yaml": cm("one")})
	appsDir := t.TempDir()
	writeApp := func(name string, deps ...string) {
		t.Helper()
		app := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  source: {repoURL: %q, targetRevision: main, path: %s}
  destination: {clusters: [c1], namespace: %s}
`, name, repo.dir, name, name)
		if len(deps) > 0 {
			app += "  dependsOn: [{app: " + strings.Join(deps, "}, {app: ") + "}]\n"
		}
		if err := os.WriteFile(filepath.Join(appsDir, name+".yaml"), []byte(app), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeApp("a")
	writeApp("b", "a")
	writeApp("c", "a", "b")
	f, r := newTestReconciler(t, appsDir, []ClusterVars{{Name: "c1"}})
	ctx := context.Background()
	r.Round(ctx)
	before := f.Snapshot("c1")
	for app, deps := range map[string][]string{"a": nil, "b": {"a"}, "c": {"a", "b"}} {
		if d := before[app]; d == nil || !slices.Equal(d.DependsOn, deps) {
			t.Fatalf("desired state of %s: %+v, want dependsOn %v", app, d, deps)
		}
	}

	writeApp("a", "b")
	repo.commit("v2", map[string]string{"a/cm.yaml": cm("two"), "b/cm.yaml": cm("two"), "c/cm.yaml": cm("two")})
	r.Round(ctx)
	after := f.Snapshot("c1")
	for _, app := range []string{"a", "b"} {
		if after[app] != before[app] {
			t.Errorf("desired state of %s in a cycle changed: %+v, want the last good one %+v", app, after[app], before[app])
		}
	}
	if after["c"].Digest() == before["c"].Digest() {
		t.Error("c, outside the cycle, did not follow Git")
	}
	errs := map[string]string{}
	for _, info := range f.Apps() {
		errs[info.Name] = info.Error
	}
	for app, want := range map[string]string{"a": "dependsOn cycle: a → b → a", "b": "dependsOn cycle: b → a → b"} {
		if !strings.Contains(errs[app], want) || !strings.Contains(errs[app], filepath.Join(appsDir, app+".yaml")) {
			t.Errorf("error of %s: %q, want it to name its file and %q", app, errs[app], want)
		}
	}
	if errs["c"] != "" {
		t.Errorf("c has an error: %s", errs["c"])
	}

	writeApp("a")
	r.Round(ctx)
	for _, app := range []string{"a", "b"} {
		if d := f.Snapshot("c1")[app]; d.Digest() == before[app].Digest() {
			t.Errorf("%s did not follow Git once the cycle was broken", app)
		}
	}
}
