package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/strvals"
)

// ValueFile is the content of one values file, named (its path) for errors.
type ValueFile struct {
	Name string
	Data []byte
}

// Parameter is one helm.parameters entry, as `--set` (or `--set-string` with ForceString).
type Parameter struct {
	Name        string
	Value       string
	ForceString bool
}

// Values are an app's values in the places Argo CD's helm block has them.
type Values struct {
	Files      []ValueFile
	Values     string         // a YAML document
	Object     map[string]any // valuesObject
	Parameters []Parameter
}

// MergeValues merges v in Helm's order, each over the ones before: the value files in order,
// the values string, valuesObject, then the parameters. The chart's own defaults go under all
// of them at render time. Errors name the file or parameter.
func MergeValues(v Values) (map[string]any, error) {
	out := map[string]any{}
	for _, f := range v.Files {
		vals, err := common.ReadValues(f.Data)
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w", f.Name, err)
		}
		out = loader.MergeMaps(out, vals)
	}
	if strings.TrimSpace(v.Values) != "" {
		vals, err := common.ReadValues([]byte(v.Values))
		if err != nil {
			return nil, fmt.Errorf("helm.values: %w", err)
		}
		out = loader.MergeMaps(out, vals)
	}
	if v.Object != nil {
		out = loader.MergeMaps(out, v.Object)
	}
	for i, p := range v.Parameters {
		set := p.Name + "=" + escapeCommas(p.Value)
		parse := strvals.ParseInto
		if p.ForceString {
			parse = strvals.ParseIntoString
		}
		if err := parse(set, out); err != nil {
			return nil, fmt.Errorf("helm.parameters[%d] %q: %w", i, p.Name, err)
		}
	}
	return out, nil
}

// unescapedComma is a comma without a backslash before it: --set would split the value there.
var unescapedComma = regexp.MustCompile(`([^\\]),`)

// escapeCommas makes a parameter's value one value, as Argo CD passes it to --set.
func escapeCommas(s string) string {
	return unescapedComma.ReplaceAllString(s, `$1\,`)
}

// ValuesDigest is "sha256:<hex>" of the values' JSON (keys sorted): equal values, equal digest.
func ValuesDigest(v map[string]any) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("values: %w", err)
	}
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Digest is "sha256:<hex>" of the capabilities, the API versions in any order.
func (c Capabilities) Digest() string {
	versions := slices.Clone(c.APIVersions)
	slices.Sort(versions)
	sum := sha256.Sum256([]byte(c.KubeVersion + "\n" + strings.Join(versions, "\n")))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ChartCacheKey is the render cache's key of a chart render: the same chart, values,
// capabilities, release name and namespace render the same.
func ChartCacheKey(chartDigest, valuesDigest string, rel Release) string {
	return fmt.Sprintf("chart:%s|values:%s|caps:%s|release:%s|ns:%s|skipCrds:%t",
		chartDigest, valuesDigest, rel.Capabilities.Digest(), rel.Name, rel.Namespace, rel.SkipCRDs)
}

// FilesDigest is "sha256:<hex>" over files by path (a chart directory read from Git).
func FilesDigest(files map[string][]byte) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(files[p]))
		h.Write(files[p])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}
