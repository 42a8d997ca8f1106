package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/hubtest"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// rolloutApp waits for an approval, then gives the revision to the rest.
const rolloutApp = `apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: api}
spec:
  source: {repoURL: https://git.example.com/org/api.git}
  destination: {clusterSelector: {matchLabels: {team: api}}}
  rollout:
    steps:
    - approval: true
    - {}
    failurePolicy: halt
`

// hostileCluster is a registered cluster whose name would run as script unescaped.
const hostileCluster = "edge" + hostile

// startRollout is a real hub whose app api is rolling rev2 out (waiting for the approval of
// its first step) on canary-1 and hostileCluster, and whose app worker has no rollout, with
// the dashboard over the hub's Operator service. The rollout is driven through the hub's
// coordinator as its reconciler does (see hub/internal/cli's TestRolloutCommands).
func startRollout(t *testing.T) (*dashboard, flotillav1.OperatorClient) {
	t.Helper()
	h := hubtest.Start(t)
	op := h.Operator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "canary-1", Labels: map[string]string{"team": "api"}, TokenTtlSeconds: 600}); err != nil {
		t.Fatal(err)
	}
	// The Operator service refuses such a name; the store holds whatever it is given (a
	// registry replicated from elsewhere, say).
	if err := h.Store.PutCluster(store.Cluster{Name: hostileCluster, Labels: map[string]string{"team": "api"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	names := []string{"canary-1", hostileCluster}
	for _, c := range names {
		h.Fleet.Seen(c, "test", true)
	}
	list, errs := apps.Parse("apps/api.yaml", []byte(rolloutApp))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	app := list[0]
	render := func(commit string) {
		for _, c := range names {
			rev, _, held := h.Rollouts.Revision(app, fleet.ClusterVars{Name: c, Labels: map[string]string{"team": "api"}}, commit)
			switch {
			case held && rev == "":
				continue
			case !held:
				rev = commit
			}
			h.Fleet.SetDesired(fleet.Desired{Cluster: c, App: "api", Revision: rev, Bundle: hubtest.ConfigMapBundle(t, "api", rev)})
		}
	}
	for _, commit := range []string{rev1, rev2} {
		render(commit)
		h.Fleet.SetApps([]*fleet.AppInfo{
			{Name: "api", SourceFile: "apps/api.yaml", RepoURL: "https://git.example.com/org/api.git", TargetRevision: "main",
				Revision: commit, Destination: app.Destination, Rollout: app.Rollout, Clusters: names, RepoState: fleet.RepoCurrent, LastFetched: time.Now()},
			{Name: "worker", SourceFile: "apps/worker.yaml", RepoURL: "https://git.example.com/org/worker.git", TargetRevision: "main",
				Revision: rev1, Clusters: []string{"canary-1"}, RepoState: fleet.RepoCurrent, LastFetched: time.Now()},
		})
		h.Rollouts.AdvanceAll()
		render(commit)
	}
	return serveDashboard(t, h, op, 50), op
}

func rolloutNow(t *testing.T, op flotillav1.OperatorClient) *flotillav1.Rollout {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := op.RolloutStatus(ctx, &flotillav1.RolloutStatusRequest{App: "api"})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Rollout
}

// act confirms the action on the page at confirm and posts it with the session's CSRF token.
func (d *dashboard) act(t *testing.T, confirm string, form url.Values) string {
	t.Helper()
	action := strings.TrimPrefix(confirm[:strings.Index(confirm, "?")], "/confirm/")
	form.Set("csrf", d.csrfOf(t, confirm))
	return d.post(t, "/actions/"+action, form, http.StatusOK)
}

func contains(t *testing.T, page, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", page, w)
		}
	}
}

