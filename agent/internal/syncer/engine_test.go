package syncer

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// stall holds every server-side apply (not dry-run) of the objects under path until its
// request is cancelled, while stalled is set: an API server that accepts a write and never
// answers.
type stall struct {
	next    http.RoundTripper
	path    string
	stalled *atomic.Bool
	held    *atomic.Int64
}

func (s stall) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.stalled.Load() && r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, s.path) && !strings.Contains(r.URL.RawQuery, "dryRun=") {
		s.held.Add(1)
		<-r.Context().Done()
		return nil, r.Context().Err()
	}
	return s.next.RoundTrip(r)
}

// TestSyncDeadline: a sync whose write never returns is cut off by the sync timeout, NACKed
// and reported as a failure naming the timeout, and retried; once the API server answers
// again the retry succeeds. Without a deadline the app would wait forever.
func TestSyncDeadline(t *testing.T) {
	e := newEnv(t)
	ns := kubetest.Uniq("t-deadline")
	e.CreateNamespace(t, ns)
	stalled, held := &atomic.Bool{}, &atomic.Int64{}
	stalled.Store(true)
	cfg := rest.CopyConfig(e.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return stall{next: rt, path: "/api/v1/namespaces/" + ns + "/configmaps/", stalled: stalled, held: held}
	})
	c, rec := startController(t, e, kubetest.Uniq("t-deadline-agent"), func(c *Config) {
		c.RESTConfig, c.SyncTimeout = cfg, 2*time.Second
	})
	c.SetDesired(desired(t, "slow", ns, SyncPolicy{Automated: true, Retry: Retry{Duration: 200 * time.Millisecond}}, kubetest.ConfigMap("settings", "v1")))

	const want = "not done within the sync timeout of 2s (--sync-timeout)"
	testwait.For(t, time.Minute, "a NACK naming the sync timeout", func(context.Context) (bool, error) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.nacks) > 0 && strings.Contains(rec.nacks[0], want), nil
	})
	rec.waitStatus(t, "slow", time.Minute, "OutOfSync, failed and retried", func(s AppStatus) bool {
		return s.Sync == SyncOutOfSync && strings.Contains(s.Message, "failed (attempt ") && strings.Contains(s.Message, want)
	})
	if held.Load() == 0 {
		t.Fatal("no write was held: the test proves nothing")
	}

	stalled.Store(false)
	rec.waitAck(t, "slow", 1, time.Minute)
	if v, _ := e.ConfigMapValue(t, ns, "settings", "value"); v != "v1" {
		t.Errorf("after the API server answers again: value %q, want v1", v)
	}
}
