package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/hubtest"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// hostile is text from Git and from agents that would run as script if a page did not escape it.
const hostile = `<script>alert("pwned")</script>`

const (
	rev1 = "1111111111111111111111111111111111111111"
	rev2 = "2222222222222222222222222222222222222222"
)

// dashboard is a real hub with two clusters (their test agents on the real stream), two apps,
// drift with a hostile object name and a hostile commit message, and the dashboard over the
// hub's Operator service, served by httptest.
type dashboard struct {
	hub *hubtest.Hub
	srv *httptest.Server
	c   *http.Client
}

func startDashboard(t *testing.T, pageSize int) *dashboard {
	t.Helper()
	h := hubtest.Start(t)
	op := h.Operator(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	labels := map[string]map[string]string{"prod-1": {"env": "production"}, "staging-1": {"env": "staging"}}
	tokens := map[string]string{}
	for _, c := range []string{"prod-1", "staging-1"} {
		resp, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: c, Labels: labels[c], TokenTtlSeconds: 600})
		if err != nil {
			t.Fatal(err)
		}
		tokens[c] = resp.JoinToken
	}
	h.Fleet.SetApps([]*fleet.AppInfo{
		{Name: "api", SourceFile: "apps/api.yaml", RepoURL: "https://git.example.com/api.git", TargetRevision: "main", Path: "deploy",
			Revision: rev1, Clusters: []string{"prod-1", "staging-1"}, RepoState: fleet.RepoCurrent, LastFetched: time.Now()},
		{Name: "worker", SourceFile: "apps/worker.yaml", RepoURL: "https://git.example.com/worker.git", TargetRevision: "main", Path: "deploy",
			Revision: rev1, Clusters: []string{"staging-1"}, RepoState: fleet.RepoCurrent, LastFetched: time.Now(),
			Warnings: []string{"spec.ignoreDifferences " + hostile}},
	})
	desire := func(cluster, app, rev, msg string) {
		h.Fleet.SetDesired(fleet.Desired{Cluster: cluster, App: app, Revision: rev, Bundle: hubtest.ConfigMapBundle(t, app, rev),
			Namespace: app, CommitTime: time.Now(), Author: "Mallory <m@example.com>", Message: msg})
	}
	desire("prod-1", "api", rev1, "api: 1.0.0")
	desire("staging-1", "api", rev1, "api: "+hostile)
	desire("staging-1", "worker", rev1, "worker: 1")
	h.ConnectAgent(t, "prod-1", h.Enrol(t, tokens["prod-1"], ""), map[string]hubtest.Report{})
	h.ConnectAgent(t, "staging-1", h.Enrol(t, tokens["staging-1"], ""), map[string]hubtest.Report{
		"api": {Health: "Healthy", Drift: []*flotillav1.DriftItem{
			{Object: &flotillav1.ObjectRef{Version: "v1", Kind: "Secret", Namespace: "api", Name: "creds" + hostile}, Type: "modified",
				Diff: `data.password: "<masked, changed>"`},
		}, Resources: []*flotillav1.ResourceStatus{
			{Object: &flotillav1.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "api", Name: "settings" + hostile}, Health: "Healthy"},
			{Object: &flotillav1.ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "api", Name: "api"}, Health: "Progressing",
				Message: "1 of 2 replicas updated " + hostile},
		}, Events: []*flotillav1.ObjectEvent{
			{Object: &flotillav1.ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "api", Name: "api"}, Type: "Warning",
				Reason: "FailedCreate", Message: "pods are forbidden " + hostile, Count: 4, LastSeenUnixMs: time.Now().UnixMilli()},
		}},
		"worker": {Health: "Degraded", Message: "Deployment worker: 0 of 2 available " + hostile},
	})
	applied := func(health string) func(fleet.Report) bool {
		return func(r fleet.Report) bool { return r.AppliedRevision == rev1 && r.Health == health }
	}
	h.WaitReport(t, "prod-1", "api", applied("Healthy"))
	h.WaitReport(t, "staging-1", "api", applied("Healthy"))
	h.WaitReport(t, "staging-1", "worker", applied("Degraded"))
	h.WaitHistory(t, "api", "staging-1", 1)

	return serveDashboard(t, h, op, pageSize)
}

