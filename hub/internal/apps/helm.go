package apps

import (
	"fmt"
	"path"
	"strings"
	"text/template"
)

// Helm is a source's helm block, with Argo CD's field names (spec.source.helm).
type Helm struct {
	// ReleaseName is .Release.Name (default: the application's name).
	ReleaseName string
	// Namespace is .Release.Namespace (default: the destination namespace).
	Namespace string
	// ValueFiles are paths relative to the chart (in Git: to the source path; "$REF/path"
	// names a file of the source whose ref is REF), templates over the cluster variables.
	ValueFiles []string
	// Values is a YAML document, a template over the cluster variables.
	Values string
	// ValuesObject is values as an object; its string values are templates over the cluster
	// variables.
	ValuesObject map[string]any
	Parameters   []HelmParameter
	SkipCRDs     bool
	// IgnoreMissingValueFiles skips value files that do not exist instead of failing.
	IgnoreMissingValueFiles bool
	// PassCredentials is accepted for Argo CD compatibility; the chart fetcher's credentials
	// rules decide what is sent where.
	PassCredentials bool
	// KubeVersion and APIVersions, when set, replace the cluster's own in .Capabilities (as
	// in Argo CD); by default each cluster's reported ones are used.
	KubeVersion string
	APIVersions []string
}

// HelmParameter is one helm.parameters entry (`--set name=value`, or `--set-string` with
// ForceString).
type HelmParameter struct {
	Name        string `json:"name"`
	Value       string `json:"value"`
	ForceString bool   `json:"forceString,omitempty"`
}

// helmDoc is the helm block as written, for both kinds.
type helmDoc struct {
	ReleaseName             string          `json:"releaseName,omitempty"`
	Namespace               string          `json:"namespace,omitempty"`
	ValueFiles              []string        `json:"valueFiles,omitempty"`
	Values                  string          `json:"values,omitempty"`
	ValuesObject            map[string]any  `json:"valuesObject,omitempty"`
	Parameters              []HelmParameter `json:"parameters,omitempty"`
	SkipCRDs                bool            `json:"skipCrds,omitempty"`
	IgnoreMissingValueFiles bool            `json:"ignoreMissingValueFiles,omitempty"`
	PassCredentials         bool            `json:"passCredentials,omitempty"`
	Version                 string          `json:"version,omitempty"`
	KubeVersion             string          `json:"kubeVersion,omitempty"`
	APIVersions             []string        `json:"apiVersions,omitempty"`
}

// sourceDoc is one source as written (spec.source, or an entry of spec.sources).
type sourceDoc struct {
	RepoURL        string   `json:"repoURL"`
	TargetRevision string   `json:"targetRevision,omitempty"`
	Path           string   `json:"path,omitempty"`
	Chart          string   `json:"chart,omitempty"`
	Ref            string   `json:"ref,omitempty"`
	Helm           *helmDoc `json:"helm,omitempty"`
	// Kustomize patches the chart's rendered output (kustomize.go).
	Kustomize *kustomizeDoc `json:"kustomize,omitempty"`
}

// helmKnown lists the helm fields Flotilla reads, for Argo CD's lenient decoding.
var helmKnown = known{
	"releaseName": nil, "namespace": nil, "valueFiles": nil, "values": nil, "valuesObject": nil,
	"parameters": nil, "skipCrds": nil, "ignoreMissingValueFiles": nil, "passCredentials": nil, "version": nil,
	"kubeVersion": nil, "apiVersions": nil,
}

// sourceKnown lists the fields of a source Flotilla reads.
var sourceKnown = known{
	"repoURL": nil, "targetRevision": nil, "path": nil, "chart": nil, "ref": nil, "helm": helmKnown,
	"kustomize": kustomizeKnown,
}

