package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
)

// sandboxMaxFileSize is the fetcher's file size cap in TestMaliciousRepository.
const sandboxMaxFileSize = 64 << 10

// sandboxApp is an app of one ConfigMap whose data is v.
func sandboxApp(name, v string) map[string]string {
	return map[string]string{
		name + "/kustomization.yaml": "resources:\n- cm.yaml\n",
		name + "/cm.yaml":            fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {v: %q}\n", name, v),
	}
}

// aliasBomb is a "billion laughs" YAML value: levels of nine aliases of the level below, 9^levels
// strings once expanded.
func aliasBomb(levels int) string {
	var b strings.Builder
	b.WriteString("  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		p := fmt.Sprintf("*l%d", i-1)
		fmt.Fprintf(&b, "  l%d: &l%d [%s]\n", i, i, strings.Join([]string{p, p, p, p, p, p, p, p, p}, ", "))
	}
	return b.String()
}

// TestMaliciousRepository: an app made malicious in a commit fails to render with an error
// naming the offending file (never the content of a file outside the checkout), nothing
// executes, its last good desired state stays, and another app of the same repository gets its
// new state (invariants 1 and 9).
func TestMaliciousRepository(t *testing.T) {
	passwd, _ := os.ReadFile("/etc/passwd")
	firstPasswdLine, _, _ := strings.Cut(string(passwd), "\n")
	marker := filepath.Join(t.TempDir(), "executed")
	touch := fmt.Sprintf("#!/bin/sh\ntouch %s\ncat <<EOF\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: pwned}\nEOF\n", marker)
	fnConfig := func(kind string) string {
		return fmt.Sprintf(`apiVersion: flotilla.test/v1
kind: %s
metadata:
  name: touch
  annotations:
    config.kubernetes.io/function: |
      exec:
        path: ./touch.sh
`, kind)
	}

	tests := []struct {
		name  string
		files map[string]string // evil's files in the second commit, over its first
		links map[string]string // symlinks: path → target
		want  []string          // each must appear in evil's error
	}{
		{
			name:  "symlink to /etc/passwd",
			files: map[string]string{"evil/kustomization.yaml": "resources:\n- cm.yaml\n- passwd.yaml\n"},
			links: map[string]string{"evil/passwd.yaml": "/etc/passwd"},
			want:  []string{"evil/passwd.yaml", "absolute target"},
		},
		{
			name:  "symlink to a directory outside",
			files: map[string]string{"evil/kustomization.yaml": "resources:\n- cm.yaml\n- etc\n"},
			links: map[string]string{"evil/etc": "../../../../../../etc"},
			want:  []string{"evil/etc", "outside the repository"},
		},
		{
			name:  "resources escape with ../",
			files: map[string]string{"evil/kustomization.yaml": "resources:\n- cm.yaml\n- ../../../outside\n- ../../../../etc/passwd\n"},
			want:  []string{"evil", "'/outside' doesn't exist"},
		},
		{
			name: "configMapGenerator files escape with ../",
			files: map[string]string{"evil/kustomization.yaml": "resources:\n- cm.yaml\nconfigMapGenerator:\n- name: stolen\n" +
				"  files: [../../../../etc/passwd]\n"},
			want: []string{"evil", "/etc/passwd"},
		},
		{
			name: "configMapGenerator key=path escape",
			files: map[string]string{"evil/kustomization.yaml": "resources:\n- cm.yaml\nconfigMapGenerator:\n- name: stolen\n" +
				"  files: [passwd=../good/../../etc/passwd]\n"},
			want: []string{"evil", "/etc/passwd"},
		},
		{
			name: "configMapGenerator files from another app",
			files: map[string]string{"evil/kustomization.yaml": "resources:\n- cm.yaml\nconfigMapGenerator:\n- name: stolen\n" +
				"  files: [../good/cm.yaml]\n"},
			want: []string{"security", "'/good/cm.yaml' is not in or below '/evil'"},
		},
		{
			name: "exec KRM function as generator",
			files: map[string]string{
				"evil/kustomization.yaml": "resources:\n- cm.yaml\ngenerators:\n- gen.yaml\n",
				"evil/gen.yaml":           fnConfig("Touch"),
				"evil/touch.sh":           touch,
			},
			want: []string{"evil", "external plugins disabled"},
		},
		{
			name: "exec KRM function as transformer",
			files: map[string]string{
				"evil/kustomization.yaml": "resources:\n- cm.yaml\ntransformers:\n- tr.yaml\n",
				"evil/tr.yaml":            fnConfig("Touch"),
				"evil/touch.sh":           touch,
			},
			want: []string{"evil", "external plugins disabled"},
		},
		{
			name: "inline exec KRM function",
			files: map[string]string{
				"evil/kustomization.yaml": "resources:\n- cm.yaml\ntransformers:\n- |\n" + indent(fnConfig("Touch"), "  "),
				"evil/touch.sh":           touch,
			},
			want: []string{"evil", "external plugins disabled"},
		},
		{
			name: "legacy exec plugin",
			files: map[string]string{
				"evil/kustomization.yaml": "resources:\n- cm.yaml\ngenerators:\n- gen.yaml\n",
				"evil/gen.yaml":           "apiVersion: flotilla.test/v1\nkind: Touch\nmetadata: {name: touch}\n",
				"evil/touch.sh":           touch,
			},
			want: []string{"evil", "external plugins disabled"},
		},
		{
			name: "helm chart",
			files: map[string]string{
				"evil/kustomization.yaml": "resources:\n- cm.yaml\nhelmCharts:\n- name: touch\n  repo: https://charts.example\n  version: 1.0.0\n",
			},
			want: []string{"evil/kustomization.yaml", "https://charts.example", "not allowed"},
		},
		{
			name:  "remote base over https",
			files: map[string]string{"evil/kustomization.yaml": "resources:\n- cm.yaml\n- https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\n"},
			want:  []string{"evil/kustomization.yaml", "remote bases and files are not allowed"},
		},
		{
			name:  "remote base over ssh",
			files: map[string]string{"evil/kustomization.yaml": "resources:\n- cm.yaml\n- git@github.com:evil/bases.git//web?ref=main\n"},
			want:  []string{"evil/kustomization.yaml", "remote bases and files are not allowed"},
		},
		{
			name: "file over the size cap",
			files: map[string]string{
				"evil/kustomization.yaml": "resources:\n- cm.yaml\n- big.yaml\n",
				"evil/big.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {v: " + strings.Repeat("x", sandboxMaxFileSize) + "}\n",
			},
			want: []string{"evil/big.yaml", "too large"},
		},
		{
			name: "alias bomb in a resource",
			files: map[string]string{
				"evil/cm.yaml": "apiVersion: flotilla.test/v1\nkind: Laughs\nmetadata: {name: evil}\nspec:\n" + aliasBomb(9),
			},
			want: []string{"evil/cm.yaml", "aliases add more than"},
		},
		{
			name: "alias bomb in kustomization.yaml",
			files: map[string]string{
				"evil/kustomization.yaml": "resources:\n- cm.yaml\nbomb:\n" + aliasBomb(9),
			},
			want: []string{"evil/kustomization.yaml", "aliases add more than"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := newTestRepo(t)
			first := sandboxApp("good", "1")
			for p, c := range sandboxApp("evil", "1") {
				first[p] = c
			}
			repo.commit("both good", first)

			appsDir := t.TempDir()
			for _, name := range []string{"good", "evil"} {
				app := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: %s}
spec:
  source: {repoURL: %q, targetRevision: main, path: %s}
  destination:
    clusterSelector: {matchExpressions: [{key: env, operator: Exists}]}
    namespace: %s
`, name, repo.dir, name, name)
				if err := os.WriteFile(filepath.Join(appsDir, name+".yaml"), []byte(app), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			fetcher, err := source.New(source.Options{CacheDir: t.TempDir(), AllowLocal: true, MaxFileSize: sandboxMaxFileSize})
			if err != nil {
				t.Fatal(err)
			}
			f := New(time.Minute)
			r := NewReconciler(ReconcilerConfig{
				AppsDir: appsDir, Fetcher: fetcher, Renderer: render.New(render.Options{}), Cache: render.NewCache(0),
				RenderTimeout: 30 * time.Second,
				Clusters: func() ([]ClusterVars, error) {
					return []ClusterVars{{Name: "c1", Labels: map[string]string{"env": "prod"}}}, nil
				},
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			}, f)
			ctx := context.Background()

			r.Round(ctx)
			if errs := appErrors(f); errs != "" {
				t.Fatalf("first round: %s", errs)
			}
			before := f.Snapshot("c1")
			if before["good"] == nil || before["evil"] == nil {
				t.Fatalf("first round: desired state %v, want good and evil", before)
			}

			second := sandboxApp("good", "2")
			for p, c := range tt.files {
				second[p] = c
			}
			for p, target := range tt.links {
				full := filepath.Join(repo.dir, filepath.FromSlash(p))
				if err := os.Symlink(target, full); err != nil {
					t.Fatal(err)
				}
			}
			repo.commit("evil turns malicious", second)

			r.Round(ctx)
			after := f.Snapshot("c1")
			if d := after["evil"]; d == nil || d.Digest() != before["evil"].Digest() || d.Generation != before["evil"].Generation {
				t.Errorf("evil's desired state changed: %+v, want the last good one (digest %s)", d, before["evil"].Digest())
			}
			if d := after["good"]; d == nil || d.Digest() == before["good"].Digest() {
				t.Errorf("good did not get its new state: %+v", d)
			}
			var evilErr string
			for _, a := range f.Apps() {
				switch a.Name {
				case "good":
					if a.Error != "" {
						t.Errorf("good has an error: %s", a.Error)
					}
				case "evil":
					evilErr = a.Error
				}
			}
			t.Logf("evil: %s", evilErr)
			if evilErr == "" {
				t.Fatal("evil reports no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(evilErr, w) {
					t.Errorf("evil's error does not mention %q: %s", w, evilErr)
				}
			}
			if firstPasswdLine != "" && strings.Contains(evilErr, firstPasswdLine) || strings.Contains(evilErr, "root:x:0:0") {
				t.Errorf("evil's error shows /etc/passwd's content: %s", evilErr)
			}
			if len(evilErr) > 4096 {
				t.Errorf("evil's error is %d bytes long, want it short", len(evilErr))
			}
			// flotilla status shows the refusal on evil's row, and good's row as usual.
			evil := row(f, "c1", "evil")
			if evil == nil || evil.Sync != SyncRenderFailed || evil.Health != HealthUnknown || evil.DesiredRevision != before["evil"].Revision {
				t.Errorf("evil's status row %+v, want RenderFailed at the last good desired revision %s", evil, before["evil"].Revision)
			} else {
				for _, w := range tt.want {
					if !strings.Contains(evil.Message, w) {
						t.Errorf("evil's status message does not mention %q: %s", w, evil.Message)
					}
				}
				if firstPasswdLine != "" && strings.Contains(evil.Message, firstPasswdLine) || strings.Contains(evil.Message, "root:x:0:0") {
					t.Errorf("evil's status message shows /etc/passwd's content: %s", evil.Message)
				}
			}
			if good := row(f, "c1", "good"); good == nil || good.Sync == SyncRenderFailed {
				t.Errorf("good's status row %+v", good)
			}
			if _, err := os.Stat(marker); !os.IsNotExist(err) {
				t.Fatalf("the repository's script ran (marker %s: %v)", marker, err)
			}
		})
	}
}

func indent(s, prefix string) string {
	lines := strings.SplitAfter(strings.TrimSuffix(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "") + "\n"
}
