package cli

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/hubtest"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// ageRecipient is the age public key staging-1's agent sends when it joins (a fixed one, so
// that `flotilla clusters -o json` is the same every run).
const ageRecipient = "age1tsc3e8gz8s4m6gr409r0hxz7ztm63455skqscu6trl646t62tuqqqzrd30"

// workerRevision is the revision of the worker app's (unfetched) repository.
const workerRevision = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"

// testFleet is what populate put in a hub.
type testFleet struct {
	repo       string // the api app's bare repository
	rev1, rev2 string // its two commits on main: api 1.0.0, then 2.0.0 on staging
}

// populatedHub starts a hub, populates it, and returns the normaliser for its output.
func populatedHub(t *testing.T) (*testHub, *testFleet, *normaliser) {
	t.Helper()
	h := startHub(t)
	f := populate(t, h)
	n := newNormaliser(h)
	n.add(f.repo, "<repo>")
	return h, f, n
}

// populate gives h a fleet with something in every column: four clusters registered with
// `flotilla cluster add`, three of them enrolled with their join token and connected; five
// apps (one failing to load, one whose repository is stale); desired state, ACKs and status
// reports through the agent stream (Healthy, Degraded, drifted, a NACK), a second revision
// rolled out to staging, and a render failure.
func populate(t *testing.T, h *testHub) *testFleet {
	t.Helper()
	f := &testFleet{}
	f.repo, f.rev1, f.rev2 = apiRepo(t)
	labels := map[string]string{
		"staging-1": "env=staging,region=eu", "staging-2": "env=staging,region=us",
		"prod-1": "env=production,region=eu", "edge-1": "env=edge,region=ap",
	}
	tokens := map[string]string{}
	for _, c := range []string{"edge-1", "prod-1", "staging-1", "staging-2"} {
		r := h.flotilla(t, "cluster", "add", c, "--labels", labels[c])
		if r.err != nil {
			t.Fatalf("cluster add %s: %v", c, r.err)
		}
		tokens[c] = strings.TrimSpace(r.stdout)
	}

	now := time.Now()
	h.Fleet.SetApps([]*fleet.AppInfo{
		{Name: "api", SourceFile: "apps/api.yaml", RepoURL: f.repo, TargetRevision: "main", Path: "env/{{ .labels.env }}/api",
			Revision: f.rev2, Clusters: []string{"prod-1", "staging-1", "staging-2"}, RepoState: fleet.RepoCurrent, LastFetched: now},
		{Name: "broken", SourceFile: "apps/broken.yaml", Error: "apps/broken.yaml: spec.destination: give clusters or a selector"},
		{Name: "cert-manager", SourceFile: "apps/cert-manager.yaml", RepoURL: "https://charts.jetstack.io", TargetRevision: "1.16.*",
			Revision: "1.16.2", Chart: "cert-manager", ChartVersion: "1.16.2", RepoState: fleet.RepoCurrent, LastFetched: now,
			Error: "render: edge-9: chart cert-manager: template cert-manager/templates/secret.yaml: uses lookup, which reads a cluster; the hub renders charts without one"},
		{Name: "monitoring", SourceFile: "apps/monitoring.yaml", RepoURL: "https://git.example.com/org/platform.git", TargetRevision: "main",
			Path: "platform/monitoring", Revision: "9b1c04aa5e2f8d3c7a6b5e4d3c2b1a0f9e8d7c6b", Chart: "platform/monitoring", ChartVersion: "1.2.0",
			RepoState: fleet.RepoCurrent, LastFetched: now},
		{Name: "edge-proxy", SourceFile: "apps/edge-proxy.yaml", RepoURL: "https://git.example.com/org/edge.git", TargetRevision: "v3.1.0",
			Path: "deploy", Revision: "4e07408562bedb8b60ce05c1decfe3ad16b72230", Clusters: []string{"edge-1"}, RepoState: fleet.RepoCurrent, LastFetched: now},
		{Name: "legacy", SourceFile: "apps/legacy.yaml", RepoURL: "https://git.example.com/org/legacy.git", TargetRevision: "main",
			Path: "k8s", Revision: "2c26b46b68ffc68ff99b453c1d30413413422d70", RepoState: fleet.RepoStale, LastFetched: now.Add(-time.Hour),
			Warnings: []string{"spec.ignoreDifferences is not supported and is ignored"}},
		{Name: "worker", SourceFile: "apps/worker.yaml", RepoURL: "https://git.example.com/org/worker.git", TargetRevision: "HEAD",
			Path: "deploy/worker", Revision: workerRevision, Clusters: []string{"staging-1", "staging-2"}, RepoState: fleet.RepoCurrent, LastFetched: now},
	})
	commit := now.Add(-time.Minute)
	desire := func(cluster, app, rev, author, msg string) {
		h.Fleet.SetDesired(fleet.Desired{Cluster: cluster, App: app, Revision: rev, Bundle: hubtest.ConfigMapBundle(t, app, rev),
			Namespace: app, CommitTime: commit, Author: author, Message: msg})
	}
	for _, c := range []string{"prod-1", "staging-1", "staging-2"} {
		desire(c, "api", f.rev1, "Ada <ada@example.com>", "api: 1.0.0\n\nThe first release.")
	}
	for _, c := range []string{"staging-1", "staging-2"} {
		desire(c, "worker", workerRevision, "Grace <grace@example.com>", "worker: poll every 30s")
	}
	desire("edge-1", "edge-proxy", "4e07408562bedb8b60ce05c1decfe3ad16b72230", "Linus <linus@example.com>", "edge-proxy: v3.1.0")

	// One agent at a time, so that the history is in the same order every run.
	join := func(cluster, recipient string, reports map[string]hubtest.Report, wait map[string]func(fleet.Report) bool) {
		h.ConnectAgent(t, cluster, h.Enrol(t, tokens[cluster], recipient), reports)
		for app, ok := range wait {
			h.WaitReport(t, cluster, app, ok)
		}
	}
	applied := func(rev, health string) func(fleet.Report) bool {
		return func(r fleet.Report) bool { return r.AppliedRevision == rev && r.Health == health }
	}
	join("prod-1", "", map[string]hubtest.Report{}, map[string]func(fleet.Report) bool{"api": applied(f.rev1, "Healthy")})
	join("staging-1", ageRecipient, map[string]hubtest.Report{
		"worker": {Health: "Degraded", Message: "Deployment worker/worker: 0 of 2 replicas available: ImagePullBackOff"},
	}, map[string]func(fleet.Report) bool{"api": applied(f.rev1, "Healthy"), "worker": applied(workerRevision, "Degraded")})
	join("staging-2", "", map[string]hubtest.Report{
		"api": {Health: "Healthy", Drift: []*flotillav1.DriftItem{
			{Object: &flotillav1.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "api", Name: "api-settings"}, Type: "modified",
				Diff: `data.LOG_LEVEL: "debug" → "info"`},
			{Object: &flotillav1.ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "api", Name: "api"}, Type: "modified",
				Diff: "metadata.annotations.sidecar.istio.io/status: \"injected\" → <none>\nspec.replicas: 5 → 3", Contested: true},
			{Object: &flotillav1.ObjectRef{Version: "v1", Kind: "Service", Namespace: "api", Name: "api-metrics"}, Type: "missing"},
		}},
		"worker": {Nack: "apply Deployment worker/worker: admission webhook \"policy.example.com\" denied the request: image tag latest is not allowed"},
	}, map[string]func(fleet.Report) bool{"api": applied(f.rev1, "Healthy"), "worker": func(r fleet.Report) bool { return r.LastError != "" }})
	h.WaitHistory(t, "worker", "staging-2", 1)

	// The second revision: to staging; production's render of it fails.
	for _, c := range []string{"staging-1", "staging-2"} {
		desire(c, "api", f.rev2, "Ada <ada@example.com>", "api: 2.0.0 on staging")
		h.WaitReport(t, c, "api", applied(f.rev2, "Healthy"))
	}
	h.Fleet.SetRenderError("prod-1", "api", f.rev2, errors.New("env/production/api/kustomization.yaml: resource ../../../base/api: no such directory"))
	return f
}

