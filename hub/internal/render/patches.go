package render

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/provider"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"
)

// Patch is a Kustomize patch over a chart's rendered objects (an application's
// `kustomize.patches` entry, with Argo CD's field names): a strategic-merge or JSON6902
// Patch, applied to the objects Target selects, or, without a Target, to the object the
// strategic-merge patch itself names.
type Patch struct {
	Patch  string       `json:"patch"`
	Target *PatchTarget `json:"target,omitempty"`
}

// PatchTarget selects objects as Kustomize's patch target does: each field a regular
// expression matched whole, the selectors as label and annotation selectors.
type PatchTarget struct {
	Group              string `json:"group,omitempty"`
	Version            string `json:"version,omitempty"`
	Kind               string `json:"kind,omitempty"`
	Name               string `json:"name,omitempty"`
	Namespace          string `json:"namespace,omitempty"`
	LabelSelector      string `json:"labelSelector,omitempty"`
	AnnotationSelector string `json:"annotationSelector,omitempty"`
}

// PatchesDigest is the digest of patches, for the render cache key ("" for none).
func PatchesDigest(patches []Patch) string {
	if len(patches) == 0 {
		return ""
	}
	data, _ := json.Marshal(patches) // plain strings: cannot fail
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// patchDir is where PatchObjects lays out its kustomization in memory.
const patchDir = "/rendered"

// PatchObjects applies patches to objs (a chart's rendered output) with Kustomize, as a
// kustomization listing the objects as its one resource would, inside the same sandbox as
// every kustomize build. A patch that selects no object is an error naming it
// (kustomize.patches[i]), as is a patch kustomize refuses.
func (r *Renderer) PatchObjects(ctx context.Context, objs []*unstructured.Unstructured, patches []Patch) ([]*unstructured.Unstructured, error) {
	if len(patches) == 0 {
		return objs, nil
	}
	var resources bytes.Buffer
	for _, u := range objs {
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", describe(u), err)
		}
		resources.WriteString("---\n")
		resources.Write(data)
	}
	m, err := resmap.NewFactory(provider.NewDefaultDepProvider().GetResourceFactory()).NewResMapFromBytes(resources.Bytes())
	if err != nil {
		return nil, fmt.Errorf("kustomize patches: %w", err)
	}
	k := types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{"resources.yaml"},
	}
	for i, p := range patches {
		sel, err := p.selector()
		if err != nil {
			return nil, fmt.Errorf("kustomize.patches[%d]: %w", i, err)
		}
		matched, err := m.Select(sel)
		if err != nil {
			return nil, fmt.Errorf("kustomize.patches[%d]: target: %w", i, err)
		}
		if len(matched) == 0 {
			return nil, fmt.Errorf("kustomize.patches[%d] (%s): selects no object the chart rendered", i, describeSelector(sel))
		}
		kp := types.Patch{Patch: p.Patch}
		if p.Target != nil {
			kp.Target = &sel
		}
		k.Patches = append(k.Patches, kp)
	}
	kdata, err := yaml.Marshal(k)
	if err != nil {
		return nil, err
	}
	fsys := filesys.MakeFsInMemory()
	for name, data := range map[string][]byte{"resources.yaml": resources.Bytes(), "kustomization.yaml": kdata} {
		if err := fsys.WriteFile(patchDir+"/"+name, data); err != nil {
			return nil, err
		}
	}
	out, err := r.kustomize(ctx, fsys, patchDir)
	if err != nil {
		return nil, fmt.Errorf("kustomize patches: %w", err)
	}
	return out, nil
}

// selector is what p applies to: its Target, or the object its strategic-merge patch names.
func (p Patch) selector() (types.Selector, error) {
	if strings.TrimSpace(p.Patch) == "" {
		return types.Selector{}, fmt.Errorf("patch: required")
	}
	if t := p.Target; t != nil {
		return types.Selector{
			ResId: resid.ResId{
				Gvk:       resid.Gvk{Group: t.Group, Version: t.Version, Kind: t.Kind},
				Name:      t.Name,
				Namespace: t.Namespace,
			},
			LabelSelector: t.LabelSelector, AnnotationSelector: t.AnnotationSelector,
		}, nil
	}
	var obj unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(p.Patch), &obj.Object); err != nil || obj.GetKind() == "" || obj.GetName() == "" {
		return types.Selector{}, fmt.Errorf("without a target, patch must be a strategic-merge patch with apiVersion, kind and metadata.name")
	}
	gvk := obj.GroupVersionKind()
	return types.Selector{ResId: resid.ResId{
		Gvk:  resid.Gvk{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Name: obj.GetName(), Namespace: obj.GetNamespace(),
	}}, nil
}

// describeSelector names what a selector asks for, for errors.
func describeSelector(s types.Selector) string {
	var parts []string
	for _, kv := range [][2]string{
		{"group", s.Group}, {"version", s.Version}, {"kind", s.Kind}, {"name", s.Name}, {"namespace", s.Namespace},
		{"labelSelector", s.LabelSelector}, {"annotationSelector", s.AnnotationSelector},
	} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+"="+kv[1])
		}
	}
	return strings.Join(parts, " ")
}
