package apps

import (
	"strings"
	"testing"
)

const head = "apiVersion: flotilla.dev/v1alpha1\nkind: Application\nmetadata: {name: api}\n"

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // each a whole error message
	}{
		{"unknown field", head + "spec: {source: {repoURL: r, directory: {}}, destination: {clusters: [a]}}\n",
			[]string{`apps/api.yaml: Application "api": unknown field "spec.source.directory"`}},
		{"wrong type", head + "spec: {source: {repoURL: [r]}, destination: {clusters: [a]}}\n",
			[]string{`apps/api.yaml: Application "api": decode: cannot unmarshal array into Go struct field sourceDoc.spec.source.repoURL of type string`}},
		{"missing repo and destination", head + "spec: {}\n", []string{
			`apps/api.yaml: Application "api": spec.destination: clusters or clusterSelector: required`,
			`apps/api.yaml: Application "api": spec.source.repoURL: required`,
		}},
		{"both clusters and selector", head + "spec: {source: {repoURL: r}, destination: {clusters: [a], clusterSelector: {matchLabels: {a: b}}}}\n",
			[]string{`apps/api.yaml: Application "api": spec.destination: clusters and clusterSelector are exclusive, set one`}},
		{"bad selector", head + "spec: {source: {repoURL: r}, destination: {clusterSelector: {matchExpressions: [{key: a, operator: Near}]}}}\n",
			[]string{`apps/api.yaml: Application "api": spec.destination.clusterSelector: "Near" is not a valid label selector operator`}},
		{"bad name", "apiVersion: flotilla.dev/v1alpha1\nkind: Application\nmetadata: {name: Api_1}\nspec: {source: {repoURL: r}, destination: {clusters: [a]}}\n",
			[]string{`apps/api.yaml: Application "Api_1": metadata.name: "Api_1": a lowercase RFC 1123 label must consist of`}},
		{"no name", "apiVersion: flotilla.dev/v1alpha1\nkind: Application\nspec: {source: {repoURL: r}, destination: {clusters: [a]}}\n",
			[]string{`apps/api.yaml: document 1: metadata.name: required`}},
		{"bad namespace", head + "spec: {source: {repoURL: r}, destination: {clusters: [a], namespace: Kube_System}}\n",
			[]string{`apps/api.yaml: Application "api": spec.destination.namespace: "Kube_System": a lowercase RFC 1123 label`}},
		{"empty cluster name", head + "spec: {source: {repoURL: r}, destination: {clusters: ['']}}\n",
			[]string{`apps/api.yaml: Application "api": spec.destination.clusters[0]: empty cluster name`}},
		{"bad durations and factor", head + `spec:
  source: {repoURL: r}
  destination: {clusters: [a]}
  syncPolicy: {retry: {backoff: {duration: soon, factor: 0.5, maxDuration: -1m}}}
  health: {progressDeadline: 0s}
`, []string{
			`apps/api.yaml: Application "api": spec.syncPolicy.retry.backoff.duration: "soon" is not a duration such as "30s" or "5m"`,
			`apps/api.yaml: Application "api": spec.syncPolicy.retry.backoff.maxDuration: "-1m" is negative`,
			`apps/api.yaml: Application "api": spec.syncPolicy.retry.backoff.factor: 0.5 is less than 1`,
			`apps/api.yaml: Application "api": spec.health.progressDeadline: must be more than 0`,
		}},
		{"bad rollback and sync option", head + `spec:
  source: {repoURL: r}
  destination: {clusters: [a]}
  syncPolicy: {syncOptions: [CreateNamespace=true, Replace=true, PrunePropagationPolicy=sideways]}
  health: {rollback: always}
`, []string{
			`apps/api.yaml: Application "api": spec.syncPolicy.syncOptions[2]: "PrunePropagationPolicy=sideways" is not supported (want ` + SupportedSyncOptions + `)`,
			`apps/api.yaml: Application "api": spec.health.rollback: "always" must be auto or none`,
		}},
		{"bad ignoreDifferences", head + `spec:
  source: {repoURL: r}
  destination: {clusters: [a]}
  ignoreDifferences:
    - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}
    - {group: apps, kind: Deployment, jsonPointers: [/spec/ok, spec/replicas], jqPathExpressions: ['.spec | select(']}
`, []string{
			`apps/api.yaml: Application "api": spec.ignoreDifferences[1].jsonPointers[1]: "spec/replicas" is not a JSON pointer: it must start with "/"`,
			`apps/api.yaml: Application "api": spec.ignoreDifferences[1].jqPathExpressions[0]: ".spec | select(" does not compile: unexpected EOF`,
		}},
		{"argo bad ignoreDifferences", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: api}\n" +
			"spec: {source: {repoURL: r}, destination: {name: c}, ignoreDifferences: [{kind: Service, jqPathExpressions: ['.a[']}]}\n",
			[]string{`apps/api.yaml: Application "api": spec.ignoreDifferences[0].jqPathExpressions[0]: ".a[" does not compile: unexpected EOF`}},
		{"absolute path", head + "spec: {source: {repoURL: r, path: /etc}, destination: {clusters: [a]}}\n",
			[]string{`apps/api.yaml: Application "api": spec.source.path: "/etc" must be relative to the repository root`}},
		{"escaping path", head + "spec: {source: {repoURL: r, path: a/../../b}, destination: {clusters: [a]}}\n",
			[]string{`apps/api.yaml: Application "api": spec.source.path: "a/../../b" leaves the repository`}},
		{"bad template", head + "spec: {source: {repoURL: r, path: '{{ .labels.env'}, destination: {clusters: [a]}}\n",
			[]string{`apps/api.yaml: Application "api": spec.source.path: path "{{ .labels.env": template: path:1: unclosed action`}},
		{"unsupported version", "apiVersion: flotilla.dev/v2\nkind: Application\nmetadata: {name: api}\n",
			[]string{`apps/api.yaml: Application "api": apiVersion: "flotilla.dev/v2" is not supported, use "flotilla.dev/v1alpha1"`}},
		{"argo without destination", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: api}\nspec: {source: {repoURL: r}}\n",
			[]string{`apps/api.yaml: Application "api": spec.destination.name: required`}},
		{"argo bad duration", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: api}\n" +
			"spec: {source: {repoURL: r}, destination: {name: c}, syncPolicy: {retry: {backoff: {duration: 5x}}}}\n",
			[]string{`apps/api.yaml: Application "api": spec.syncPolicy.retry.backoff.duration: "5x" is not a duration such as "30s" or "5m"`}},
		{"yaml syntax", head + "spec: {source: [\n",
			[]string{`apps/api.yaml: document 1: yaml: line 4: did not find expected node content`}},
		{"other kinds and other Applications", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n---\n" +
			"apiVersion: app.k8s.io/v1beta1\nkind: Application\nmetadata: {name: y}\n---\nkind: 3\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apps, errs := Parse("apps/api.yaml", []byte(tt.doc))
			if len(apps) != 0 {
				t.Errorf("apps = %v, want none", apps)
			}
			if len(errs) != len(tt.want) {
				t.Fatalf("errors = %q, want %d: %q", errs, len(tt.want), tt.want)
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, err, tt.want[i])
				}
			}
		})
	}
}

func TestParseArgoAutomatedDisabled(t *testing.T) {
	doc := `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: api}
spec:
  project: default
  source: {repoURL: r, path: p}
  destination: {name: c}
  syncPolicy: {automated: {enabled: false, prune: true}}
`
	apps, errs := Parse("a.yaml", []byte(doc))
	if len(errs) > 0 || len(apps) != 1 {
		t.Fatalf("apps %v, errors %v", apps, errs)
	}
	if a := apps[0]; a.SyncPolicy.Automated || a.SyncPolicy.Prune || len(a.Warnings) > 0 {
		t.Errorf("sync policy %+v warnings %v: want manual, no warnings", a.SyncPolicy, a.Warnings)
	}
}
