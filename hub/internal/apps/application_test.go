package apps

import (
	"strings"
	"testing"
)

func parseOne(t *testing.T, doc string) *Application {
	t.Helper()
	apps, errs := Parse("a.yaml", []byte(doc))
	if len(errs) > 0 || len(apps) != 1 {
		t.Fatalf("parse: apps %v, errors %v", apps, errs)
	}
	return apps[0]
}

func TestTargets(t *testing.T) {
	byName := parseOne(t, head+"spec: {source: {repoURL: r}, destination: {clusters: [eu-1, us-1]}}\n")
	bySelector := parseOne(t, head+`spec:
  source: {repoURL: r}
  destination:
    clusterSelector:
      matchLabels: {env: production}
      matchExpressions: [{key: region, operator: NotIn, values: [ap]}]
`)
	all := parseOne(t, head+"spec: {source: {repoURL: r}, destination: {clusterSelector: {}}}\n")
	tests := []struct {
		name string
		app  *Application
		c    ClusterVars
		want bool
	}{
		{"named", byName, ClusterVars{Name: "eu-1"}, true},
		{"not named", byName, ClusterVars{Name: "eu-2", Labels: map[string]string{"env": "production"}}, false},
		{"labels match", bySelector, ClusterVars{Name: "x", Labels: map[string]string{"env": "production", "region": "eu"}}, true},
		{"expression excludes", bySelector, ClusterVars{Name: "x", Labels: map[string]string{"env": "production", "region": "ap"}}, false},
		{"label differs", bySelector, ClusterVars{Name: "x", Labels: map[string]string{"env": "staging"}}, false},
		{"no labels", bySelector, ClusterVars{Name: "x"}, false},
		{"empty selector matches all", all, ClusterVars{Name: "x"}, true},
		{"zero destination", &Application{Name: "z"}, ClusterVars{Name: "x"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.app.Targets(tt.c); got != tt.want {
				t.Errorf("Targets(%+v) = %v, want %v", tt.c, got, tt.want)
			}
		})
	}
}

func TestPathFor(t *testing.T) {
	prod := ClusterVars{Name: "prod-eu-1", Labels: map[string]string{"env": "production", "region": "eu"}}
	tests := []struct {
		path    string
		c       ClusterVars
		want    string
		wantErr string
	}{
		{"environments/{{ .labels.env }}/api", prod, "environments/production/api", ""},
		{"clusters/{{ .name }}/./apps/", prod, "clusters/prod-eu-1/apps", ""},
		{"{{ if .labels.region }}regions/{{ .labels.region }}{{ else }}default{{ end }}", prod, "regions/eu", ""},
		{"plain", ClusterVars{Name: "x"}, "plain", ""},
		{"", ClusterVars{Name: "x"}, ".", ""},
		{"environments/{{ .labels.tier }}/api", prod, "",
			`application "api": path "environments/{{ .labels.tier }}/api": cluster "prod-eu-1" has no label "tier"`},
		{"environments/{{ .labels.env }}/api", ClusterVars{Name: "bare"}, "",
			`cluster "bare" has no label "env"`},
		{"{{ .cluster }}", prod, "", `map has no entry for key "cluster"`},
		{"{{ .labels.env }}/../../etc", prod, "", `"production/../../etc" leaves the repository`},
		{"/{{ .name }}", prod, "", `"/prod-eu-1" must be relative to the repository root`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			// Both a parsed application and one built in code (no parsed template yet).
			for _, a := range []*Application{
				parseOne(t, head+"spec: {source: {repoURL: r, path: '"+tt.path+"'}, destination: {clusters: [x]}}\n"),
				{Name: "api", Source: Source{Path: tt.path}},
			} {
				got, err := a.PathFor(tt.c)
				switch {
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("PathFor = %q, %v; want error containing %q", got, err, tt.wantErr)
				case tt.wantErr == "" && (err != nil || got != tt.want):
					t.Errorf("PathFor = %q, %v; want %q", got, err, tt.want)
				}
			}
		})
	}
}
