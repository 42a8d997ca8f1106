// Package render turns a directory of a repository into Kubernetes objects: a kustomization
// built with kustomize (no plugins, no exec, no remote bases), or else a plain directory of
// YAML and JSON manifests; and renders Helm charts in-process with the Helm SDK (helm.go).
package render

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Defaults of Options.
const (
	DefaultMaxObjects = 5000
	DefaultTimeout    = 60 * time.Second
)

// ErrNotFound is wrapped by the error of a path the repository does not have.
var ErrNotFound = errors.New("not found in repository")

// Options configure a Renderer. Zero values take the defaults.
type Options struct {
	MaxObjects int           // most objects one render may produce
	Timeout    time.Duration // longest one render may take
	// Charts (helm.go): the largest packaged chart, all of a chart's files with its
	// dependencies, and everything its templates may render.
	MaxChartBytes         int
	MaxChartExpandedBytes int
	MaxOutputBytes        int
}

// Renderer renders repository paths. It is safe for concurrent use.
type Renderer struct {
	opts Options
}

// New makes a Renderer.
func New(opts Options) *Renderer {
	if opts.MaxObjects <= 0 {
		opts.MaxObjects = DefaultMaxObjects
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxChartBytes <= 0 {
		opts.MaxChartBytes = DefaultMaxChartBytes
	}
	if opts.MaxChartExpandedBytes <= 0 {
		opts.MaxChartExpandedBytes = DefaultMaxChartExpandedBytes
	}
	if opts.MaxOutputBytes <= 0 {
		opts.MaxOutputBytes = DefaultMaxOutputBytes
	}
	return &Renderer{opts: opts}
}

// kustomize keeps process-wide state (its OpenAPI schema) that is not safe for concurrent
// builds, so builds take turns in this one slot. The kustomizer, made once, is reused.
var (
	kustomizeSlot = make(chan struct{}, 1)
	kustomizer    = sync.OnceValue(func() *krusty.Kustomizer {
		o := krusty.MakeDefaultOptions()
		o.PluginConfig = types.DisabledPluginConfig() // builtins only: no exec, container or Go plugins
		o.PluginConfig.HelmConfig.Enabled = false     // helmCharts would run the helm binary
		o.LoadRestrictions = types.LoadRestrictionsRootOnly
		o.AddManagedbyLabel = false
		return krusty.MakeKustomizer(o)
	})
)

// Render builds p, a directory relative to the repository root "/" of fsys: with kustomize
// if it holds a kustomization file, else as a plain directory of *.yaml, *.yml and *.json
// manifests (not recursive; multi-document; empty documents skipped; List kinds
// flattened). Every object must have apiVersion, kind and metadata.name. Namespaces are left
// as written.
func (r *Renderer) Render(ctx context.Context, fsys filesys.FileSystem, p string) ([]*unstructured.Unstructured, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()
	fsys = aliasGuardFS{fsys} // before kustomize expands a "billion laughs"
	dir, err := repoPath(p)
	if err != nil {
		return nil, err
	}
	if !fsys.Exists(dir) {
		return nil, fmt.Errorf("path %q %w", p, ErrNotFound)
	}
	if !fsys.IsDir(dir) {
		return nil, fmt.Errorf("path %q: not a directory", p)
	}
	var objs []*unstructured.Unstructured
	if kfile := kustomizationFile(fsys, dir); kfile != "" {
		objs, err = r.kustomize(ctx, fsys, dir)
	} else {
		objs, err = r.plain(fsys, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", p, err)
	}
	return objs, nil
}

// repoPath turns a path relative to the repository root into an absolute one in fsys,
// refusing paths that leave the repository.
func repoPath(p string) (string, error) {
	c := path.Clean(strings.TrimPrefix(p, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q leaves the repository", p)
	}
	return path.Join("/", c), nil
}

func kustomizationFile(fsys filesys.FileSystem, dir string) string {
	for _, name := range konfig.RecognizedKustomizationFileNames() {
		if f := path.Join(dir, name); fsys.Exists(f) && !fsys.IsDir(f) {
			return f
		}
	}
	return ""
}

func (r *Renderer) kustomize(ctx context.Context, fsys filesys.FileSystem, dir string) ([]*unstructured.Unstructured, error) {
	if err := checkKustomization(fsys, dir); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kustomize build: %w", err)
	}
	select {
	case kustomizeSlot <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("kustomize build: waiting for another build: %w", ctx.Err())
	}
	type result struct {
		objs []*unstructured.Unstructured
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// Kustomize cannot be interrupted: on timeout this goroutine finishes on its own (its
		// input is in memory and bounded) and frees the slot.
		defer func() { <-kustomizeSlot }()
		objs, err := r.build(fsys, dir)
		done <- result{objs, err}
	}()
	select {
	case res := <-done:
		return res.objs, res.err
	case <-ctx.Done():
		return nil, fmt.Errorf("kustomize build: %w", ctx.Err())
	}
}

func (r *Renderer) build(fsys filesys.FileSystem, dir string) (objs []*unstructured.Unstructured, err error) {
	defer func() {
		if p := recover(); p != nil {
			objs, err = nil, fmt.Errorf("kustomize build: panic: %v", p)
		}
	}()
	m, err := kustomizer().Run(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build: %w", err)
	}
	if n := m.Size(); n > r.opts.MaxObjects {
		return nil, fmt.Errorf("%d objects, more than %d", n, r.opts.MaxObjects)
	}
	for i, res := range m.Resources() {
		data, err := res.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("object %d (%s): %w", i+1, res.CurId(), err)
		}
		var obj map[string]any
		if err := utiljson.Unmarshal(data, &obj); err != nil {
			return nil, fmt.Errorf("object %d (%s): %w", i+1, res.CurId(), err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if err := check(u); err != nil {
			return nil, fmt.Errorf("object %d (%s): %w", i+1, describe(u), err)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// check requires the fields every object needs.
func check(u *unstructured.Unstructured) error {
	var missing []string
	if s, _, _ := unstructured.NestedString(u.Object, "apiVersion"); s == "" {
		missing = append(missing, "apiVersion")
	}
	if s, _, _ := unstructured.NestedString(u.Object, "kind"); s == "" {
		missing = append(missing, "kind")
	}
	if s, _, _ := unstructured.NestedString(u.Object, "metadata", "name"); s == "" {
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s: required", strings.Join(missing, ", "))
	}
	return nil
}

// describe names an object for errors as far as it can.
func describe(u *unstructured.Unstructured) string {
	kind, name := u.GetKind(), u.GetName()
	switch {
	case kind == "" && name == "":
		return "object"
	case name == "":
		return kind
	case kind == "":
		return name
	}
	return kind + "/" + name
}
