// Package apps reads Application manifests (Flotilla's own and Argo CD's) from files and
// directories, validates them, and answers which clusters an application targets and which
// repository path it renders for each of them.
package apps

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// Defaults applied while parsing.
const (
	DefaultTargetRevision   = "HEAD"
	DefaultProgressDeadline = 5 * time.Minute
	// A retry block without a backoff gets Argo CD's backoff.
	DefaultRetryDuration    = 5 * time.Second
	DefaultRetryFactor      = 2.0
	DefaultRetryMaxDuration = 3 * time.Minute
)

// Application is one application: where its manifests come from, which clusters receive them,
// and how they are synced and judged healthy.
type Application struct {
	Name       string
	SourceFile string // the file it was read from, for errors and `flotilla apps`
	// Source is the source that renders (spec.source, or the first of spec.sources with a
	// chart or a path).
	Source Source
	// Sources are all of spec.sources (Argo CD multi-source), Source among them; nil for an
	// app with one spec.source.
	Sources     []Source
	Destination Destination
	SyncPolicy  SyncPolicy
	Health      HealthPolicy
	// Access is spec.policy: the namespaces and kinds the app's objects may touch.
	Access AccessPolicy
	// Secrets is spec.secrets: whether plain Secret manifests warn (default) or fail the render.
	Secrets SecretsMode
	// DependsOn is spec.dependsOn: the apps that must be Synced and Healthy on a cluster before
	// a new revision of this one is applied there (depends.go).
	DependsOn []string
	// Rollout is spec.rollout (rollout.go): a new revision reaches the clusters step by step;
	// nil: all at once.
	Rollout *RolloutSpec
	// IgnoreDifferences is spec.ignoreDifferences: fields that are not drift (shared/ignore).
	IgnoreDifferences []ignore.Rule
	// Spec is the digest of what the app's clusters receive of its definition, and Doc its
	// manifest document, for progressive rollouts (definition.go); empty for an Argo CD
	// Application (it has no spec.rollout).
	Spec string
	Doc  []byte
	// Warnings report accepted manifests fields that Flotilla does not honour (mostly Argo CD
	// fields); they are never silently ignored.
	Warnings []string

	pathTmpl *template.Template // Source.Path parsed; nil until first needed
}

// Source is where an application's manifests come from: a path in Git (a kustomization, a
// plain directory, or a chart when it holds Chart.yaml), or a chart in a Helm or OCI
// repository.
type Source struct {
	RepoURL string
	// TargetRevision is, in Git, a branch, tag, commit or "HEAD"; for a chart in a Helm or OCI
	// repository, its version or a semver range (empty: the newest).
	TargetRevision string
	// Path is a Go text/template over the cluster variables: {{ .name }} and {{ .labels.KEY }}.
	Path string
	// Chart names a chart in the Helm or OCI repository RepoURL.
	Chart string
	// Ref names this source for the others' value files ("$REF/path", multi-source apps).
	Ref string
	// Helm is the source's helm block (helm.go); nil when absent.
	Helm *Helm
	// Patches are the source's kustomize.patches (kustomize.go), applied to a chart's
	// rendered output.
	Patches []render.Patch
}

// IsChart reports whether the source is a chart in a Helm or OCI repository (not Git).
func (s Source) IsChart() bool { return s.Chart != "" }

// Destination names the clusters an application goes to: Clusters by name or Selector over
// cluster labels, exactly one of the two.
type Destination struct {
	Clusters  []string
	Selector  labels.Selector
	Namespace string
}

// SyncPolicy says when and how an application is synced.
type SyncPolicy struct {
	Automated       bool
	Prune           bool
	SelfHeal        bool
	AllowEmpty      bool
	CreateNamespace bool
	PruneLast       bool
	Retry           Retry
	// PreserveResourcesOnDeletion: when the app leaves a cluster, its objects stay there,
	// no longer managed; nothing is deleted.
	PreserveResourcesOnDeletion bool
	// Force (syncOptions Force=true or Replace=true): an object whose update changes an
	// immutable field is deleted and recreated.
	Force bool
	// RespectIgnoreDifferences (syncOptions RespectIgnoreDifferences=true): a sync leaves the
	// fields spec.ignoreDifferences names as they are live, as self-heal always does.
	RespectIgnoreDifferences bool
	// PrunePropagation (syncOptions PrunePropagationPolicy=...): how prune deletes propagate,
	// one of the Propagation constants; empty is background.
	PrunePropagation string
	// SkipValidation (syncOptions Validate=false): objects are applied without the API server's
	// field validation, as the per-object option does.
	SkipValidation bool
}