// serveDashboard serves the dashboard over b (the hub h's Operator service) with httptest,
// its live updates running, for a client with a cookie jar (a browser's session).
func serveDashboard(t *testing.T, h *hubtest.Hub, b Backend, pageSize int) *dashboard {
	t.Helper()
	ui, err := New(Config{Backend: b, PageSize: pageSize, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ui.Run(runCtx) }()
	srv := httptest.NewServer(ui)
	t.Cleanup(func() {
		srv.Close()
		stop()
		if err := <-done; err != nil {
			t.Errorf("live updates: %v", err)
		}
	})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &dashboard{hub: h, srv: srv, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (d *dashboard) get(t *testing.T, path string, want int) string {
	t.Helper()
	resp, err := d.c.Get(d.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d\n%s", path, resp.StatusCode, want, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
	}
	return string(body)
}

func (d *dashboard) post(t *testing.T, path string, form url.Values, want int) string {
	t.Helper()
	resp, err := d.c.PostForm(d.srv.URL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %d, want %d\n%s", path, resp.StatusCode, want, body)
	}
	return string(body)
}

// noScript fails when the page holds any script element other than the embedded live.js, or
// the hostile text unescaped.
func noScript(t *testing.T, page, body string) {
	t.Helper()
	if strings.Contains(body, hostile) || strings.Contains(body, "<script>") {
		t.Errorf("%s: hostile text rendered as markup", page)
	}
	for _, m := range regexp.MustCompile(`<script[^>]*>`).FindAllString(body, -1) {
		if m != `<script src="/assets/live.js" defer>` {
			t.Errorf("%s: script element %s", page, m)
		}
	}
	if regexp.MustCompile(`\son[a-z]+=`).MatchString(body) {
		t.Errorf("%s: an inline event handler", page)
	}
}

func TestPages(t *testing.T) {
	d := startDashboard(t, 50)
	escaped := `&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;`

	fleetPage := d.get(t, "/", http.StatusOK)
	noScript(t, "fleet", fleetPage)
	for _, want := range []string{"prod-1", "staging-1", `href="/apps/api"`, `href="/apps/worker"`, "Synced", "Healthy", "Degraded", "drift 1",
		`data-count="Clusters">2<`, `data-count="Cells">3<`, `data-count="Degraded">1<`, `data-count="Drifted">1<`} {
		if !strings.Contains(fleetPage, want) {
			t.Errorf("fleet page lacks %q", want)
		}
	}

	drifted := d.get(t, "/?state=drifted", http.StatusOK)
	if strings.Contains(drifted, ">prod-1<") || !strings.Contains(drifted, ">staging-1<") {
		t.Errorf("state=drifted: want staging-1 alone")
	}
	prod := d.get(t, "/?selector=env%3Dproduction", http.StatusOK)
	if strings.Contains(prod, ">staging-1<") || !strings.Contains(prod, ">prod-1<") {
		t.Errorf("selector env=production: want prod-1 alone")
	}
	if byRev := d.get(t, "/?revision=2222", http.StatusOK); !strings.Contains(byRev, "No cluster matches.") {
		t.Errorf("revision 2222: want no cluster")
	}
	if bad := d.get(t, "/?selector=%3D%3D%3D", http.StatusBadRequest); !strings.Contains(bad, "selector") {
		t.Errorf("a bad selector: %s", bad)
	}

	app := d.get(t, "/apps/worker", http.StatusOK)
	noScript(t, "app", app)
	for _, want := range []string{"https://git.example.com/worker.git", rev1, "apps/worker.yaml", "spec.ignoreDifferences " + escaped, "0 of 2 available " + escaped} {
		if !strings.Contains(app, want) {
			t.Errorf("app page lacks %q", want)
		}
	}
	d.get(t, "/apps/nope", http.StatusNotFound)

	cluster := d.get(t, "/clusters/staging-1", http.StatusOK)
	noScript(t, "cluster", cluster)
	for _, want := range []string{"env=staging", "v1.4.2", "Connected", `href="/apps/api"`, `href="/apps/worker"`, "/confirm/revoke?cluster=staging-1"} {
		if !strings.Contains(cluster, want) {
			t.Errorf("cluster page lacks %q", want)
		}
	}
	d.get(t, "/clusters/nope", http.StatusNotFound)

	onCluster := d.get(t, "/clusters/staging-1/apps/api", http.StatusOK)
	noScript(t, "app on cluster", onCluster)
	for _, want := range []string{"Secret", "api/creds" + escaped, "modified", `data.password: &#34;&lt;masked, changed&gt;&#34;`, "api: " + escaped, "Mallory",
		"api/settings" + escaped, "Deployment.apps", `<td class="health-Progressing">Progressing</td>`, "1 of 2 replicas updated " + escaped,
		`<td class="warn">FailedCreate</td><td>Deployment.apps api/api</td><td class="msg">pods are forbidden ` + escaped + `</td><td>4</td>`} {
		if !strings.Contains(onCluster, want) {
			t.Errorf("app-on-cluster page lacks %q", want)
		}
	}
	// The events are the page's (resources asked), not `flotilla status`'s.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	op := d.hub.Operator(t)
	for _, resources := range []bool{false, true} {
		st, err := op.Status(ctx, &flotillav1.StatusRequest{Cluster: "staging-1", App: "api", Resources: resources})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(st.Items[0].Events); n != map[bool]int{false: 0, true: 1}[resources] {
			t.Errorf("Status with resources=%v: %d events", resources, n)
		}
	}
}

// csrfOf reads the CSRF token of the confirmation page at path.
func (d *dashboard) csrfOf(t *testing.T, path string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(d.get(t, path, http.StatusOK))
	if m == nil {
		t.Fatalf("%s: no CSRF token", path)
	}
	return m[1]
}

func TestActionsNeedTheSessionsToken(t *testing.T) {
	d := startDashboard(t, 50)
	form := url.Values{"app": {"api"}, "cluster": {"prod-1"}}
	d.post(t, "/actions/sync", form, http.StatusForbidden)
	form.Set("csrf", "forged")
	d.post(t, "/actions/sync", form, http.StatusForbidden)

	form.Set("csrf", d.csrfOf(t, "/confirm/sync?app=api&cluster=prod-1"))
	other := &dashboard{srv: d.srv, c: &http.Client{Timeout: 30 * time.Second}} // another browser: no session cookie
	other.post(t, "/actions/sync", form, http.StatusForbidden)

	done := d.post(t, "/actions/sync", form, http.StatusOK)
	if !strings.Contains(done, "sync of api sent to prod-1") {
		t.Errorf("sync: %s", done)
	}
	recs, err := d.hub.Store.ListAudit(10)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range recs {
		found = found || (r.Action == "sync" && r.Target == "api" && strings.Contains(r.Detail, "prod-1"))
	}
	if !found {
		t.Errorf("no audit record of the sync: %+v", recs)
	}

	pin := url.Values{"app": {"api"}, "cluster": {"prod-1"}, "revision": {rev1}, "csrf": {form.Get("csrf")}}
	if out := d.post(t, "/actions/pin", pin, http.StatusOK); !strings.Contains(out, "pinned to "+rev1+" on prod-1") {
		t.Errorf("pin: %s", out)
	}
	revoke := url.Values{"cluster": {"prod-1"}, "name": {"prod-2"}, "csrf": {form.Get("csrf")}}
	d.post(t, "/actions/revoke", revoke, http.StatusBadRequest)
}

func TestPagination(t *testing.T) {
	d := startDashboard(t, 1)
	first := d.get(t, "/?app=api", http.StatusOK)
	if !strings.Contains(first, ">prod-1<") || strings.Contains(first, ">staging-1<") || !strings.Contains(first, `href="/?app=api&amp;page=2"`) {
		t.Errorf("page 1 of 2 with app=api:\n%s", first)
	}
	if second := d.get(t, "/?app=api&page=2", http.StatusOK); !strings.Contains(second, ">staging-1<") || !strings.Contains(second, "page 2 of 2") {
		t.Errorf("page 2 of 2 with app=api")
	}
	// The App page pages its clusters too, and listens to the page it shows.
	app := d.get(t, "/apps/api", http.StatusOK)
	if !strings.Contains(app, `data-events="/events?app=api&amp;rollout=1"`) || !strings.Contains(app, ">prod-1<") || strings.Contains(app, ">staging-1<") ||
		!strings.Contains(app, `href="/apps/api?page=2"`) || !strings.Contains(app, "2 clusters: prod-1, staging-1") {
		t.Errorf("the app page's first page:\n%s", app)
	}
	app2 := d.get(t, "/apps/api?page=2", http.StatusOK)
	if !strings.Contains(app2, `data-events="/events?app=api&amp;page=2&amp;rollout=1"`) || !strings.Contains(app2, ">staging-1<") || strings.Contains(app2, ">prod-1<") {
		t.Errorf("the app page's second page:\n%s", app2)
	}
	select {
	case b := <-d.listen(t, "app=api&page=2"):
		if len(b.Cells) != 1 || b.Cells[0].Key != cellKey("staging-1", "api") || b.Counts == nil || b.Counts.Cells != 2 {
			t.Errorf("the app page's first event: %+v, want staging-1's cell and the counts of both", b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no event in 30s")
	}
}

// listen opens the event stream of a view (its query) until the test ends, and hands over
// each event.
func (d *dashboard) listen(t *testing.T, query string) <-chan batch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.srv.URL+"/events?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := d.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		resp.Body.Close()
	})
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := make(chan batch, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var b batch
				if json.Unmarshal([]byte(data), &b) == nil {
					events <- b
				}
			}
		}
	}()
	return events
}

