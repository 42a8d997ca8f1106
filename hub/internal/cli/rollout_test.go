package cli

import (
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/hubtest"
)

const rolloutApp = `apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: api}
spec:
  source: {repoURL: https://git.example.com/org/api.git}
  destination: {clusterSelector: {matchLabels: {team: api}}}
  rollout:
    steps:
    - clusters: {matchLabels: {ring: canary}}
      soak: 10m
    - clusters: {matchLabels: {ring: main}}
      maxUnavailable: 1
      soak: 5m
    - approval: true
    - {}
    failurePolicy: halt
`

const (
	rolloutRev1 = "1111111111111111111111111111111111111111"
	rolloutRev2 = "2222222222222222222222222222222222222222"
)

// TestRolloutCommands drives a rollout through the coordinator as the reconciler does (a
// first revision, then a second one) on clusters registered with `flotilla cluster add`, and
// pins what `flotilla rollout` prints and does at each turn.
func TestRolloutCommands(t *testing.T) {
	h := startHub(t)
	n := newNormaliser(h)
	clusters := map[string]string{"canary-1": "team=api,ring=canary", "main-1": "team=api,ring=main", "main-2": "team=api,ring=main", "edge-1": "team=api"}
	for _, c := range []string{"canary-1", "edge-1", "main-1", "main-2"} {
		if r := h.flotilla(t, "cluster", "add", c, "--labels", clusters[c]); r.err != nil {
			t.Fatalf("cluster add %s: %v", c, r.err)
		}
		h.Fleet.Seen(c, "test", true) // connected: not Stale, and not reporting either
	}
	list, errs := apps.Parse("apps/api.yaml", []byte(rolloutApp))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	app := list[0]
	// render is what the reconciler does with each cluster: ask which revision it gets.
	render := func(commit string) {
		for _, c := range []string{"canary-1", "edge-1", "main-1", "main-2"} {
			rev, _, held := h.Rollouts.Revision(app, fleet.ClusterVars{Name: c, Labels: labelMap(clusters[c])}, commit)
			switch {
			case held && rev == "":
				continue
			case !held:
				rev = commit
			}
			h.Fleet.SetDesired(fleet.Desired{Cluster: c, App: "api", Revision: rev, Bundle: hubtest.ConfigMapBundle(t, "api", rev)})
		}
	}
	// round renders, records the apps, lets the coordinator advance and renders again, as the
	// round it asks for does.
	round := func(commit string) {
		render(commit)
		h.Fleet.SetApps([]*fleet.AppInfo{{Name: "api", Destination: app.Destination, Revision: commit, Rollout: app.Rollout, Spec: app.Spec, Doc: app.Doc}})
		h.Rollouts.AdvanceAll()
		render(commit)
	}
	round(rolloutRev1)
	golden(t, "rollout_01_status_baseline", n, h.flotilla(t, "rollout", "status", "api"))
	round(rolloutRev2)

	golden(t, "rollout_02_status", n, h.flotilla(t, "rollout", "status", "api"))
	golden(t, "rollout_03_status_wide", n, h.flotilla(t, "rollout", "status", "api", "-o", "wide"))
	golden(t, "rollout_04_status_json", n, h.flotilla(t, "rollout", "status", "api", "-o", "json"))
	golden(t, "rollout_05_fleet_status_held", n, h.flotilla(t, "status", "--app", "api", "-o", "wide"))
	golden(t, "rollout_06_approve_not_waiting", n, h.flotilla(t, "rollout", "approve", "api"))
	golden(t, "rollout_07_pause", n, h.flotilla(t, "rollout", "pause", "api"))
	golden(t, "rollout_08_resume", n, h.flotilla(t, "rollout", "resume", "api"))
	golden(t, "rollout_09_skip_unknown", n, h.flotilla(t, "rollout", "skip", "api", "--cluster", "nope"))
	golden(t, "rollout_10_skip_without_cluster", n, h.flotilla(t, "rollout", "skip", "api"))
	// The canary never reports: skipping it moves the rollout to the main ring, one at a time.
	golden(t, "rollout_11_skip_canary", n, h.flotilla(t, "rollout", "skip", "api", "--cluster", "canary-1"))
	golden(t, "rollout_12_abort_rollback", n, h.flotilla(t, "rollout", "abort", "api", "--rollback"))
	golden(t, "rollout_13_status_rolled_back", n, h.flotilla(t, "rollout", "status", "api", "-o", "wide"))
	golden(t, "rollout_14_status_unknown_app", n, h.flotilla(t, "rollout", "status", "nope"))

	audit, err := h.Store.ListAudit(100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range audit {
		got = append(got, a.Action+" "+a.Target+" "+a.Detail)
	}
	for _, want := range []string{"rollout.pause api", "rollout.resume api", "rollout.skip api rollout=r-222222 revision=" + rolloutRev2 + " cluster=canary-1", "rollout.abort api rollout=r-222222 revision=" + rolloutRev2 + " rollback=true"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("audit log lacks %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
	for _, c := range []string{"canary-1", "main-1"} {
		if rev, _, held := h.Rollouts.Revision(app, fleet.ClusterVars{Name: c, Labels: labelMap(clusters[c])}, rolloutRev2); rev != rolloutRev1 || !held {
			t.Errorf("after abort --rollback, %s gets %s (held %v), want %s", c, rev, held, rolloutRev1)
		}
	}

	// An edit of the Application at the same commit is a rollout of its own, and says so.
	edited, errs := apps.Parse("apps/api.yaml", []byte(strings.Replace(rolloutApp, "api.git}", "api.git, path: deploy}", 1)))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	app = edited[0]
	round(rolloutRev2)
	golden(t, "rollout_15_status_edit", n, h.flotilla(t, "rollout", "status", "api"))
	golden(t, "rollout_16_fleet_status_held_edit", n, h.flotilla(t, "status", "--app", "api", "-o", "wide"))
}

func labelMap(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}
