package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
)

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
	seen := map[string]bool{serial(e.ctx): true}
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if s := serial(ctx); s != "" {
			seen[s] = true
		}
		return len(seen) >= 3, nil
	})
	if err != nil {
		t.Fatalf("the agent's certificate was not renewed twice (serials seen: %d)", len(seen))
	}
	if log := e.fleet.Agents["staging"].Tail(1 << 20); strings.Contains(log, "hub stream ended") {
		t.Fatalf("the stream dropped during rotation:\n%s", log)
	}
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
