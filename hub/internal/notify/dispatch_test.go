package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// receiver is an httptest server that records request bodies and answers with the statuses
// the test queues (then 200).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	statuses []int
	got      chan struct{}
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses, got: make(chan struct{}, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		if req.Header.Get("Content-Type") != "application/json" {
			status = http.StatusUnsupportedMediaType
		}
		w.WriteHeader(status)
		r.got <- struct{}{}
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

// counts is a recorder.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) Notification(sink, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[sink+"/"+result]++
}

func (c *counts) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// testConfig writes a notifications file for sinks (name → type and URL) and loads it.
func testConfig(t *testing.T, extra string, sinks ...[3]string) *Config {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("retryBackoff: 10ms\nmaxBackoff: 50ms\nmaxAttempts: 3\ntimeout: 2s\n" + extra + "sinks:\n")
	for _, s := range sinks {
		if err := os.WriteFile(filepath.Join(dir, s[0]+".url"), []byte(s[2]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		b.WriteString("- {name: " + s[0] + ", type: " + s[1] + ", urlFile: " + s[0] + ".url}\n")
	}
	path := filepath.Join(dir, "notifications.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func run(t *testing.T, d *Dispatcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

var sample = Notification{
	Event: DriftDetected, Cluster: "staging", App: "api", Revision: "0123456789abcdef",
	Author: "Ada <ada@example.com>", Message: "api: <2.0.0> & more",
	Summary: "api on staging: drift detected: 1 object differs from Git: Deployment api/api (modified)",
	Time:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
}

// TestSinkFormats: the generic webhook gets the notification as JSON, Slack a readable text.
func TestSinkFormats(t *testing.T) {
	hook, slack := newReceiver(t), newReceiver(t)
	rec := &counts{}
	d := NewDispatcher(testConfig(t, "", [3]string{"hook", "webhook", hook.URL + "/hook"}, [3]string{"chat", "slack", slack.URL + "/services/T0/B0/XYZ"}), rec, nil)
	run(t, d)
	d.Notify(sample)
	testwait.Until(t, 30*time.Second, "both deliveries", func() bool { return rec.get("hook/sent") == 1 && rec.get("chat/sent") == 1 })

	var got map[string]any
	if err := json.Unmarshal(hook.requests()[0], &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"event": "drift-detected", "cluster": "staging", "app": "api", "revision": "0123456789abcdef",
		"author": "Ada <ada@example.com>", "message": "api: <2.0.0> & more", "summary": sample.Summary,
		"time": "2026-01-02T03:04:05Z",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("webhook %s = %v, want %v", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("webhook body has fields %v, want exactly %v", got, want)
	}

	var msg struct{ Text string }
	if err := json.Unmarshal(slack.requests()[0], &msg); err != nil {
		t.Fatal(err)
	}
	wantText := ":warning: *Drift detected*: *api* on *staging*\n" + sample.Summary +
		"\nRevision `01234567` by Ada &lt;ada@example.com&gt;: api: &lt;2.0.0&gt; &amp; more"
	if msg.Text != wantText {
		t.Errorf("slack text:\n%s\nwant:\n%s", msg.Text, wantText)
	}
}

// TestDeliveryRetries: a 500 is retried until it succeeds; a 400 is not retried; a receiver
// that keeps failing is given up after MaxAttempts and counted, its URL never logged.
func TestDeliveryRetries(t *testing.T) {
	flaky := newReceiver(t, http.StatusInternalServerError, http.StatusBadGateway)
	refusing := newReceiver(t, http.StatusBadRequest)
	down := newReceiver(t, 500, 500, 500, 500)
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := &counts{}
	d := NewDispatcher(testConfig(t, "",
		[3]string{"flaky", "webhook", flaky.URL + "/token-flaky"},
		[3]string{"refusing", "webhook", refusing.URL + "/token-refusing"},
		[3]string{"down", "slack", down.URL + "/token-down"}), rec, log)
	run(t, d)
	d.Notify(sample)
	testwait.Until(t, 30*time.Second, "the deliveries to end", func() bool {
		return rec.get("flaky/sent") == 1 && rec.get("refusing/failed") == 1 && rec.get("down/failed") == 1
	})
	if n := len(flaky.requests()); n != 3 {
		t.Errorf("flaky receiver got %d requests, want 3 (500, 502, then 200)", n)
	}
	if n := len(refusing.requests()); n != 1 {
		t.Errorf("refusing receiver got %d requests, want 1 (a 400 is not retried)", n)
	}
	if n := len(down.requests()); n != 3 {
		t.Errorf("down receiver got %d requests, want MaxAttempts = 3", n)
	}
	for _, b := range flaky.requests() {
		if !bytes.Equal(b, flaky.requests()[0]) {
			t.Error("a retry sent another body")
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "notification not delivered") {
		t.Errorf("no failure logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "token-") {
		t.Errorf("a sink URL was logged:\n%s", logs.String())
	}
}

// TestQueueBounded: Notify never blocks; what does not fit is dropped and counted; a sink
// gets only the events it asked for.
func TestQueueBounded(t *testing.T) {
	hook := newReceiver(t)
	cfg := testConfig(t, "queueSize: 2\n", [3]string{"hook", "webhook", hook.URL})
	cfg.Sinks[0].events = map[Event]bool{DriftDetected: true}
	rec := &counts{}
	d := NewDispatcher(cfg, rec, nil) // not running: nothing drains the queue
	done := make(chan struct{})
	go func() {
		for range 5 {
			d.Notify(sample)
		}
		d.Notify(Notification{Event: SyncSucceeded})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Notify blocked")
	}
	if got := rec.get("hook/dropped"); got != 3 {
		t.Errorf("dropped %d, want 3", got)
	}
	run(t, d)
	testwait.Until(t, 30*time.Second, "the queued deliveries", func() bool { return rec.get("hook/sent") == 2 })
}

func TestLoadConfigErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "n.yaml")
	if err := os.WriteFile(filepath.Join(dir, "empty.url"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ftp.url"), []byte("ftp://secret-host/x"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `sinks:
- {name: a, type: email, urlFile: missing.url}
- {name: a, type: webhook, urlFile: empty.url, events: [drift-detected, nope]}
- {name: b, type: slack}
- {name: c, type: slack, urlFile: ftp.url}
`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`sinks[0]: type "email"`, "missing.url", `sinks[1]: name "a" used twice`, "empty.url is empty",
		`unknown event "nope"`, "sinks[2]: urlFile is required", "ftp.url: not an http or https URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secret-host") {
		t.Errorf("error shows a URL file's content: %v", err)
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
