package promote

import (
	"errors"
	"slices"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
)

// TestEnvironments: the clusters of each environment are the registered, unrevoked ones the
// app targets, by their env label.
func TestEnvironments(t *testing.T) {
	env := func(e string) map[string]string { return map[string]string{EnvLabel: e} }
	list := []store.Cluster{
		{Name: "s1", Labels: env("staging")}, {Name: "s2", Labels: env("staging"), Revoked: true},
		{Name: "s3", Labels: env("staging")}, {Name: "p1", Labels: env("production")}, {Name: "d1", Labels: env("dev")},
	}
	src, dst := Environments(list, []string{"s1", "s2", "p1", "d1"}, "staging", "production")
	names := func(vs []apps.ClusterVars) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.Name)
		}
		return out
	}
	if !slices.Equal(names(src), []string{"s1"}) || !slices.Equal(names(dst), []string{"p1"}) {
		t.Errorf("Environments = %v, %v; want [s1], [p1]", names(src), names(dst))
	}
}

// TestOverlayPath: one path per environment, the env label's alone without clusters; clusters
// of one environment that render different paths refuse the promotion.
func TestOverlayPath(t *testing.T) {
	app := &apps.Application{Name: "api", Source: apps.Source{Path: "env/{{ .labels.env }}/{{ .labels.region }}"}}
	vars := func(region string) apps.ClusterVars {
		return apps.ClusterVars{Name: "c-" + region, Labels: map[string]string{EnvLabel: "production", "region": region}}
	}
	if got, err := overlayPath(app, "production", []apps.ClusterVars{vars("eu"), vars("eu")}); err != nil || got != "env/production/eu" {
		t.Errorf("one region: %q, %v", got, err)
	}
	_, err := overlayPath(app, "production", []apps.ClusterVars{vars("eu"), vars("us")})
	var plan *PlanError
	if !errors.As(err, &plan) {
		t.Errorf("two regions: %v, want a PlanError", err)
	}
	flat := &apps.Application{Name: "api", Source: apps.Source{Path: "env/{{ .labels.env }}/api"}}
	if got, err := overlayPath(flat, "staging", nil); err != nil || got != "env/staging/api" {
		t.Errorf("no clusters: %q, %v", got, err)
	}
}
