package render

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// repoFS loads testdata/repo into an in-memory file system rooted at "/", as source does.
func repoFS(t *testing.T) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	root := filepath.Join("testdata", "repo")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		return mem.WriteFile("/"+filepath.ToSlash(rel), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	return mem
}

func encode(t *testing.T, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	var b strings.Builder
	for _, o := range objs {
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(data)
	}
	return []byte(b.String())
}

func TestRender(t *testing.T) {
	fsys := repoFS(t)
	r := New(Options{})
	tests := []struct{ path, golden string }{
		{"base", "base.yaml"},
		{"overlays/staging", "staging.yaml"},
		{"/overlays/production/", "production.yaml"},
		{"plain", "plain.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			objs, err := r.Render(context.Background(), fsys, tt.path)
			if err != nil {
				t.Fatal(err)
			}
			got := encode(t, objs)
			golden := filepath.Join("testdata", "golden", tt.golden)
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("render %s differs from %s:\n%s", tt.path, golden, got)
			}
			for _, o := range objs {
				if o.GetNamespace() != "" && o.GetName() != "two" {
					t.Errorf("%s/%s: namespace %q set", o.GetKind(), o.GetName(), o.GetNamespace())
				}
			}
		})
	}
}

func TestRenderErrors(t *testing.T) {
	fsys := repoFS(t)
	r := New(Options{})
	tests := []struct {
		path    string
		want    []string // substrings of the error
		wantErr error
	}{
		{"environments/qa/api", []string{`path "environments/qa/api" not found in repository`}, ErrNotFound},
		{"../outside", []string{`path "../outside" leaves the repository`}, nil},
		{"plain/a.yaml", []string{`path "plain/a.yaml": not a directory`}, nil},
		{"remote", []string{`path "remote": kustomization /remote/kustomization.yaml: resources "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1": remote bases and files are not allowed`}, ErrRemote},
		{"remote-file", []string{`path "remote-file"`, `path "https://raw.githubusercontent.com/example/repo/main/patch.yaml": remote bases`}, ErrRemote},
		{"remote-via-base", []string{`kustomization /components-remote/kustomization.yaml: resources "git@github.com:example/private-base.git"`}, ErrRemote},
		{"remote-generator", []string{`files "app.properties=https://example.com/app.properties": remote`}, ErrRemote},
		{"remote-builtin", []string{`transformers "patch.yaml": path "https://example.com/patch.yaml": remote`}, ErrRemote},
		{"exec-plugin", []string{`path "exec-plugin": kustomize build`, `external plugins disabled; unable to load external plugin 'SecretsFromVault'`}, nil},
		{"exec-transformer", []string{`path "exec-transformer": kustomize build`, `external plugins disabled; unable to load external plugin 'Mutator'`}, nil},
		{"helm", []string{`path "helm": kustomize build`, `enable-helm`}, nil},
		{"missing-name", []string{`path "missing-name": file "objects.yaml": document 2 (ConfigMap): metadata.name: required`}, nil},
		{"missing-name-kustomize", []string{`path "missing-name-kustomize": kustomize build: `, `'objects.yaml': missing metadata.name`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			objs, err := r.Render(context.Background(), fsys, tt.path)
			if err == nil {
				t.Fatalf("rendered %d objects, want an error", len(objs))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tt.wantErr)
			}
		})
	}
	if _, err := os.Stat("/tmp/flotilla-pwned"); err == nil {
		t.Errorf("a plugin ran")
	}
}

func TestRenderMaxObjects(t *testing.T) {
	fsys := repoFS(t)
	r := New(Options{MaxObjects: 2})
	for _, p := range []string{"plain", "overlays/production"} {
		if _, err := r.Render(context.Background(), fsys, p); err == nil || !strings.Contains(err.Error(), "more than 2") {
			t.Errorf("%s: error = %v, want more than 2 objects", p, err)
		}
	}
}

func TestRenderTimeout(t *testing.T) {
	fsys := repoFS(t)
	r := New(Options{Timeout: time.Nanosecond})
	if _, err := r.Render(context.Background(), fsys, "overlays/staging"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want deadline exceeded", err)
	}
}

func TestRenderConcurrent(t *testing.T) {
	fsys := repoFS(t)
	r := New(Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			p := []string{"overlays/staging", "overlays/production", "plain", "base"}[i%4]
			if _, err := r.Render(context.Background(), fsys, p); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
