package syncer

import (
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
)

// BenchmarkWaveOverhead measures what sync waves cost beyond the workloads' own readiness: an
// app of three Deployments, one per wave, against the same three Deployments in one wave, on a
// real API server with kwok's pods. At each wave boundary, the time from wave N's Deployment
// turning Available to wave N+1's Deployment being created (both seen by one watch in the
// benchmark) is the agent's own overhead per wave: noticing the wave Healthy and applying the
// next. Run with `make bench` (or go test -run '^$' -bench WaveOverhead -benchtime 1x).
func BenchmarkWaveOverhead(b *testing.B) {
	e := newEnv(b)
	c, rec := startController(b, e, kubetest.Uniq("b-agent-waves"))
	var gaps []time.Duration
	var oneWave, threeWaves time.Duration
	for i := 0; i < b.N; i++ {
		for _, waves := range []bool{false, true} {
			app, ns := kubetest.Uniq("wv"), kubetest.Uniq("b-waves")
			var docs []string
			for w := range 3 {
				doc := kubetest.Deployment(fmt.Sprintf("d%d", w), 1, false)
				if waves {
					doc = inWave(doc, w)
				}
				docs = append(docs, doc)
			}
			ctx := kubetest.Ctx(b)
			watcher, err := e.Client.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			c.SetDesired(desired(b, app, ns, SyncPolicy{Automated: true, Prune: true, CreateNamespace: true}, docs...))
			created, available := map[string]time.Duration{}, map[string]time.Duration{}
			for len(available) < 3 {
				select {
				case ev := <-watcher.ResultChan():
					d, ok := ev.Object.(*appsv1.Deployment)
					if !ok || ev.Type == watch.Deleted {
						continue
					}
					if _, seen := created[d.Name]; !seen {
						created[d.Name] = time.Since(start)
					}
					if _, seen := available[d.Name]; !seen && !availableAt(d).IsZero() {
						available[d.Name] = time.Since(start)
					}
				case <-ctx.Done():
					b.Fatalf("app %s: Deployments available %v of 3", app, available)
				}
			}
			watcher.Stop()
			rec.waitAck(b, app, 1, time.Minute)
			total := slices.Max([]time.Duration{available["d0"], available["d1"], available["d2"]})
			if !waves {
				oneWave = total
				continue
			}
			threeWaves = total
			gaps = append(gaps, created["d1"]-available["d0"], created["d2"]-available["d1"])
		}
	}
	var sum time.Duration
	for _, g := range gaps {
		sum += g
	}
	b.ReportMetric(float64(sum.Milliseconds())/float64(len(gaps)), "overhead-ms/wave")
	b.ReportMetric(float64(slices.Max(gaps).Milliseconds()), "max-overhead-ms")
	b.ReportMetric(oneWave.Seconds(), "1-wave-s")
	b.ReportMetric(threeWaves.Seconds(), "3-waves-s")
}

// availableAt is when d's Available condition turned True; zero if it is not.
func availableAt(d *appsv1.Deployment) time.Time {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == "True" && d.Status.ObservedGeneration >= d.Generation {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}
