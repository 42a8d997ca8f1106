package e2e

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
)

// webhookBenchCommits is how many commits one run of BenchmarkWebhookToApplied measures.
const webhookBenchCommits = 20

// BenchmarkWebhookToApplied measures, for one real cluster, the time from a signed push
// webhook to `flotilla status` showing its commit applied, over 20 commits. The hub polls
// Git every 10 minutes, so only the webhook can start a round. The hub and agent are built
// without the race detector for this (the tests' binaries have it).
//
//	go test -run '^$' -bench WebhookToApplied -benchtime 1x ./e2e/
func BenchmarkWebhookToApplied(b *testing.B) {
	cs := clusters.Clusters(b)
	staging := cs[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir := b.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := localfleet.Build(ctx, bin, false); err != nil {
		b.Fatal(err)
	}
	repo, git, err := localfleet.ServeDemo(ctx, dir, "1.0.0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(git.Stop)
	appsDir := filepath.Join(dir, "apps")
	if err := localfleet.WriteFiles(appsDir, localfleet.DemoApplications(git.URL(repo.Dir))); err != nil {
		b.Fatal(err)
	}
	secretFile := filepath.Join(dir, "webhook-secret")
	if err := os.WriteFile(secretFile, []byte("bench-secret\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	fleet, err := localfleet.Start(ctx, localfleet.Options{
		Dir: dir, BinDir: bin, AppsDir: appsDir, PollInterval: 10 * time.Minute, Heartbeat: time.Second,
		HubArgs: []string{"--webhook-secret-file", secretFile},
		Members: []localfleet.Member{{Cluster: staging, Labels: map[string]string{"env": "staging"}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if b.Failed() {
			b.Log(fleet.Logs())
		}
		fleet.Stop()
	})
	rev, err := repo.Head()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := fleet.WaitStatus(ctx, 3*time.Minute, appliedOnStaging("api", rev)); err != nil {
		b.Fatal(err)
	}

	body := fmt.Sprintf(`{"ref":"refs/heads/main","repository":{"clone_url":%q}}`, git.URL(repo.Dir))
	var latencies, polls []time.Duration
	b.ResetTimer()
	for n := range b.N {
		for i := range webhookBenchCommits {
			b.StopTimer()
			tag := fmt.Sprintf("2.%d.%d", n, i)
			rev, err := repo.Commit("api: "+tag, map[string]string{"base/api/kustomization.yaml": localfleet.BaseAPIKustomization(tag)})
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			pushed := time.Now()
			if code := signedWebhook(b, fleet.HTTPAddr, body, "bench-secret"); code != http.StatusOK {
				b.Fatalf("webhook: status %d", code)
			}
			for applied := false; !applied; {
				if time.Since(pushed) > 2*time.Minute {
					b.Fatalf("commit %s not applied on staging 2m after its webhook", rev)
				}
				polled := time.Now()
				items, err := fleet.Status(ctx)
				polls = append(polls, time.Since(polled))
				applied = err == nil && appliedOnStaging("api", rev)(items)
			}
			latencies = append(latencies, time.Since(pushed))
		}
	}
	b.StopTimer()

	slices.Sort(latencies)
	slices.Sort(polls)
	p50, p90, p99 := percentile(latencies, 50), percentile(latencies, 90), percentile(latencies, 99)
	var sum time.Duration
	for _, l := range latencies {
		sum += l
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0fms", float64(d.Microseconds())/1000) }
	fmt.Fprintf(os.Stderr, "\nwebhook to applied, one cluster (10m poll; `flotilla status` polled back to back, one poll takes p50 %s)\n",
		ms(percentile(polls, 50)))
	fmt.Fprintf(os.Stderr, "%8s %8s %8s %8s %8s %8s %8s\n", "commits", "min", "p50", "p90", "p99", "max", "mean")
	fmt.Fprintf(os.Stderr, "%8d %8s %8s %8s %8s %8s %8s\n", len(latencies), ms(latencies[0]), ms(p50), ms(p90), ms(p99),
		ms(latencies[len(latencies)-1]), ms(sum/time.Duration(len(latencies))))
	fmt.Fprintf(os.Stderr, "each: %s\n", strings.Join(mapSlice(latencies, ms), " "))
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(latencies)), "commits")
}

// appliedOnStaging reports whether app is Synced at rev on the staging cluster.
func appliedOnStaging(app, rev string) func([]localfleet.StatusItem) bool {
	return func(items []localfleet.StatusItem) bool {
		for _, it := range items {
			if it.Cluster == "staging" && it.App == app {
				return it.AppliedRevision == rev && it.Sync == "Synced"
			}
		}
		return false
	}
}

// signedWebhook posts a GitHub push event signed with secret and returns the status code.
func signedWebhook(tb testing.TB, addr, body, secret string) int {
	tb.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/webhook", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// percentile returns the nearest-rank p-th percentile of sorted.
func percentile[T cmp.Ordered](sorted []T, p int) T {
	if len(sorted) == 0 {
		var zero T
		return zero
	}
	i := (p*len(sorted) + 99) / 100
	return sorted[max(i, 1)-1]
}

func mapSlice[T, U any](in []T, f func(T) U) []U {
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
