package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
)

// notifReceiver records what the hub's sinks deliver, by path.
type notifReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies map[string][]string
}

func newNotifReceiver(t *testing.T) *notifReceiver {
	r := &notifReceiver{bodies: map[string][]string{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies[req.URL.Path] = append(r.bodies[req.URL.Path], string(b))
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

// webhookConfig writes a hub notifications file with one webhook sink posting to path on r,
// and returns its path (for the hub's --notifications).
func (r *notifReceiver) webhookConfig(t *testing.T, path string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hook.url"), []byte(r.URL+path+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "notifications.yaml")
	if err := os.WriteFile(cfg, []byte("sinks:\n- {name: ops, type: webhook, urlFile: hook.url}\nretryBackoff: 200ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func (r *notifReceiver) all() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for k, v := range r.bodies {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// webhookNotification is the generic webhook's body.
type webhookNotification struct {
	Event    string    `json:"event"`
	Cluster  string    `json:"cluster"`
	App      string    `json:"app"`
	Revision string    `json:"revision"`
	Author   string    `json:"author"`
	Message  string    `json:"message"`
	Summary  string    `json:"summary"`
	Time     time.Time `json:"time"`
}

// events returns the webhook notifications of one event for an app on a cluster.
func (r *notifReceiver) events(t *testing.T, path, event, cluster, app string) []webhookNotification {
	t.Helper()
	var out []webhookNotification
	for _, b := range r.all()[path] {
		var n webhookNotification
		if err := json.Unmarshal([]byte(b), &n); err != nil {
			t.Fatalf("webhook body %q: %v", b, err)
		}
		if n.Event == event && n.Cluster == cluster && n.App == app {
			out = append(out, n)
		}
	}
	return out
}

// TestNotificationsOnDrift: a hub started with --notifications sends, for a manual edit of
// the api Deployment and its Secret in staging, exactly one drift-detected and, once an
// operator syncs, exactly one drift-corrected notification, to the generic webhook and to
// Slack, with the cluster, app, revision and commit, and without the Secret's values.
func TestNotificationsOnDrift(t *testing.T) {
	t.Parallel()
	recv := newNotifReceiver(t)
	cfgDir := t.TempDir()
	for name, url := range map[string]string{"hook.url": recv.URL + "/hook/token-abc", "chat.url": recv.URL + "/chat/token-xyz"} {
		if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(url+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(cfgDir, "notifications.yaml")
	if err := os.WriteFile(cfg, []byte(`sinks:
- {name: ops, type: webhook, urlFile: hook.url}
- {name: chat, type: slack, urlFile: chat.url, events: [drift-detected, drift-corrected]}
retryBackoff: 200ms
`), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{hubArgs: []string{"--notifications", cfg}})

	// api without selfHeal, so drift stays to be seen, and with a Secret.
	const secretValue, manualValue = "s3cr3t-notif-value", "manual-notif-value"
	api := strings.Replace(localfleet.DemoApplications(e.git.URL(e.repo.Dir))["api.yaml"], "selfHeal: true", "selfHeal: false", 1)
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"api.yaml": api}); err != nil {
		t.Fatal(err)
	}
	rev, err := e.repo.Commit("api: credentials", map[string]string{
		"base/api/kustomization.yaml": strings.Replace(localfleet.BaseAPIKustomization("1.0.0"), "- hpa.yaml\n", "- hpa.yaml\n- secret.yaml\n", 1),
		"base/api/secret.yaml": fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-credentials\ndata:\n  password: %s\n",
			base64.StdEncoding.EncodeToString([]byte(secretValue))),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev, 4)); err != nil {
		t.Fatal(err)
	}
	if n := recv.events(t, "/hook/token-abc", "sync-succeeded", "staging", "api"); len(n) == 0 {
		t.Errorf("no sync-succeeded for api on staging")
	}

	staging, err := e.clusters[0].Client()
	if err != nil {
		t.Fatal(err)
	}
	edit := func() {
		t.Helper()
		_, err := staging.AppsV1().Deployments("api").Patch(e.ctx, "api", types.StrategicMergePatchType,
			[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"api","image":"registry.example/api:manual"}]}}}}`),
			metav1.PatchOptions{FieldManager: "e2e-notify"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = staging.CoreV1().Secrets("api").Patch(e.ctx, "api-credentials", types.StrategicMergePatchType,
			[]byte(fmt.Sprintf(`{"data":{"password":%q}}`, base64.StdEncoding.EncodeToString([]byte(manualValue)))),
			metav1.PatchOptions{FieldManager: "e2e-notify"})
		if err != nil {
			t.Fatal(err)
		}
	}
	// The agent may still hold the policy with selfHeal (the hub rereads the apps each
	// round): then it reverts the edit without a word, and the edit is made again.
	detected := false
	for attempt := 1; attempt <= 4 && !detected; attempt++ {
		edit()
		err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
			return len(recv.events(t, "/hook/token-abc", "drift-detected", "staging", "api")) > 0, nil
		})
		detected = err == nil
	}
	if !detected {
		t.Fatalf("no drift-detected notification; received %v", recv.all())
	}
	if _, err := e.fleet.CLI(e.ctx, "sync", "api", "--cluster", "staging"); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return len(recv.events(t, "/hook/token-abc", "drift-corrected", "staging", "api")) > 0, nil
	}); err != nil {
		t.Fatalf("no drift-corrected notification; received %v", recv.all())
	}

	// Exactly one of each, however many status reports and polls follow.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range []string{"drift-detected", "drift-corrected"} {
			if n := recv.events(t, "/hook/token-abc", ev, "staging", "api"); len(n) != 1 {
				t.Fatalf("%d %s notifications for api on staging, want 1: %+v", len(n), ev, n)
			}
		}
		<-time.After(200 * time.Millisecond) // the condition must hold throughout: checked on each tick
	}
	if n := recv.events(t, "/hook/token-abc", "drift-detected", "production", "api"); len(n) != 0 {
		t.Errorf("drift-detected for production: %+v", n)
	}
	d := recv.events(t, "/hook/token-abc", "drift-detected", "staging", "api")[0]
	named := strings.Contains(d.Summary, "Deployment api/api (modified)") || strings.Contains(d.Summary, "Secret api/api-credentials (modified)")
	if d.Revision != rev || d.Author != "Flotilla Demo <demo@flotilla.dev>" || d.Message != "api: credentials" ||
		!strings.HasPrefix(d.Summary, "api on staging: drift detected: ") || !named || time.Since(d.Time) > 5*time.Minute {
		t.Errorf("drift-detected %+v", d)
	}
	c := recv.events(t, "/hook/token-abc", "drift-corrected", "staging", "api")[0]
	if c.Revision != rev || c.Summary != "api on staging: the live objects match Git again" {
		t.Errorf("drift-corrected %+v", c)
	}

	chat := recv.all()["/chat/token-xyz"]
	if len(chat) != 2 {
		t.Fatalf("slack got %d messages, want drift-detected and drift-corrected: %v", len(chat), chat)
	}
	var text struct{ Text string }
	if err := json.Unmarshal([]byte(chat[0]), &text); err != nil || !strings.HasPrefix(text.Text, ":warning: *Drift detected*: *api* on *staging*\n") {
		t.Errorf("slack message %q: %v", chat[0], err)
	}

	if hubLog, err := os.ReadFile(e.fleet.Hub.LogPath); err != nil {
		t.Error(err)
	} else if strings.Contains(string(hubLog), "token-abc") || strings.Contains(string(hubLog), "token-xyz") {
		t.Error("the hub's log shows a sink URL")
	}
	for path, bodies := range recv.all() {
		for _, b := range bodies {
			for _, secret := range []string{secretValue, manualValue, base64.StdEncoding.EncodeToString([]byte(secretValue)),
				base64.StdEncoding.EncodeToString([]byte(manualValue))} {
				if strings.Contains(b, secret) {
					t.Errorf("a notification to %s holds a Secret value: %s", path, b)
				}
			}
		}
	}
}
