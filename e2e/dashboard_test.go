package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// The dashboard end to end, in a real browser (Debian's headless chromium driven by chromedp):
// `flotilla dashboard` against the local fleet's hub, the pages as an operator sees them, live
// updates, a masked Secret diff, a sync from the page, a rollback, and hostile text from Git
// shown as text. Each page is saved as a screenshot (the directory is logged).

// hostileMessage is a commit message that would run script if a page did not escape it.
const hostileMessage = `worker: a secret <script>window.__pwned = 1</script>`

// TestDashboard walks the dashboard through one fleet's life.
func TestDashboard(t *testing.T) {
	t.Parallel()
	chromium := chromiumPath(t)
	e := newEnv(t, envOptions{pollInterval: time.Second})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	url := startDashboard(t, e)
	b := newBrowser(t, chromium)

	// The fleet: both clusters, both apps Synced and Healthy.
	b.open(t, url)
	for _, c := range []string{"staging", "production"} {
		for _, app := range []string{"api", "worker"} {
			b.waitCell(t, c, app, "Synced and Healthy", func(s cellState) bool { return s.Sync == "Synced" && s.Health == "Healthy" })
		}
	}
	b.screenshot(t, "fleet")

	// A Secret in worker, committed with a hostile message; without selfHeal, so that drift stays.
	gitCanary := fmt.Sprintf("git-canary-%d", time.Now().UnixNano())
	liveCanary := fmt.Sprintf("live-canary-%d", time.Now().UnixNano())
	e.setApps(t, appSpec{name: "worker", prune: true})
	rev := e.commitApplied(t, hostileMessage, "worker", map[string]string{
		"base/worker/secret.yaml": fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: worker-secret\ntype: Opaque\ndata:\n  TOKEN: %s\n",
			base64.StdEncoding.EncodeToString([]byte(gitCanary))),
		"base/worker/kustomization.yaml": workerKustomization("secret.yaml"),
	})
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, allAt(rev, 4)); err != nil {
		t.Fatal(err)
	}

	// A manual change on staging appears on the open fleet page.
	b.open(t, url)
	b.waitCell(t, "staging", "worker", "no drift", func(s cellState) bool { return s.Drift == "" })
	editSecret := func(value string) {
		t.Helper()
		patch := fmt.Sprintf(`{"data":{"TOKEN":%q}}`, base64.StdEncoding.EncodeToString([]byte(value)))
		if _, err := kubeClient(t, e.clusters[0]).CoreV1().Secrets("worker").Patch(e.ctx, "worker-secret", types.MergePatchType, []byte(patch),
			metav1.PatchOptions{FieldManager: manualManager}); err != nil {
			t.Fatal(err)
		}
	}
	edited := time.Now()
	editSecret(liveCanary)
	s := b.waitCell(t, "staging", "worker", "drift shown", func(s cellState) bool { return s.Drift == "drift 1" })
	t.Logf("drift: agent's report → cell changed in the browser: %s", e.sinceAgentLog(t, "staging", "drift detected", "worker", edited, s.updated()))
	b.screenshot(t, "fleet-drift")

	// The diff page: the Secret's change by key, no value; the hostile commit message as text.
	b.open(t, url+"clusters/staging/apps/worker")
	html := b.html(t)
	for _, want := range []string{"Secret", "worker/worker-secret", "data.TOKEN", "modified",
		`<td>Deployment.apps</td><td>worker/worker</td><td class="health-Healthy">Healthy</td>`} {
		if !strings.Contains(html, want) {
			t.Errorf("the diff page lacks %q", want)
		}
	}
	for _, canary := range []string{gitCanary, liveCanary} {
		for _, form := range []string{canary, base64.StdEncoding.EncodeToString([]byte(canary))} {
			if strings.Contains(html, form) {
				t.Errorf("the diff page shows a Secret value (%s)", form)
			}
		}
	}
	b.assertInert(t, "the diff page", hostileMessage)
	b.screenshot(t, "diff")

	// A sync from the page reaches the agent: it applies Git's Secret again, and the drift goes.
	b.click(t, `a[href^="/confirm/sync?"]`, `#confirm`)
	b.screenshot(t, "confirm-sync")
	b.click(t, `#confirm`, `#done`)
	if done := b.text(t, "#done"); !strings.Contains(done, "sync of worker sent to staging") {
		t.Errorf("after the sync: %q", done)
	}
	testwait.For(t, time.Minute, "Git's Secret value back on staging after the sync", func(ctx context.Context) (bool, error) {
		sec, err := kubeClient(t, e.clusters[0]).CoreV1().Secrets("worker").Get(ctx, "worker-secret", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return string(sec.Data["TOKEN"]) == gitCanary, nil
	})
	b.open(t, url)
	b.waitCell(t, "staging", "worker", "no drift after the sync", func(s cellState) bool { return s.Drift == "" })

	// Drift again, then self-heal switched on and the object changed once more: the cell shows
	// the drift, then clears when the agent heals it. (Switching selfHeal on alone does not
	// heal drift the agent already reported: it heals on the object's next change.)
	edited = time.Now()
	editSecret(liveCanary)
	s = b.waitCell(t, "staging", "worker", "drift shown again", func(s cellState) bool { return s.Drift == "drift 1" })
	t.Logf("drift (again): agent's report → cell changed in the browser: %s", e.sinceAgentLog(t, "staging", "drift detected", "worker", edited, s.updated()))
	e.setApps(t, appSpec{name: "worker", prune: true, selfHeal: true})
	healing := time.Now()
	editSecret(liveCanary + "-again")
	s = b.waitCell(t, "staging", "worker", "drift gone after self-heal", func(s cellState) bool { return s.Drift == "" })
	t.Logf("self-heal: agent's report → cell changed in the browser: %s", e.sinceAgentLog(t, "staging", "drift corrected", "worker", healing, s.updated()))

	// The app and cluster pages, with the hostile message in the history.
	b.open(t, url+"apps/worker")
	b.assertInert(t, "the app page", "")
	b.screenshot(t, "app")
	b.open(t, url+"clusters/staging")
	b.assertInert(t, "the cluster page", "")
	b.screenshot(t, "cluster")

	// A bad revision: Degraded, then rolled back by the agent.
	e.setApps(t, appSpec{name: "worker", prune: true, selfHeal: true},
		appSpec{name: "api", prune: true, selfHeal: true, health: "{progressDeadline: 10s, rollback: auto}"})
	e.commitGoodStagingAPI(t)
	b.open(t, url+"?app=api")
	bad, err := e.repo.Commit("api: 1.1.0 on staging (pods never ready)", map[string]string{
		"environments/staging/api/kustomization.yaml": stagingAPIOverlay("1.1.0", true),
	})
	if err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	s = b.waitCell(t, "staging", "api", "the bad revision applied", func(s cellState) bool { return s.Rev == bad[:7] })
	t.Logf("bad revision applied on the page %s after the commit: %s %s", time.Since(committed).Round(time.Millisecond), s.Sync, s.Health)
	s = b.waitCell(t, "staging", "api", "Degraded and rolled back", func(s cellState) bool {
		return s.Health == "Degraded" && strings.Contains(s.Flags, "rolled back from "+bad[:7])
	})
	t.Logf("bad revision Degraded and rolled back on the page %s after the commit (the agent reports both at once, at its progress deadline): %+v",
		time.Since(committed).Round(time.Millisecond), s)
	b.screenshot(t, "fleet-rolledback")
	b.open(t, url+"?state=RolledBack")
	b.waitCell(t, "staging", "api", "listed under state=RolledBack", func(s cellState) bool { return strings.Contains(s.Flags, "rolled back") })
	if html := b.html(t); strings.Contains(html, `data-key="production`) {
		t.Errorf("state=RolledBack lists production")
	}

	// The hub restarts: the open page says it does not answer, then carries on live.
	b.open(t, url+"?app=worker")
	e.fleet.Hub.Stop(10 * time.Second)
	b.waitBanner(t, true)
	if err := e.fleet.StartHub(e.ctx); err != nil {
		t.Fatal(err)
	}
	b.waitBanner(t, false)
	next := e.commitApplied(t, "worker: QUEUE changed", "worker", map[string]string{
		"base/worker/configmap.yaml": strings.Replace(localfleet.DemoManifests("1.0.0")["base/worker/configmap.yaml"], "QUEUE: jobs", "QUEUE: dashboard", 1),
	})
	b.waitCell(t, "production", "worker", "the new revision after the hub's restart", func(s cellState) bool { return s.Rev == next[:7] })
	b.screenshot(t, "fleet-after-hub-restart")

	// Events' summary: a StatefulSet whose pods name a ServiceAccount that does not exist; the
	// API server refuses its pods, kube-controller-manager records a Warning Event on it, and
	// the agent reports it on the app-on-cluster page.
	e.commitApplied(t, "worker: a database whose pods cannot be created", "worker", map[string]string{
		"base/worker/statefulset.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: worker-db
spec:
  serviceName: worker-db
  replicas: 1
  selector: {matchLabels: {app: worker-db}}
  template:
    metadata: {labels: {app: worker-db}}
    spec:
      serviceAccountName: no-such-account
      containers: [{name: db, image: example.com/db:1}]
`,
		"base/worker/kustomization.yaml": workerKustomization("secret.yaml", "statefulset.yaml"),
	})
	testwait.For(t, 2*time.Minute, "the StatefulSet's Warning Event on the app-on-cluster page", func(context.Context) (bool, error) {
		b.open(t, url+"clusters/staging/apps/worker")
		html := b.html(t)
		return strings.Contains(html, `<td class="warn">FailedCreate</td><td>StatefulSet.apps worker/worker-db</td>`) &&
			strings.Contains(html, "no-such-account"), nil
	})
	b.assertInert(t, "the app-on-cluster page with events", "")
	b.screenshot(t, "events")

	// The App page's Rollout panel updates itself: with the page open, worker gets a rollout
	// whose first step waits for an approval and a new commit; the panel appears, and once the
	// CLI approves, it moves on, without a reload.
	b.open(t, url+"apps/worker")
	b.evaluate(t, `(() => { document.body.setAttribute("data-opened", "1"); return "marked"; })()`)
	workerApp, err := os.ReadFile(filepath.Join(e.appsDir, "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	withRollout := strings.Replace(string(workerApp), "  syncPolicy:", "  rollout:\n    steps:\n    - {approval: true}\n    - {}\n  syncPolicy:", 1)
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"worker.yaml": withRollout}); err != nil {
		t.Fatal(err)
	}
	panel := func(what string, ok func(string) bool) {
		t.Helper()
		testwait.For(t, 2*time.Minute, "the open App page's Rollout panel: "+what, func(context.Context) (bool, error) {
			if b.evaluate(t, `document.body.getAttribute("data-opened") || "reloaded"`) != "1" {
				return false, fmt.Errorf("the App page was reloaded")
			}
			return ok(b.evaluate(t, `document.getElementById("rollout-panel").textContent`)), nil
		})
	}
	// The app's first rollout is its baseline, the revision it runs, Completed at once.
	panel("the baseline rollout", func(s string) bool { return strings.Contains(s, "Completed") })
	rolled, err := e.repo.Commit("worker: rolled out, step by step", map[string]string{
		"base/worker/configmap.yaml": strings.Replace(localfleet.DemoManifests("1.0.0")["base/worker/configmap.yaml"], "QUEUE: jobs", "QUEUE: rollout", 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	panel("waiting for the approval", func(s string) bool { return strings.Contains(s, rolled) && strings.Contains(s, "WaitingApproval") })
	b.screenshot(t, "app-rollout-waiting")
	if out, err := e.fleet.CLI(e.ctx, "rollout", "approve", "worker"); err != nil {
		t.Fatalf("flotilla rollout approve worker: %v: %s", err, out)
	}
	panel("approved", func(s string) bool {
		return strings.Contains(s, rolled) && !strings.Contains(s, "WaitingApproval") && (strings.Contains(s, "Running") || strings.Contains(s, "Completed"))
	})
	b.assertInert(t, "the App page with its live Rollout panel", "")
	b.screenshot(t, "app-rollout-approved")
}

// evaluate runs expr, whose value is a string, in the page.
func (b *browser) evaluate(t *testing.T, expr string) string {
	t.Helper()
	return inTab(t, b, "evaluate "+expr, chromedp.Evaluate[string](expr))
}

// waitBanner waits until the page shows (down) or hides the banner saying the hub does not
// answer.
func (b *browser) waitBanner(t *testing.T, down bool) {
	t.Helper()
	testwait.For(t, 2*time.Minute, fmt.Sprintf("the hub-down banner shown: %v", down), func(ctx context.Context) (bool, error) {
		shown, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`(() => { const el = document.getElementById("hub"); return !el.hidden && el.textContent.includes("does not answer"); })()`))
		return shown == down, err
	})
}

// chromiumPath finds Debian's chromium, or fails saying how to install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: the dashboard's browser tests need it; install chromium: apt-get install chromium")
	return ""
}

// startDashboard runs `flotilla dashboard` with the fleet's operator config and returns the
// address it prints; the process is stopped (Ctrl-C) when the test ends.
func startDashboard(t *testing.T, e *env) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "flotilla"), "--config", e.fleet.AdminConfig, "dashboard")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(e.dir, "dashboard.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("flotilla dashboard: %v", err)
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("flotilla dashboard's stderr:\n%s", b)
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	re := regexp.MustCompile(`^dashboard: (http://127\.0\.0\.1:\d+/) `)
	select {
	case l := <-lines:
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("flotilla dashboard printed %q, want its address", l)
		}
		return m[1]
	case <-time.After(time.Minute):
		t.Fatal("flotilla dashboard printed no address in a minute")
	}
	return ""
}

// browser is one headless chromium tab.
type browser struct {
	ctx   context.Context
	shots string
}

func newBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1400, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium %s: %v", path, err)
	}
	// Screenshots outlive the test (they are its artifacts): a directory of their own, logged.
	shots, err := os.MkdirTemp("", "flotilla-dashboard-screenshots-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dashboard screenshots: %s", shots)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		if t.Failed() {
			t.Logf("dashboard screenshots of the failed run: %s", shots)
		}
	})
	return &browser{ctx: ctx, shots: shots}
}

