// Package syncoptions reads the per-object sync options of Argo CD's annotations (and
// Flotilla's): which the agent honours (agent/internal/apply) and which it does not, which the
// hub names in `flotilla apps`.
package syncoptions

import "strings"

// Annotations holding per-object options.
const (
	// Argo is Argo CD's sync options annotation, comma separated ("Prune=false,Replace=true").
	Argo = "argocd.argoproj.io/sync-options"
	// Flotilla holds the same options under Flotilla's name.
	Flotilla = "flotilla.dev/sync-options"
	// ArgoCompare holds Argo CD's compare options; IgnoreExtraneous is the one honoured.
	ArgoCompare = "argocd.argoproj.io/compare-options"
)

// known are the per-object sync options honoured, with the value each takes.
var known = map[string]string{
	"prune": "false", "delete": "false", "force": "true", "replace": "true", "serversideapply": "true",
	"validate": "false", "skipdryrunonmissingresource": "true",
}

// Value returns the value the sync options annotations in ann (Flotilla's first, then Argo
// CD's) give opt, lower case, matched case-insensitively; "" when unset.
func Value(ann map[string]string, opt string) string {
	for _, key := range []string{Flotilla, Argo} {
		for _, kv := range strings.Split(ann[key], ",") {
			k, v, _ := strings.Cut(strings.ReplaceAll(kv, " ", ""), "=")
			if strings.EqualFold(k, opt) {
				return strings.ToLower(v)
			}
		}
	}
	return ""
}

// IgnoreExtraneous reports whether the compare options in ann keep the object out of drift.
func IgnoreExtraneous(ann map[string]string) bool {
	for _, opt := range strings.Split(ann[ArgoCompare], ",") {
		if strings.TrimSpace(opt) == "IgnoreExtraneous" {
			return true
		}
	}
	return false
}

// Unknown lists the options in ann that are not honoured, as written.
func Unknown(ann map[string]string) []string {
	var out []string
	for _, key := range []string{Flotilla, Argo} {
		for _, kv := range strings.Split(ann[key], ",") {
			kv = strings.ReplaceAll(kv, " ", "")
			if kv == "" {
				continue
			}
			k, v, _ := strings.Cut(kv, "=")
			if want, ok := known[strings.ToLower(k)]; !ok || !strings.EqualFold(v, want) {
				out = append(out, kv)
			}
		}
	}
	for _, opt := range strings.Split(ann[ArgoCompare], ",") {
		if opt = strings.TrimSpace(opt); opt != "" && opt != "IgnoreExtraneous" {
			out = append(out, opt)
		}
	}
	return out
}
