package render

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// plain reads the manifests of one directory, in file name order.
func (r *Renderer) plain(fsys filesys.FileSystem, dir string) ([]*unstructured.Unstructured, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	slices.Sort(names)
	var objs []*unstructured.Unstructured
	for _, name := range names {
		file := path.Join(dir, name)
		switch path.Ext(name) {
		case ".yaml", ".yml", ".json":
		default:
			continue
		}
		if fsys.IsDir(file) {
			continue
		}
		data, err := fsys.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", name, err)
		}
		fileObjs, err := decode(data)
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", name, err)
		}
		objs = append(objs, fileObjs...)
		if len(objs) > r.opts.MaxObjects {
			return nil, fmt.Errorf("more than %d objects (at file %q)", r.opts.MaxObjects, name)
		}
	}
	return objs, nil
}

// decode reads a multi-document YAML (or JSON) stream, skipping empty documents and
// flattening List kinds. Documents are parsed as kustomize parses them (YAML 1.2: "n" and
// "on" are strings), so a directory renders the same with or without a kustomization.
func decode(data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		node, err := kyaml.Parse(string(doc))
		if errors.Is(err, io.EOF) {
			continue // empty document, or only comments
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if node.IsNil() {
			continue // an explicit null document
		}
		if node.YNode().Kind != kyaml.MappingNode {
			return nil, fmt.Errorf("document %d: not an object", n)
		}
		j, err := node.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		var obj map[string]any
		if err := utiljson.Unmarshal(j, &obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		items, err := flatten(u)
		if err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", n, describe(u), err)
		}
		for i, item := range items {
			if err := check(item); err != nil {
				if len(items) > 1 || item != u {
					return nil, fmt.Errorf("document %d (%s): item %d (%s): %w", n, describe(u), i+1, describe(item), err)
				}
				return nil, fmt.Errorf("document %d (%s): %w", n, describe(u), err)
			}
		}
		objs = append(objs, items...)
	}
}

// flatten returns the items of a List kind (List, ConfigMapList, ...), else u itself.
func flatten(u *unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	if !isList(u) {
		return []*unstructured.Unstructured{u}, nil
	}
	raw, _, _ := unstructured.NestedSlice(u.Object, "items")
	var items []*unstructured.Unstructured
	for i, it := range raw {
		m, ok := it.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d: not an object", i+1)
		}
		items = append(items, &unstructured.Unstructured{Object: m})
	}
	return items, nil
}

func isList(u *unstructured.Unstructured) bool {
	kind, _, _ := unstructured.NestedString(u.Object, "kind")
	_, hasItems := u.Object["items"].([]any)
	return hasItems && len(kind) >= 4 && kind[len(kind)-4:] == "List"
}
