package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

// stagingAPIOverlay is environments/staging/api/kustomization.yaml overriding the api image
// tag (staging runs ahead of production), with pods that never become ready when failing.
func stagingAPIOverlay(tag string, failing bool) string {
	s := fmt.Sprintf(`resources:
- ../../../base/api
images:
- name: registry.example/api
  newTag: %q
patches:
- target: {kind: Deployment, name: api}
  patch: |
    - op: replace
      path: /spec/replicas
      value: 1
`, tag)
	if failing {
		s += fmt.Sprintf(`    - op: add
      path: /spec/template/metadata/labels/%s
      value: "true"
`, strings.ReplaceAll(localkube.FailingPodLabel, "/", "~1"))
	}
	return s
}

// promoteOut runs `flotilla promote` and returns its output and error.
func promoteOut(e *env, args ...string) (string, error) {
	out, err := e.fleet.CLI(e.ctx, append([]string{"promote", "api", "--from", "staging", "--to", "production"}, args...)...)
	return string(out), err
}

// promoteGit runs git in the test's repository.
func promoteGit(t *testing.T, e *env, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", e.repo.Dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+e.repo.Dir,
		"GIT_AUTHOR_NAME=Flotilla Demo", "GIT_AUTHOR_EMAIL=demo@flotilla.dev",
		"GIT_COMMITTER_NAME=Flotilla Demo", "GIT_COMMITTER_EMAIL=demo@flotilla.dev")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// promoteRow finds an app's row on a cluster.
func promoteRow(items []localfleet.StatusItem, cluster, app string) *localfleet.StatusItem {
	for i := range items {
		if items[i].Cluster == cluster && items[i].App == app {
			return &items[i]
		}
	}
	return nil
}

// TestPromoteStagingToProduction: staging runs api at a newer tag than production. Promotion
// is refused while staging is unhealthy and while it is not soaked; then it pushes a branch
// whose production overlay carries staging's tag, and once that branch is merged production
// runs the new tag.
func TestPromoteStagingToProduction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	staging, production := e.clusters[0], e.clusters[1]
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}

	// Staging at 2.0.0 with pods that never become ready: not healthy, nothing to promote.
	bad, err := e.repo.Commit("api: 2.0.0 on staging (broken)", map[string]string{
		"environments/staging/api/kustomization.yaml": stagingAPIOverlay("2.0.0", true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 2*time.Minute, func(items []localfleet.StatusItem) bool {
		it := promoteRow(items, "staging", "api")
		return it != nil && it.AppliedRevision == bad && it.Health != "Healthy" && it.Health != "Unknown"
	}); err != nil {
		t.Fatal(err)
	}
	out, err := promoteOut(e, "--soak", "0")
	if err == nil || !strings.Contains(err.Error(), "env=staging is not healthy on all its clusters: staging is") {
		t.Fatalf("promote with staging unhealthy: %v\n%s", err, out)
	}
	t.Logf("refused while unhealthy: %v", err)

	// Staging healthy at 2.0.0.
	good, err := e.repo.Commit("api: 2.0.0 on staging", map[string]string{
		"environments/staging/api/kustomization.yaml": stagingAPIOverlay("2.0.0", false),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(good, 4)); err != nil {
		t.Fatal(err)
	}
	assertAPI(t, e.ctx, staging, 1, "registry.example/api:2.0.0")
	assertAPI(t, e.ctx, production, 5, "registry.example/api:1.0.0")

	out, err = promoteOut(e, "--soak", "1h")
	if err == nil || !strings.Contains(err.Error(), "is not soaked: staging Healthy for") {
		t.Fatalf("promote before the soak time: %v\n%s", err, out)
	}
	t.Logf("refused before the soak: %v", err)

	out, err = promoteOut(e, "--soak", "0", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Items []struct {
			SourceRevision string   `json:"sourceRevision"`
			VouchedBy      []string `json:"vouchedBy"`
			Commit         string   `json:"commit"`
			Branch         string   `json:"branch"`
			TargetPath     string   `json:"targetPath"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Items) != 1 {
		t.Fatalf("promote -o json: %v\n%s", err, out)
	}
	p := resp.Items[0]
	branch := "flotilla/promote-api-" + good[:7]
	if p.SourceRevision != good || strings.Join(p.VouchedBy, ",") != "staging" || p.Branch != branch ||
		p.TargetPath != "environments/production/api/kustomization.yaml" {
		t.Errorf("promotion %+v", p)
	}
	if got := promoteGit(t, e, "rev-parse", branch); got != p.Commit {
		t.Fatalf("branch %s at %s, want the promotion %s", branch, got, p.Commit)
	}
	if got := promoteGit(t, e, "rev-parse", branch+"^"); got != good {
		t.Errorf("the promotion's parent is %s, want main's %s", got, good)
	}
	overlay := promoteGit(t, e, "show", branch+":environments/production/api/kustomization.yaml")
	if !strings.Contains(overlay, "name: registry.example/api\n  newTag: \"2.0.0\"") || !strings.Contains(overlay, "value: 5") {
		t.Errorf("production overlay on %s:\n%s", branch, overlay)
	}
	if got := promoteGit(t, e, "diff", "--name-only", good, branch); got != "environments/production/api/kustomization.yaml" {
		t.Errorf("the promotion changes %q, want the production overlay only", got)
	}
	msg := promoteGit(t, e, "log", "-1", "--format=%B", branch)
	for _, want := range []string{"Source-Revision: " + good, "Vouched-By: staging"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit message lacks %q:\n%s", want, msg)
		}
	}
	hist, err := e.fleet.CLI(e.ctx, "history", "api", "--cluster", "production")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(hist), "Promoted from env=staging") {
		t.Errorf("history of api on production lacks the promotion:\n%s", hist)
	}
	// Nothing reaches production before the branch is merged.
	assertAPI(t, e.ctx, production, 5, "registry.example/api:1.0.0")

	promoteGit(t, e, "merge", "--ff-only", "--quiet", branch)
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(p.Commit, 4)); err != nil {
		t.Fatal(err)
	}
	assertAPI(t, e.ctx, production, 5, "registry.example/api:2.0.0")
	assertAPI(t, e.ctx, staging, 1, "registry.example/api:2.0.0")
}