// inTab runs an action in the tab, within a minute.
func inTab[T any](t *testing.T, b *browser, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// open loads url and waits until the page listens to its live updates.
func (b *browser) open(t *testing.T, url string) {
	t.Helper()
	inTab(t, b, "open "+url, chromedp.Steps(chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body"))))
	testwait.For(t, 30*time.Second, "live updates of "+url, func(ctx context.Context) (bool, error) {
		return chromedp.Run(b.ctx, chromedp.Evaluate[bool](`document.getElementById("live").className === "live on"`))
	})
}

// click clicks sel and waits until the page it leads to shows next (an element only that page
// has): the old page's body is ready at once, and a screenshot taken mid-navigation fails.
func (b *browser) click(t *testing.T, sel, next string) {
	t.Helper()
	inTab(t, b, "click "+sel, chromedp.Steps(chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)), chromedp.WaitVisible(chromedp.CSS(next))))
}

func (b *browser) text(t *testing.T, sel string) string {
	t.Helper()
	inTab(t, b, "wait for "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	return inTab(t, b, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

func (b *browser) html(t *testing.T) string {
	t.Helper()
	return inTab(t, b, "the page's HTML", chromedp.OuterHTML(chromedp.CSS("html")))
}

func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	png := inTab(t, b, "screenshot "+name, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// assertInert checks that no script but the dashboard's own is on the page, that the hostile
// message's script did not run, and, when given, that the page shows text as text.
func (b *browser) assertInert(t *testing.T, page, text string) {
	t.Helper()
	type inert struct {
		Scripts []string `json:"scripts"`
		Pwned   bool     `json:"pwned"`
		Body    string   `json:"body"`
	}
	res := inTab(t, b, "scripts of "+page, chromedp.Evaluate[inert](`({
		scripts: Array.from(document.scripts).map(s => s.getAttribute("src") || "inline"),
		pwned: window.__pwned !== undefined,
		body: document.body.innerText,
	})`))
	if len(res.Scripts) != 1 || res.Scripts[0] != "/assets/live.js" || res.Pwned {
		t.Errorf("%s: scripts %v, injected script ran: %v", page, res.Scripts, res.Pwned)
	}
	if text != "" && !strings.Contains(res.Body, text) {
		t.Errorf("%s does not show %q as text", page, text)
	}
}

// cellState is a fleet cell as the browser shows it, and when the live updates last changed it.
type cellState struct {
	Sync, Health, Rev, Drift, Flags string
	Updated                         int64 // ms since the epoch, the browser's clock
}

func (s cellState) updated() time.Time { return time.UnixMilli(s.Updated) }

// waitCell waits until the cell of app on cluster satisfies ok, reading it as shown.
func (b *browser) waitCell(t *testing.T, cluster, app, what string, ok func(cellState) bool) cellState {
	t.Helper()
	key, _ := json.Marshal(cluster + "\x1f" + app)
	js := fmt.Sprintf(`(() => {
		const el = Array.from(document.querySelectorAll("td[data-key]")).find(e => e.dataset.key === %s);
		if (!el) { return null; }
		const q = s => (el.querySelector(s) || {}).textContent || "";
		return {Sync: q(".s"), Health: q(".h"), Rev: q(".r"), Drift: q(".d"), Flags: q(".f"), Updated: Number(el.dataset.updated || 0)};
	})()`, key)
	var last *cellState
	testwait.For(t, 3*time.Minute, fmt.Sprintf("%s/%s on the page: %s", cluster, app, what), func(ctx context.Context) (bool, error) {
		s, err := chromedp.Run(b.ctx, chromedp.Evaluate[*cellState](js))
		if err != nil {
			return false, err
		}
		last = s
		return s != nil && ok(*s), nil
	})
	return *last
}

// agentLogTime matches a line of an agent's text log: its time and message.
var agentLogTime = regexp.MustCompile(`^time=(\S+) level=\S+ msg="([^"]+)"`)

// sinceAgentLog is how long after the agent of cluster logged msg for app (the first such line
// after from) the browser saw the cell change (at): the agent sends its status report as it
// logs this.
func (e *env) sinceAgentLog(t *testing.T, cluster, msg, app string, from, at time.Time) string {
	t.Helper()
	data, err := os.ReadFile(e.fleet.Agents[cluster].LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		m := agentLogTime.FindStringSubmatch(line)
		if m == nil || m[2] != msg || !strings.Contains(line, " app="+app) {
			continue
		}
		logged, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || logged.Before(from) {
			continue
		}
		return at.Sub(logged).Round(time.Millisecond).String()
	}
	return "unknown (no " + msg + " line for " + app + " in the agent's log)"
}
