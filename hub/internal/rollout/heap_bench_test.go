package rollout

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
)

// BenchmarkRecordHeap measures, in a quiet process, the heap one active rollout's record takes
// for 1,000 clusters (the first 10% admitted), and the holds the fleet keeps for the others'
// `flotilla status` rows: the mean over copies made between two collections.
func BenchmarkRecordHeap(b *testing.B) {
	const n, copies = 1000, 200
	s := newSim()
	for i := range n {
		s.tgts = append(s.tgts, apps.ClusterVars{Name: fmt.Sprintf("sim-%05d", i)})
	}
	spec := &apps.RolloutSpec{FailurePolicy: apps.FailureHalt, Steps: []apps.RolloutStep{{MaxUnavailablePercent: 10}}}
	r := Start(Baseline("app", Target{Revision: "r1"}, s.now), Target{Revision: "r2"}, s.now)
	r.Advance(spec, s.tgts, s.observe, s.now.Add(time.Second))
	for i := 0; i < b.N; i++ {
		records, holdMaps := make([]*Record, copies), make([]map[string]string, copies)
		runtime.GC()
		var before, mid, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for j := range records {
			records[j] = r.Clone()
		}
		runtime.GC()
		runtime.ReadMemStats(&mid)
		for j := range holdMaps {
			holdMaps[j] = holds(r)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(records)
		runtime.KeepAlive(holdMaps)
		rec := float64(mid.HeapAlloc-before.HeapAlloc) / copies / 1024
		hold := float64(after.HeapAlloc-mid.HeapAlloc) / copies / 1024
		b.ReportMetric(rec, "KiB-record/rollout")
		b.ReportMetric(hold, "KiB-holds/rollout")
	}
}
