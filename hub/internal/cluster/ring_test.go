package cluster

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

func loads(a map[string]string) map[string]int {
	l := map[string]int{}
	for _, m := range a {
		l[m]++
	}
	return l
}

// moved counts the keys of before whose member differs in after.
func moved(before, after map[string]string) int {
	n := 0
	for k, m := range before {
		if after[k] != m {
			n++
		}
	}
	return n
}

func TestRingAssign(t *testing.T) {
	tests := []struct {
		name       string
		members    []string
		vnodes     int
		loadFactor float64
		keys       []string
		want       map[string]string // nil: check only the invariants
	}{
		{name: "no members", members: nil, vnodes: 16, loadFactor: 1.25, keys: []string{"a"}, want: map[string]string{}},
		{name: "no keys", members: []string{"hub-0"}, vnodes: 16, loadFactor: 1.25, keys: nil, want: map[string]string{}},
		{name: "one member takes all", members: []string{"hub-0"}, vnodes: 16, loadFactor: 1.25,
			keys: []string{"a", "b", "c"}, want: map[string]string{"a": "hub-0", "b": "hub-0", "c": "hub-0"}},
		{name: "empty and duplicate names ignored", members: []string{"hub-0", "", "hub-0"}, vnodes: 16, loadFactor: 1.25,
			keys: []string{"a", "", "a"}, want: map[string]string{"a": "hub-0"}},
		{name: "tight bound", members: names("hub", 4), vnodes: 64, loadFactor: 1, keys: names("c", 1000)},
		{name: "default bound", members: names("hub", 3), vnodes: DefaultVNodes, loadFactor: DefaultLoadFactor, keys: names("c", 1000)},
		{name: "loose bound", members: names("hub", 5), vnodes: 128, loadFactor: 1.25, keys: names("c", 999)},
		{name: "more members than keys", members: names("hub", 7), vnodes: 8, loadFactor: 1.25, keys: names("c", 3)},
		{name: "one vnode", members: names("hub", 3), vnodes: 1, loadFactor: 1.1, keys: names("c", 100)},
		{name: "vnodes below 1 taken as 1", members: names("hub", 3), vnodes: 0, loadFactor: 1.1, keys: names("c", 100)},
		{name: "load factor below 1 taken as 1", members: names("hub", 3), vnodes: 32, loadFactor: 0.5, keys: names("c", 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing(tt.members, tt.vnodes, tt.loadFactor)
			got := r.Assign(tt.keys)
			if tt.want != nil && !maps.Equal(got, tt.want) {
				t.Fatalf("Assign = %v, want %v", got, tt.want)
			}
			members := sortedUnique(tt.members)
			keys := sortedUnique(tt.keys)
			if len(members) > 0 && len(got) != len(keys) {
				t.Fatalf("assigned %d keys, want %d", len(got), len(keys))
			}
			for k, m := range got {
				if !slices.Contains(members, m) {
					t.Fatalf("key %q assigned to %q, not a member", k, m)
				}
			}
			lf := max(tt.loadFactor, 1)
			bound := 0
			if len(members) > 0 {
				bound = int(math.Ceil(lf * float64(len(keys)) / float64(len(members))))
			}
			for m, n := range loads(got) {
				if n > bound {
					t.Errorf("member %s holds %d keys, bound ceil(%.2f×%d/%d) = %d", m, n, lf, len(keys), len(members), bound)
				}
			}
		})
	}
}

func TestRingAssignIgnoresOrder(t *testing.T) {
	members := names("hub", 5)
	keys := names("cluster", 500)
	want := NewRing(members, 64, 1.1).Assign(keys)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 5 {
		m, k := slices.Clone(members), slices.Clone(keys)
		rng.Shuffle(len(m), func(i, j int) { m[i], m[j] = m[j], m[i] })
		rng.Shuffle(len(k), func(i, j int) { k[i], k[j] = k[j], k[i] })
		if got := NewRing(m, 64, 1.1).Assign(k); !maps.Equal(got, want) {
			t.Fatalf("shuffle %d: assignment changed with the order of members and keys", i)
		}
	}
}

