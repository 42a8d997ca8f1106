package apps

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// summary is the comparable part of an Application.
type summary struct {
	File, Repo, Rev, Path string
	Clusters              []string
	Selector, Namespace   string
	Sync                  SyncPolicy
	Health                HealthPolicy
	Warnings              []string
	Ignore                []ignore.Rule
}

func summarize(a *Application) summary {
	s := summary{
		File: a.SourceFile, Repo: a.Source.RepoURL, Rev: a.Source.TargetRevision, Path: a.Source.Path,
		Clusters: a.Destination.Clusters, Namespace: a.Destination.Namespace,
		Sync: a.SyncPolicy, Health: a.Health, Warnings: a.Warnings, Ignore: a.IgnoreDifferences,
	}
	if a.Destination.Selector != nil {
		s.Selector = "selector(" + a.Destination.Selector.String() + ")"
	}
	return s
}

func TestLoadDir(t *testing.T) {
	dir := filepath.Join("testdata", "apps")
	apps, errs := LoadDir(dir)
	file := func(name string) string { return filepath.Join(dir, name) }
	defaultHealth := HealthPolicy{ProgressDeadline: 5 * time.Minute}
	want := map[string]summary{
		"api": {
			File: file("api.yaml"), Repo: "https://git.example.com/platform/deploy.git", Rev: "main",
			Path: "environments/{{ .labels.env }}/api", Selector: "selector(env=production,region in (eu,us))", Namespace: "api",
			Sync: SyncPolicy{Automated: true, Prune: true, SelfHeal: true, CreateNamespace: true, PruneLast: true, PreserveResourcesOnDeletion: true, Force: true,
				Retry: Retry{Limit: 5, Duration: 5 * time.Second, Factor: 2, MaxDuration: 3 * time.Minute}},
			Health: HealthPolicy{ProgressDeadline: 10 * time.Minute, AutoRollback: true},
		},
		"web": {
			File: file("web.yml"), Repo: "https://git.example.com/platform/deploy.git", Rev: "HEAD",
			Path: "web/overlays/{{ .name }}", Clusters: []string{"prod-eu-1", "prod-us-1"}, Health: defaultHealth,
		},
		"worker": {
			File: file("web.yml"), Repo: "https://git.example.com/platform/deploy.git", Rev: "HEAD", Path: "worker",
			Selector: "selector()", Health: defaultHealth,
			Sync: SyncPolicy{Retry: Retry{Limit: 2, Duration: 5 * time.Second, Factor: 2, MaxDuration: 3 * time.Minute}},
		},
		"jobs": {
			File: file("jobs.json"), Repo: "https://git.example.com/jobs.git", Rev: "v1.2.0", Path: ".",
			Clusters: []string{"batch-1"}, Namespace: "jobs", Health: defaultHealth,
		},
		"guestbook": {
			File: file("argo/guestbook.yaml"), Repo: "https://github.com/argoproj/argocd-example-apps.git", Rev: "HEAD",
			Path: "guestbook", Clusters: []string{"prod-eu-1"}, Namespace: "guestbook", Health: defaultHealth,
			Sync: SyncPolicy{Automated: true, Prune: true, CreateNamespace: true, PreserveResourcesOnDeletion: true,
				Force: true, SkipValidation: true, RespectIgnoreDifferences: true, PrunePropagation: PropagationOrphan,
				Retry: Retry{Limit: 3, Duration: 10 * time.Second, Factor: 3, MaxDuration: time.Minute}},
			// Every field and option Flotilla honours goes without a word; the others are named.
			Warnings: []string{
				"spec.source.kustomize.namePrefix is not supported and is ignored",
				`spec.project "team-a" is ignored: Flotilla has no projects`,
				"destination.server is not supported, use destination.name",
				`spec.syncPolicy.syncOptions "SkipDryRunOnMissingResource=true" is not supported and is ignored`,
			},
			Ignore: []ignore.Rule{{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}}},
		},
		"fine": {File: file("broken.yaml"), Repo: "https://git.example.com/fine.git", Rev: "HEAD", Path: "",
			Clusters: []string{"a"}, Health: defaultHealth},
	}
	got := map[string]summary{}
	var names []string
	for _, a := range apps {
		got[a.Name] = summarize(a)
		names = append(names, a.Name)
	}
	if wantNames := []string{"api", "fine", "guestbook", "jobs", "web", "worker"}; !reflect.DeepEqual(names, wantNames) {
		t.Errorf("names = %v, want %v", names, wantNames)
	}
	for name, w := range want {
		if !reflect.DeepEqual(got[name], w) {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got[name], w)
		}
	}
	wantErrs := []string{
		file("argo/guestbook.yaml") + `: Application "helm-only": spec.destination.name: required (destination.server is not supported)`,
		file("broken.yaml") + `: Application "broken": spec.source.repoURL: required`,
	}
	if len(errs) != len(wantErrs) {
		t.Fatalf("errors = %v, want %d", errs, len(wantErrs))
	}
	for i, err := range errs {
		if err.Error() != wantErrs[i] {
			t.Errorf("error %d = %q, want %q", i, err, wantErrs[i])
		}
	}
	if !errors.Is(errs[1], ErrRequired) {
		t.Errorf("error %v does not wrap ErrRequired", errs[1])
	}
}

func TestLoadDirDuplicates(t *testing.T) {
	apps, errs := LoadDir(filepath.Join("testdata", "dup"))
	if len(apps) != 1 || apps[0].Name != "other" {
		t.Errorf("apps = %v, want only other", apps)
	}
	want := filepath.Join("testdata", "dup", "b.yaml") + `: Application "api": metadata.name: duplicate: also defined in ` +
		filepath.Join("testdata", "dup", "a.yaml")
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("errors = %v, want [%s]", errs, want)
	}
}

func TestLoadFS(t *testing.T) {
	doc := func(name string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: ` + name + `}
spec: {source: {repoURL: https://x/y.git}, destination: {clusters: [c]}}
`)}
	}
	fsys := fstest.MapFS{
		"apps/a.yaml":       doc("a"),
		"apps/sub/b.yml":    doc("b"),
		"apps/sub/c.txt":    doc("c"),
		"apps/bad.yaml":     {Data: []byte("kind: [unclosed\n")},
		"apps/bad.json":     {Data: []byte(`{"kind": "Application",`)},
		"other/d.yaml":      doc("d"),
		"apps/.git/e.yaml":  doc("e"),
		"apps/empty.yaml":   {Data: nil},
		"apps/scalars.yaml": {Data: []byte("just a string\n---\n- a list\n")},
	}
	apps, errs := LoadFS(fsys, "apps")
	var names []string
	for _, a := range apps {
		names = append(names, a.Name+"@"+a.SourceFile)
	}
	if want := []string{"a@apps/a.yaml", "b@apps/sub/b.yml"}; !reflect.DeepEqual(names, want) {
		t.Errorf("apps = %v, want %v", names, want)
	}
	if len(errs) != 2 || !strings.HasPrefix(errs[0].Error(), "apps/bad.json: invalid JSON: ") ||
		!strings.HasPrefix(errs[1].Error(), "apps/bad.yaml: document 1: ") {
		t.Errorf("errors = %v, want one for apps/bad.json and one for apps/bad.yaml", errs)
	}
	if _, errs := LoadFS(fsys, "missing"); len(errs) != 1 || !strings.Contains(errs[0].Error(), "missing") {
		t.Errorf("missing root: errors = %v", errs)
	}
}