func TestRolloutPanel(t *testing.T) {
	d, op := startRollout(t)
	escaped := "edge&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;"
	r := rolloutNow(t, op)
	if r.State != "WaitingApproval" || r.Step != 1 {
		t.Fatalf("rollout %s at step %d, want WaitingApproval at step 1", r.State, r.Step)
	}

	page := d.get(t, "/apps/api", http.StatusOK)
	noScript(t, "app with a rollout", page)
	contains(t, "the rollout panel", page, `id="rollout"`, r.Id, rev2, "WaitingApproval at step 1 of 2, failurePolicy halt",
		"waiting for approval of step 1 since", "(flotilla rollout approve api)", "approval", "Active (needs approval)", "the rest",
		">canary-1<", ">"+escaped+"<", "Pending",
		`href="/confirm/rollout-approve?app=api"`, `href="/confirm/rollout-pause?app=api"`, `href="/confirm/rollout-abort?app=api"`)

	// No rollout: no panel, and no error.
	worker := d.get(t, "/apps/worker", http.StatusOK)
	if strings.Contains(worker, `id="rollout"`) || strings.Contains(worker, "rollout:") {
		t.Errorf("the app without a rollout has a rollout panel")
	}

	// Approve from the page: the confirmation, then the POST with the session's token.
	confirm := d.get(t, "/confirm/rollout-approve?app=api", http.StatusOK)
	contains(t, "the approval's confirmation", confirm, "Give the approval the active step of api&#39;s rollout waits for.", `action="/actions/rollout-approve"`)
	done := d.act(t, "/confirm/rollout-approve?app=api", url.Values{"app": {"api"}})
	contains(t, "the approval's answer", done, "api: rollout "+r.Id+" approved; Running at step 2 of 2", `href="/apps/api"`)
	if r := rolloutNow(t, op); r.State != "Running" || r.Step != 2 {
		t.Errorf("after the approval, the rollout is %s at step %d, want Running at step 2", r.State, r.Step)
	}
	page = d.get(t, "/apps/api", http.StatusOK)
	noScript(t, "app with a rollout at step 2", page)
	contains(t, "the rollout panel at step 2", page, "Running at step 2 of 2", "waiting for canary-1 Healthy (no report", escaped+" Healthy (no report",
		"Updating", `href="/confirm/rollout-skip?app=api&amp;cluster=canary-1"`,
		`href="/confirm/rollout-skip?app=api&amp;cluster=edge%3Cscript%3Ealert%28%22pwned%22%29%3C%2Fscript%3E"`)

	// Skip the hostile cluster: its name is escaped on the confirmation and the answer.
	skip := "/confirm/rollout-skip?" + url.Values{"app": {"api"}, "cluster": {hostileCluster}}.Encode()
	confirm = d.get(t, skip, http.StatusOK)
	noScript(t, "the skip's confirmation", confirm)
	contains(t, "the skip's confirmation", confirm, "without cluster "+escaped)
	done = d.act(t, skip, url.Values{"app": {"api"}, "cluster": {hostileCluster}})
	contains(t, "the skip's answer", done, "rollout "+r.Id+" skipped a cluster")

	// Pause, then the panel offers to resume; abort with the rollback box ticked.
	d.act(t, "/confirm/rollout-pause?app=api", url.Values{"app": {"api"}})
	page = d.get(t, "/apps/api", http.StatusOK)
	contains(t, "the paused rollout's panel", page, "Running (paused) at step 2 of 2", "paused by an operator since", `href="/confirm/rollout-resume?app=api"`)
	d.act(t, "/confirm/rollout-resume?app=api", url.Values{"app": {"api"}})
	confirm = d.get(t, "/confirm/rollout-abort?app=api", http.StatusOK)
	contains(t, "the abort's confirmation", confirm, `name="rollback" value="yes"`, "also roll back updated clusters")
	done = d.act(t, "/confirm/rollout-abort?app=api", url.Values{"app": {"api"}, "rollback": {"yes"}})
	contains(t, "the abort's answer", done, "rollout "+r.Id+" aborted")
	page = d.get(t, "/apps/api", http.StatusOK)
	if strings.Contains(page, "/confirm/rollout-approve") || strings.Contains(page, "/confirm/rollout-skip") {
		t.Errorf("the ended rollout's panel still offers actions")
	}

	// Each action is audited, under the operator's certificate.
	recs, err := d.hub.Store.ListAudit(100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range recs {
		got = append(got, a.Actor+" "+a.Action+" "+a.Target+" "+a.Detail)
	}
	for _, want := range []string{"admin rollout.approve api rollout=" + r.Id, "admin rollout.skip api rollout=" + r.Id + " revision=" + rev2 + " cluster=" + hostileCluster,
		"admin rollout.pause api", "admin rollout.resume api", "admin rollout.abort api rollout=" + r.Id + " revision=" + rev2 + " rollback=true"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("audit log lacks %q:\n%s", want, strings.Join(got, "\n"))
		}
	}

	// The dashboard of `flotilla hub --ui` reads the same panel through the in-process service.
	ended := rolloutNow(t, op)
	local := serveDashboard(t, d.hub, d.hub.Server.Local(), 50)
	contains(t, "the panel in-process", local.get(t, "/apps/api", http.StatusOK), `id="rollout"`, r.Id, ended.State)
	if worker := local.get(t, "/apps/worker", http.StatusOK); strings.Contains(worker, `id="rollout"`) {
		t.Errorf("the app without a rollout has a rollout panel in-process")
	}
}

