package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// suggestIgnore prints an ignoreDifferences snippet for the fields of the contested drift in
// items: the fields another actor keeps changing back (an HPA's replicas, an injected
// caBundle), as the agent last reported them. It measures nothing new.
func suggestIgnore(w io.Writer, app string, items []*flotillav1.AppClusterStatus) error {
	type key struct{ group, kind, namespace, name string }
	pointers := map[key][]string{}
	var keys []key
	var clusters []string
	for _, s := range items {
		for _, d := range s.Drift {
			if !d.Contested {
				continue
			}
			o := d.Object
			k := key{o.GetGroup(), o.GetKind(), o.GetNamespace(), o.GetName()}
			if _, seen := pointers[k]; !seen {
				keys = append(keys, k)
				pointers[k] = nil
			}
			for _, p := range diffPointers(d.Diff) {
				if !slices.Contains(pointers[k], p) {
					pointers[k] = append(pointers[k], p)
				}
			}
			if !slices.Contains(clusters, s.Cluster) {
				clusters = append(clusters, s.Cluster)
			}
		}
	}
	if len(keys) == 0 {
		fmt.Fprintf(w, "no contested drift: no field of %s is kept changed by another actor, nothing to ignore\n", app)
		return nil
	}
	slices.SortFunc(keys, func(a, b key) int {
		return strings.Compare(a.group+"/"+a.kind+"/"+a.namespace+"/"+a.name, b.group+"/"+b.kind+"/"+b.namespace+"/"+b.name)
	})
	var rules []ignore.Rule
	for _, k := range keys {
		ps := pointers[k]
		slices.Sort(ps)
		if len(ps) == 0 {
			continue // a drift without field lines (cut short): nothing to name
		}
		rules = append(rules, ignore.Rule{Group: k.group, Kind: k.kind, Namespace: k.namespace, Name: k.name, JSONPointers: ps})
	}
	slices.Sort(clusters)
	fmt.Fprintf(w, "# Fields another actor keeps changing back on %s (contested drift).\n", strings.Join(clusters, ", "))
	fmt.Fprintf(w, "# To stop calling them drift, add this to spec of Application %s\n", app)
	fmt.Fprintf(w, "# (with syncOptions RespectIgnoreDifferences=true a sync leaves them alone too):\n")
	var b strings.Builder
	b.WriteString("ignoreDifferences:\n")
	for _, r := range rules {
		lead := "- "
		field := func(name, value string) {
			if value != "" {
				fmt.Fprintf(&b, "%s%s: %s\n", lead, name, scalar(value))
				lead = "  "
			}
		}
		field("group", r.Group)
		field("kind", r.Kind)
		field("name", r.Name)
		field("namespace", r.Namespace)
		b.WriteString("  jsonPointers:\n")
		for _, p := range r.JSONPointers {
			b.WriteString("  - " + scalar(p) + "\n")
		}
	}
	_, err := io.WriteString(w, cleanLines(b.String()))
	return err
}

// scalar writes s as a YAML scalar, quoted when it must be.
func scalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// mapsOfKeys are the fields whose keys may hold dots ("sidecar.istio.io/status"): in a diff
// path, everything after one of them is a single key.
var mapsOfKeys = []string{"annotations", "labels", "matchLabels", "nodeSelector", "data", "stringData", "binaryData"}

// diffPointers reads the JSON pointers of the fields a drift's diff names: each line is
// "path: live → desired" with path dotted ("spec.template.spec.containers").
func diffPointers(diff string) []string {
	var out []string
	for _, line := range strings.Split(diff, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "-") || strings.HasPrefix(line, "+") || strings.HasPrefix(line, "…") {
			continue
		}
		path, _, ok := strings.Cut(line, ":")
		if !ok || path == "" {
			continue
		}
		var tokens []string
		rest := path
		for rest != "" {
			seg, tail, more := strings.Cut(rest, ".")
			tokens = append(tokens, seg)
			rest = tail
			if more && slices.Contains(mapsOfKeys, seg) {
				tokens = append(tokens, rest)
				break
			}
		}
		var b strings.Builder
		for _, t := range tokens {
			b.WriteString("/" + strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1"))
		}
		if !slices.Contains(out, b.String()) {
			out = append(out, b.String())
		}
	}
	return out
}