// apiRepo makes a bare repository for the api app, with overlays for staging and production,
// and returns its path and the two commits of main: api 1.0.0 everywhere, then 2.0.0 on
// staging. Names and dates are fixed, so the commits are the same every run.
func apiRepo(t *testing.T) (repo, rev1, rev2 string) {
	t.Helper()
	base := t.TempDir()
	work, bare := filepath.Join(base, "work"), filepath.Join(base, "fleet.git")
	write := func(files map[string]string) {
		for p, c := range files {
			full := filepath.Join(work, p)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(map[string]string{
		"base/api/kustomization.yaml":           "resources: [deployment.yaml]\nimages:\n- name: registry.example/api\n  newTag: \"1.0.0\"\n",
		"base/api/deployment.yaml":              "kind: Deployment\n",
		"env/staging/api/kustomization.yaml":    "resources: [../../../base/api]\n",
		"env/production/api/kustomization.yaml": "# production\nresources: [../../../base/api]\n",
	})
	git(t, work, "init", "--quiet", "--initial-branch=main")
	git(t, work, "add", "--all")
	git(t, work, "commit", "--quiet", "-m", "api: 1.0.0")
	rev1 = git(t, work, "rev-parse", "HEAD")
	write(map[string]string{
		"env/staging/api/kustomization.yaml": "resources: [../../../base/api]\nimages:\n- name: registry.example/api\n  newTag: \"2.0.0\"\n",
	})
	git(t, work, "commit", "--quiet", "--all", "-m", "api: 2.0.0 on staging")
	rev2 = git(t, work, "rev-parse", "HEAD")
	git(t, base, "clone", "--quiet", "--bare", work, bare)
	return bare, rev1, rev2
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com",
		"GIT_AUTHOR_DATE=2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2026-01-02T03:04:05Z")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