// TestLiveUpdates listens as the fleet page does and sees a cell change when an agent applies a
// new revision.
func TestLiveUpdates(t *testing.T) {
	d := startDashboard(t, 50)
	events := d.listen(t, "app=api")
	seen := map[string]cell{}
	next := func() batch {
		select {
		case b, ok := <-events:
			if !ok {
				t.Fatal("the event stream ended")
			}
			for _, c := range b.Cells {
				seen[c.Key] = c
			}
			return b
		case <-time.After(30 * time.Second):
			t.Fatal("no event in 30s")
		}
		return batch{}
	}
	first := next()
	if first.Counts == nil || first.Counts.Cells != 2 || len(first.Cells) != 2 {
		t.Fatalf("first event: %+v", first)
	}
	for _, c := range first.Cells {
		if c.Rev != short(rev1) {
			t.Errorf("first event: %+v", c)
		}
	}
	d.hub.Fleet.SetDesired(fleet.Desired{Cluster: "prod-1", App: "api", Revision: rev2, Bundle: hubtest.ConfigMapBundle(t, "api", rev2),
		Namespace: "api", CommitTime: time.Now(), Author: "Ada", Message: "api: 2.0.0"})
	testwait.Until(t, 30*time.Second, "prod-1's api cell at rev2", func() bool {
		b := next()
		for _, c := range b.Cells {
			if c.Key == cellKey("staging-1", "api") {
				t.Errorf("staging-1's cell sent again though unchanged: %+v", c)
			}
		}
		return seen[cellKey("prod-1", "api")].Rev == short(rev2)
	})
}