// source converts d; field is where it stands ("spec.source", "spec.sources[1]").
func (d sourceDoc) source(field string, errAt errorf) (Source, []error) {
	s := Source{RepoURL: d.RepoURL, TargetRevision: d.TargetRevision, Path: d.Path, Chart: d.Chart, Ref: d.Ref}
	patches, errs := d.Kustomize.patches(field+".kustomize", errAt)
	s.Patches = patches
	if d.Chart != "" && d.Path != "" {
		errs = append(errs, errAt(field, fmt.Errorf("chart and path are exclusive: chart names a chart in a Helm or OCI repository, path a directory in Git")))
	}
	if d.Chart != "" && !IsChartRepo(d.RepoURL) {
		errs = append(errs, errAt(field+".repoURL", fmt.Errorf("%q: a chart comes from a Helm repository (https://...) or an OCI registry (oci://...)", d.RepoURL)))
	}
	if h := d.Helm; h != nil {
		if h.Version != "" && h.Version != "v3" {
			errs = append(errs, errAt(field+".helm.version", fmt.Errorf("%q is not supported: charts render with Helm's v3 chart format (apiVersion v1 and v2 charts)", h.Version)))
		}
		s.Helm = &Helm{
			ReleaseName: h.ReleaseName, Namespace: h.Namespace, ValueFiles: h.ValueFiles, Values: h.Values,
			ValuesObject: h.ValuesObject, Parameters: h.Parameters, SkipCRDs: h.SkipCRDs,
			IgnoreMissingValueFiles: h.IgnoreMissingValueFiles, PassCredentials: h.PassCredentials,
			KubeVersion: h.KubeVersion, APIVersions: h.APIVersions,
		}
		for i, p := range h.Parameters {
			if strings.TrimSpace(p.Name) == "" {
				errs = append(errs, errAt(fmt.Sprintf("%s.helm.parameters[%d].name", field, i), ErrRequired))
			}
		}
		for i, f := range h.ValueFiles {
			if _, err := parseVars(f); err != nil {
				errs = append(errs, errAt(fmt.Sprintf("%s.helm.valueFiles[%d]", field, i), err))
			}
		}
		if _, err := parseVars(h.Values); err != nil {
			errs = append(errs, errAt(field+".helm.values", err))
		}
	}
	return s, errs
}

// sources converts spec.source or spec.sources (exclusive): the first source that renders
// (a chart or a path) is the primary Source; every source is in Sources.
func sources(single *sourceDoc, multi []sourceDoc, errAt errorf) (Source, []Source, []error) {
	switch {
	case single != nil && len(multi) > 0:
		return Source{}, nil, []error{errAt("spec.sources", fmt.Errorf("spec.source and spec.sources are exclusive, set one"))}
	case len(multi) == 0:
		var d sourceDoc
		if single != nil {
			d = *single
		}
		s, errs := d.source("spec.source", errAt)
		return s, nil, errs
	}
	var (
		all     []Source
		errs    []error
		primary = -1
		refs    = map[string]bool{}
	)
	for i, d := range multi {
		field := fmt.Sprintf("spec.sources[%d]", i)
		s, sErrs := d.source(field, errAt)
		errs = append(errs, sErrs...)
		if s.Ref != "" {
			if refs[s.Ref] {
				errs = append(errs, errAt(field+".ref", fmt.Errorf("%q is the ref of another source too", s.Ref)))
			}
			refs[s.Ref] = true
		}
		if primary < 0 && s.Renders() {
			primary = i
		}
		all = append(all, s)
	}
	if primary < 0 {
		errs = append(errs, errAt("spec.sources", fmt.Errorf("no source renders anything: one needs a chart or a path")))
		return Source{}, all, errs
	}
	return all[primary], all, errs
}

// Renders reports whether the source produces objects (a chart, or a path in Git); a source
// with only a ref provides files to the others.
func (s Source) Renders() bool { return s.Chart != "" || s.Path != "" || s.Ref == "" }

