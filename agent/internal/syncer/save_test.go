package syncer

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// secretFaults fails every write to the Secrets of one namespace while broken is set: the
// agent's state cannot be saved, everything else works.
type secretFaults struct {
	next   http.RoundTripper
	path   string // /api/v1/namespaces/NS/secrets
	broken *atomic.Bool
	failed *atomic.Int64
}

func (s secretFaults) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.broken.Load() && r.Method != http.MethodGet && strings.HasPrefix(r.URL.Path, s.path) {
		s.failed.Add(1)
		return nil, errors.New("injected: etcdserver: request timed out")
	}
	return s.next.RoundTrip(r)
}

// TestStateSaveFailuresRetried: while the agent's state cannot be saved, a sync still counts
// (acked, its objects in the inventory kept in memory, so the next revision prunes what it
// dropped), the app is reported Degraded with "state not saved", and the save is retried with
// backoff; once saves work again the state is saved, inventory and all, and the status clears.
func TestStateSaveFailuresRetried(t *testing.T) {
	e := newEnv(t)
	ns, agentNS := kubetest.Uniq("t-save-fail"), kubetest.Uniq("t-save-fail-agent")
	e.CreateNamespace(t, ns)
	e.CreateNamespace(t, agentNS)
	broken, failed := &atomic.Bool{}, &atomic.Int64{}
	cfg := rest.CopyConfig(e.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return secretFaults{next: rt, path: "/api/v1/namespaces/" + agentNS + "/secrets", broken: broken, failed: failed}
	})
	c, rec := startController(t, e, agentNS, func(c *Config) { c.RESTConfig = cfg })
	broken.Store(true)

	policy := SyncPolicy{Automated: true, Prune: true}
	d1 := desired(t, "shop", ns, policy, kubetest.ConfigMap("keep", "1"), kubetest.ConfigMap("dropped", "1"))
	c.SetDesired(d1)
	rec.waitAck(t, "shop", 1, time.Minute)
	rec.waitStatus(t, "shop", time.Minute, "Degraded: state not saved, retried", func(s AppStatus) bool {
		return s.Health == "Degraded" && strings.HasPrefix(s.Message, "state not saved (attempt ") &&
			!strings.HasPrefix(s.Message, "state not saved (attempt 1 ")
	})

	// The next revision drops an object: it is pruned, although no state was ever saved.
	d2 := desired(t, "shop", ns, policy, kubetest.ConfigMap("keep", "2"))
	d2.Generation = 2
	c.SetDesired(d2)
	rec.waitAck(t, "shop", 2, time.Minute)
	testwait.For(t, time.Minute, "the dropped object pruned", func(context.Context) (bool, error) {
		_, exists := e.ConfigMapValue(t, ns, "dropped", "value")
		return !exists, nil
	})
	if states, err := state.NewStore(e.Kube, agentNS).Load(kubetest.Ctx(t)); err != nil || states["shop"] != nil {
		t.Fatalf("with saves failing, state holds %v (%v)", states["shop"] != nil, err)
	}
	if n := failed.Load(); n < 2 {
		t.Fatalf("%d state writes failed, want the retries too", n)
	}

	broken.Store(false)
	s := rec.waitStatus(t, "shop", time.Minute, "saved: no longer Degraded", func(s AppStatus) bool {
		return s.AppliedRevision == d2.Revision && s.Health == "Healthy" && !strings.Contains(s.Message, "state not saved")
	})
	states, err := state.NewStore(e.Kube, agentNS).Load(kubetest.Ctx(t))
	if err != nil || states["shop"] == nil {
		t.Fatalf("after saves work again: no state (%v); status %+v", err, s)
	}
	st := states["shop"]
	want := []state.ObjectRef{{Version: "v1", Kind: "ConfigMap", Namespace: ns, Name: "keep"}}
	if st.Generation != 2 || st.Digest != d2.Digest || !reflect.DeepEqual(st.Inventory, want) {
		t.Fatalf("saved state: generation %d, inventory %+v; want generation 2, inventory %+v", st.Generation, st.Inventory, want)
	}
}
