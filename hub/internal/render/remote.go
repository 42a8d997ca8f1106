package render

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// ErrRemote is wrapped by the errors of kustomizations that refer to anything outside the
// repository: kustomize would clone remote bases and download remote files.
var ErrRemote = errors.New("remote bases and files are not allowed")

// referenceKeys are the fields, at any depth of a kustomization or of a builtin plugin's
// configuration, whose strings kustomize loads as files, directories or repositories.
var referenceKeys = map[string]bool{
	"resources": true, "bases": true, "components": true, "crds": true, "configurations": true,
	"generators": true, "transformers": true, "validators": true, "patchesStrategicMerge": true,
	"path": true, "files": true, "envs": true, "env": true, "argsFromFile": true,
	"valuesFile": true, "additionalValuesFiles": true, "repo": true, "chartHome": true,
}

// kustomizationKeys hold other kustomizations (directories) or, for the plugin keys, plugin
// configurations (files, inline YAML, or directories of them).
var (
	baseKeys   = []string{"resources", "bases", "components"}
	pluginKeys = []string{"generators", "transformers", "validators"}
)

// scpUser is the "user@" that starts kustomize's scp-like repository URLs.
var scpUser = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*@`)

// isRemote reports whether kustomize would take s for a URL or a repository.
func isRemote(s string) bool {
	s = strings.TrimSpace(s)
	if len(s) >= 5 && strings.EqualFold(s[:5], "git::") {
		s = s[5:]
	}
	lower := strings.ToLower(s)
	return strings.Contains(s, "://") || scpUser.MatchString(s) ||
		strings.HasPrefix(lower, "github.com/") || strings.HasPrefix(lower, "github.com:")
}

// checkKustomization refuses a kustomization in dir, or any it reaches, that refers to
// something remote.
func checkKustomization(fsys filesys.FileSystem, dir string) error {
	c := checker{fsys: fsys, seen: map[string]bool{}}
	return c.dir(dir, false)
}

type checker struct {
	fsys filesys.FileSystem
	seen map[string]bool
}

// dir checks the kustomization in dir; plugins says its resources are plugin configurations.
func (c *checker) dir(dir string, plugins bool) error {
	if c.seen[dir] {
		return nil
	}
	c.seen[dir] = true
	file := kustomizationFile(c.fsys, dir)
	if file == "" {
		return nil // kustomize reports it
	}
	data, err := c.fsys.ReadFile(file)
	if err != nil {
		return fmt.Errorf("kustomization %s: %w", file, err)
	}
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil // kustomize reports it, with more context
	}
	if err := scan(k, ""); err != nil {
		return fmt.Errorf("kustomization %s: %w", file, err)
	}
	for _, key := range append(baseKeys, pluginKeys...) {
		plugin := slices.Contains(pluginKeys, key) || plugins && key == "resources"
		for _, ref := range stringList(k[key]) {
			if err := c.ref(dir, key, ref, plugin); err != nil {
				return fmt.Errorf("kustomization %s: %w", file, err)
			}
		}
	}
	return nil
}

// ref follows one local reference: into the kustomization of a directory, or into the
// configurations of a plugin file or inline plugin.
func (c *checker) ref(dir, key, ref string, plugin bool) error {
	if strings.Contains(ref, "\n") {
		if plugin {
			return c.pluginConfigs(key, []byte(ref))
		}
		return nil
	}
	p := path.Join(dir, ref)
	switch {
	case c.fsys.IsDir(p):
		return c.dir(p, plugin)
	case plugin && c.fsys.Exists(p):
		data, err := c.fsys.ReadFile(p)
		if err != nil {
			return fmt.Errorf("%s %q: %w", key, ref, err)
		}
		if err := c.pluginConfigs(key, data); err != nil {
			return fmt.Errorf("%s %q: %w", key, ref, err)
		}
	}
	return nil
}

// pluginConfigs scans each document of a plugin configuration stream.
func (c *checker) pluginConfigs(key string, data []byte) error {
	objs, err := decodeAny(data)
	if err != nil {
		return nil // kustomize reports it
	}
	for _, o := range objs {
		if err := scan(o, key); err != nil {
			return err
		}
	}
	return nil
}

// scan walks v, whose field name is key, and fails on the first remote reference.
func scan(v any, key string) error {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			if err := scan(v[k], k); err != nil {
				return err
			}
		}
	case []any:
		for _, child := range v {
			if err := scan(child, key); err != nil {
				return err
			}
		}
	case string:
		if !referenceKeys[key] || strings.Contains(v, "\n") {
			return nil
		}
		_, value, _ := strings.Cut(v, "=") // files: [key=path]
		if isRemote(v) || isRemote(value) {
			return fmt.Errorf("%s %q: %w", key, v, ErrRemote)
		}
	}
	return nil
}

// decodeAny reads every document of a YAML stream into generic values.
func decodeAny(data []byte) ([]any, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs []any
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			return nil, err
		}
		docs = append(docs, v)
	}
}

func stringList(v any) []string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