// TestRolloutPanelLive: the App page's event stream carries its Rollout panel, rendered and
// escaped, first when it opens, then only when the rollout changed.
func TestRolloutPanelLive(t *testing.T) {
	d, op := startRollout(t)
	escaped := "edge&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;"
	events := d.listen(t, "app=api&rollout=1")
	latest := new(string) // the last panel the stream sent
	panel := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case b, open := <-events:
				if !open {
					t.Fatalf("the event stream ended before %s", what)
				}
				if b.Rollout == nil {
					continue
				}
				noScript(t, "the live rollout panel", *b.Rollout)
				if !strings.Contains(*b.Rollout, `id="rollout"`) || !strings.Contains(*b.Rollout, ">"+escaped+"<") {
					t.Errorf("the live rollout panel lacks the panel or the escaped cluster name:\n%s", *b.Rollout)
				}
				*latest = *b.Rollout
				if ok(*b.Rollout) {
					return
				}
			case <-deadline:
				t.Fatalf("no rollout panel with %s in 30s", what)
			}
		}
	}
	panel("the approval awaited", func(p string) bool { return strings.Contains(p, "WaitingApproval at step 1 of 2") })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := op.RolloutAction(ctx, &flotillav1.RolloutActionRequest{App: "api", Action: "approve"}); err != nil {
		t.Fatal(err)
	}
	panel("step 2 running", func(p string) bool {
		return strings.Contains(p, "Running at step 2 of 2") && !strings.Contains(p, "/confirm/rollout-approve")
	})
	// The stream sends a panel only when it changed (over several polls of 50 ms). The panel's
	// ages count seconds ("no report 1s"), so a panel may come again, but never the same one.
	last := *latest
	testwait.Stays(t, 500*time.Millisecond, "no panel sent again while the rollout does not change", func() bool {
		select {
		case b := <-events:
			if b.Rollout == nil {
				return true
			}
			same := *b.Rollout == last
			last = *b.Rollout
			return !same
		default:
			return true
		}
	})
}

// TestRolloutPanelNamesAnEdit: the panel of a rollout that carries an edit of the Application
// says so, in the words of `flotilla rollout status`; a new revision alone says nothing more.
func TestRolloutPanelNamesAnEdit(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	render := func(r *flotillav1.Rollout) string {
		var b strings.Builder
		if err := pages["app"].ExecuteTemplate(&b, "rollout", rolloutViewOf(r.App, &flotillav1.RolloutStatusResponse{Rollout: r}, nil)); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	base := &flotillav1.Rollout{App: "api", Id: "r-abc123-9f0e", Revision: "abc1234", FromRevision: "abc1234", State: "Running"}
	edit := proto.Clone(base).(*flotillav1.Rollout)
	edit.Edit = true
	contains(t, "the panel of an edit", render(edit), "(an Application edit)")
	both := proto.Clone(edit).(*flotillav1.Rollout)
	both.FromRevision = "0ff1ce0"
	contains(t, "the panel of a commit and an edit", render(both), "(a new revision and an Application edit)")
	if got := render(base); strings.Contains(got, "Application edit") {
		t.Errorf("the panel of a new revision names an edit:\n%s", got)
	}
}