// rebalance reports what happens to 1,000 keys when a 4th member joins 3
// (join) and when one of those 4 leaves (leave: keys the leaver held, and
// keys of the remaining members that moved as well — the bounded-load spillover).
func rebalance(vnodes int, loadFactor float64) (join, own, spill int) {
	return rebalanceNamed("hub", vnodes, loadFactor)
}

func rebalanceNamed(prefix string, vnodes int, loadFactor float64) (join, own, spill int) {
	keys := names("cluster", 1000)
	hub := func(i int) string { return fmt.Sprintf("%s-%d", prefix, i) }
	three := []string{hub(0), hub(1), hub(2)}
	four := append(slices.Clone(three), hub(3))
	before := NewRing(three, vnodes, loadFactor).Assign(keys)
	after := NewRing(four, vnodes, loadFactor).Assign(keys)
	join = moved(before, after)

	left := NewRing([]string{hub(0), hub(2), hub(3)}, vnodes, loadFactor).Assign(keys) // hub-1 leaves
	for k, m := range after {
		switch {
		case m == hub(1):
			own++
		case left[k] != m:
			spill++
		}
	}
	return join, own, spill
}

func TestRingJoinMovesAQuarter(t *testing.T) {
	join, _, _ := rebalance(DefaultVNodes, DefaultLoadFactor)
	t.Logf("4th member joining 3: %d of 1000 keys moved (%.1f%%)", join, float64(join)/10)
	if limit := 1000/4 + 20; join > limit {
		t.Errorf("%d keys moved, want at most %d (1/4 + 2%%)", join, limit)
	}
}

func TestRingLeaveMovesOwnKeysAndSpillover(t *testing.T) {
	own, spill := 0, 0
	t.Run("unbounded", func(t *testing.T) {
		// A load factor that never binds is plain consistent hashing: only the
		// leaver's keys move.
		_, own, spill = rebalance(DefaultVNodes, 1000)
		t.Logf("member leaving 4: its %d keys moved, %d others", own, spill)
		if own == 0 || spill != 0 {
			t.Errorf("own %d, spill %d: want own > 0, spill 0", own, spill)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		_, own, spill = rebalance(DefaultVNodes, DefaultLoadFactor)
		t.Logf("member leaving 4: its %d keys moved, plus %d keys of the others (bounded-load spillover)", own, spill)
		if limit := 1000 / 20; spill > limit {
			t.Errorf("spillover %d keys, want at most %d (5%%)", spill, limit)
		}
	})
}

func BenchmarkRingRebalance(b *testing.B) {
	var join, own, spill int
	for b.Loop() {
		join, own, spill = rebalance(DefaultVNodes, DefaultLoadFactor)
	}
	b.ReportMetric(float64(join), "keys-moved-on-join")
	b.ReportMetric(float64(join)/10, "%moved-on-join")
	b.ReportMetric(float64(own), "own-keys-moved-on-leave")
	b.ReportMetric(float64(spill), "spillover-on-leave")
}

// BenchmarkRingRebalanceSpread repeats the join of BenchmarkRingRebalance
// with 100 other sets of replica names: how far from 1/4 the figure strays.
func BenchmarkRingRebalanceSpread(b *testing.B) {
	var joins []int
	for b.Loop() {
		joins = joins[:0]
		for i := range 100 {
			j, _, _ := rebalanceNamed(fmt.Sprintf("replica%d", i), DefaultVNodes, DefaultLoadFactor)
			joins = append(joins, j)
		}
	}
	slices.Sort(joins)
	b.ReportMetric(float64(joins[50]), "median-keys-moved")
	b.ReportMetric(float64(joins[90]), "p90-keys-moved")
	b.ReportMetric(float64(joins[99]), "max-keys-moved")
}

func BenchmarkRingAssign(b *testing.B) {
	r := NewRing(names("hub", 5), DefaultVNodes, DefaultLoadFactor)
	keys := names("cluster", 10000)
	for b.Loop() {
		r.Assign(keys)
	}
}
