package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// hubHellos is the hub's count of Hello messages: one per agent stream it accepted.
const hubHellos = `flotilla_hub_stream_messages_total{direction="in",type="hello"}`

// TestCertificateRotationKeepsTheStream: with 9-second agent certificates, the agents renew
// them (new key, new certificate kept in their identity Secret) without dropping their streams,
// and after a hub restart they reconnect with the renewed certificate (the first one expired).
func TestCertificateRotationKeepsTheStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{hubArgs: []string{"--agent-cert-ttl", "9s"}})
	rev1, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, allAt(rev1, 4)); err != nil {
		t.Fatal(err)
	}
	client, err := e.clusters[0].Client()
	if err != nil {
		t.Fatal(err)
	}
	serial := func(ctx context.Context) string {
		if cert := agentCert(ctx, client); cert != nil {
			return cert.SerialNumber.String()
		}
		return ""
	}
	// Every agent said Hello once; a stream dropped by the rotation would say it again.
	hellos := scrape(t, e.fleet.HTTPAddr)[hubHellos]
	if hellos < float64(len(e.clusters)) {
		t.Fatalf("hub metric %s = %v, want at least one per agent (%d)", hubHellos, hellos, len(e.clusters))
	}
	seen := map[string]bool{serial(e.ctx): true}
	testwait.For(t, time.Minute, "the agent's certificate renewed twice on the same stream", func(ctx context.Context) (bool, error) {
		if n := scrape(t, e.fleet.HTTPAddr)[hubHellos]; n != hellos {
			return false, fmt.Errorf("hub metric %s went from %v to %v: an agent reconnected during rotation (serials seen: %d)", hubHellos, hellos, n, len(seen))
		}
		if s := serial(ctx); s != "" {
			seen[s] = true
		}
		return len(seen) >= 3, nil
	})
	// The first certificate has expired by now; a reconnect uses the renewed one.
	e.fleet.Hub.Stop(10 * time.Second)
	if err := e.fleet.StartHub(e.ctx); err != nil {
		t.Fatal(err)
	}
	waitSeenSince(t, e, time.Now(), time.Minute, rev1)
}

// waitSeenSince waits until every agent has reported since, with every app at rev.
func waitSeenSince(t *testing.T, e *env, since time.Time, timeout time.Duration, rev string) {
	t.Helper()
	if _, err := e.fleet.WaitStatus(e.ctx, timeout, func(items []localfleet.StatusItem) bool {
		for _, it := range items {
			if it.LastSeen == nil || it.LastSeen.Before(since) {
				return false
			}
		}
		return allAt(rev, 4)(items)
	}); err != nil {
		t.Fatal(err)
	}
}