// IsChartRepo reports whether url can name a Helm repository (https://, http://) or an OCI
// registry (oci://), where a source's chart or a chart's dependency is fetched from. (An
// https:// URL may be a Git repository too: a source is a chart only when it names one.)
func IsChartRepo(url string) bool {
	lower := strings.ToLower(url)
	return strings.HasPrefix(lower, "oci://") || strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://")
}

// vars are the cluster variables templates see.
func vars(c ClusterVars) map[string]any { return map[string]any{"name": c.Name, "labels": c.Labels} }

func parseVars(s string) (*template.Template, error) {
	t, err := template.New("value").Option("missingkey=error").Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return t, nil
}

// expand renders s, a template over the cluster variables, for c; a label c lacks is an
// error naming it.
func expand(s string, c ClusterVars) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	t, err := parseVars(s)
	if err != nil {
		return "", err
	}
	for _, key := range labelKeys(t) {
		if _, ok := c.Labels[key]; !ok {
			return "", fmt.Errorf("%q: cluster %q has no label %q", s, c.Name, key)
		}
	}
	var b strings.Builder
	if err := t.Execute(&b, vars(c)); err != nil {
		return "", fmt.Errorf("%q for cluster %q: %w", s, c.Name, err)
	}
	return b.String(), nil
}

// HelmFor returns the source's helm settings for cluster c: value file paths, the values
// string and valuesObject's strings with the cluster variables filled in, and the release
// name and namespace defaulted (the application's name, the destination namespace).
func (a *Application) HelmFor(s Source, c ClusterVars) (Helm, error) {
	var h Helm
	if s.Helm != nil {
		h = *s.Helm
	}
	if h.ReleaseName == "" {
		h.ReleaseName = a.Name
	}
	if h.Namespace == "" {
		h.Namespace = a.Destination.Namespace
	}
	fail := func(field string, err error) error {
		return fmt.Errorf("application %q: helm.%s: %w", a.Name, field, err)
	}
	h.ValueFiles = make([]string, len(h.ValueFiles))
	for i, f := range s.Helm.valueFiles() {
		v, err := expand(f, c)
		if err != nil {
			return Helm{}, fail(fmt.Sprintf("valueFiles[%d]", i), err)
		}
		h.ValueFiles[i] = v
	}
	v, err := expand(h.Values, c)
	if err != nil {
		return Helm{}, fail("values", err)
	}
	h.Values = v
	if h.ValuesObject != nil {
		obj, err := expandObject(h.ValuesObject, c)
		if err != nil {
			return Helm{}, fail("valuesObject", err)
		}
		h.ValuesObject = obj.(map[string]any)
	}
	return h, nil
}

func (h *Helm) valueFiles() []string {
	if h == nil {
		return nil
	}
	return h.ValueFiles
}

// expandObject copies v with every string expanded for c.
func expandObject(v any, c ClusterVars) (any, error) {
	switch v := v.(type) {
	case string:
		return expand(v, c)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			x, err := expandObject(e, c)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = x
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			x, err := expandObject(e, c)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			out[i] = x
		}
		return out, nil
	}
	return v, nil
}

// SplitRef splits a value file path "$REF/path" into the ref and the path in that source's
// repository; ok is false for a path without a ref.
func SplitRef(p string) (ref, rest string, ok bool) {
	if !strings.HasPrefix(p, "$") {
		return "", "", false
	}
	ref, rest, _ = strings.Cut(p[1:], "/")
	return ref, path.Clean(rest), true
}

// SourcePathFor renders the path of s, one of the app's sources, for cluster c, as PathFor
// does for the primary source.
func (a *Application) SourcePathFor(s Source, c ClusterVars) (string, error) {
	p, err := expand(s.Path, c)
	if err != nil {
		return "", fmt.Errorf("application %q: source %s path: %w", a.Name, s.RepoURL, err)
	}
	p, err = cleanPath(p)
	if err != nil {
		return "", fmt.Errorf("application %q: source %s path: %w", a.Name, s.RepoURL, err)
	}
	return p, nil
}