// Retry bounds the retries of a failed sync. Limit 0 means no retries, a negative Limit
// retries forever.
type Retry struct {
	Limit       int
	Duration    time.Duration
	Factor      float64
	MaxDuration time.Duration
}

// HealthPolicy says how long a revision may take to become healthy, what happens if it does
// not, and how the agent judges the kinds it has no rule for.
type HealthPolicy struct {
	ProgressDeadline time.Duration
	AutoRollback     bool
	// CustomRules (spec.health.customRules) judge the objects of one group and kind each.
	CustomRules []HealthRule
}

// HealthRule is a custom health rule: a CEL expression over `object` (the object as a map)
// returning {"status": "Healthy"|"Progressing"|"Degraded"|"Suspended"|"Missing"|"Unknown",
// "message": "..."}. The agent evaluates it; the hub only checks that it compiles.
type HealthRule struct {
	Group      string // "" for the core group
	Kind       string
	Expression string
}

// ClusterVars are the variables of one cluster that an application's path may use.
type ClusterVars struct {
	Name   string
	Labels map[string]string
}

// Targets reports whether the application goes to cluster c: c is named in Clusters or its
// labels match Selector.
func (a *Application) Targets(c ClusterVars) bool { return a.Destination.Targets(c) }

// Targets reports whether the destination is cluster c: c is named in Clusters or its labels
// match Selector.
func (d Destination) Targets(c ClusterVars) bool {
	if len(d.Clusters) > 0 {
		return slices.Contains(d.Clusters, c.Name)
	}
	return d.Selector != nil && d.Selector.Matches(labels.Set(c.Labels))
}

// PathFor renders the source path for cluster c. A label the path uses but c lacks is an
// error naming it. The result is cleaned, relative and stays inside the repository.
func (a *Application) PathFor(c ClusterVars) (string, error) {
	t := a.pathTmpl
	if t == nil {
		var err error
		if t, err = parsePath(a.Source.Path); err != nil {
			return "", fmt.Errorf("application %q: %w", a.Name, err)
		}
	}
	for _, key := range labelKeys(t) {
		if _, ok := c.Labels[key]; !ok {
			return "", fmt.Errorf("application %q: path %q: cluster %q has no label %q", a.Name, a.Source.Path, c.Name, key)
		}
	}
	var b strings.Builder
	data := map[string]any{"name": c.Name, "labels": c.Labels}
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("application %q: path %q for cluster %q: %w", a.Name, a.Source.Path, c.Name, err)
	}
	p, err := cleanPath(b.String())
	if err != nil {
		return "", fmt.Errorf("application %q: path %q for cluster %q: %w", a.Name, a.Source.Path, c.Name, err)
	}
	return p, nil
}

func parsePath(p string) (*template.Template, error) {
	t, err := template.New("path").Option("missingkey=error").Parse(p)
	if err != nil {
		return nil, fmt.Errorf("path %q: %w", p, err)
	}
	return t, nil
}

// cleanPath cleans a rendered path and refuses absolute paths and paths leaving the
// repository.
func cleanPath(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q must be relative to the repository root", p)
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("%q leaves the repository", p)
	}
	return c, nil
}

// labelKeys lists the KEYs of every {{ .labels.KEY }} in t.
func labelKeys(t *template.Template) []string {
	var keys []string
	var walk func(n parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			if len(n.Ident) >= 2 && n.Ident[0] == "labels" && !slices.Contains(keys, n.Ident[1]) {
				keys = append(keys, n.Ident[1])
			}
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		}
	}
	if t.Tree != nil {
		walk(t.Root)
	}
	return keys
}
