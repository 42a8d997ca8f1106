package cluster

import (
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strconv"
)

// Ring is a consistent-hash ring with bounded loads (Mirrokni, Thorup and
// Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018). Every member
// owns vnodes points on a 64-bit ring. A key goes to the member of the first
// point clockwise from the key's hash that still has room; a member has room
// while it holds fewer than ceil(loadFactor × keys / members) keys.
//
// A Ring is immutable and safe for concurrent use. Its result depends only on
// the set of members and the set of keys, never on their order, so every
// replica that sees the same members computes the same assignment.
type Ring struct {
	members    []string // sorted, unique
	points     []point  // sorted by hash, then member
	loadFactor float64
}

type point struct {
	hash   uint64
	member int // index into Ring.members
}

// NewRing builds a ring over members. Duplicate and empty member names are
// ignored. vnodes below 1 is taken as 1; a loadFactor below 1 (or NaN) is taken
// as 1, the tightest bound that can still place every key.
func NewRing(members []string, vnodes int, loadFactor float64) *Ring {
	vnodes = max(vnodes, 1)
	if !(loadFactor >= 1) { // also catches NaN
		loadFactor = 1
	}
	ms := sortedUnique(members)
	pts := make([]point, 0, len(ms)*vnodes)
	for i, m := range ms {
		for v := range vnodes {
			pts = append(pts, point{hash: hashString(m + "\x00" + strconv.Itoa(v)), member: i})
		}
	}
	slices.SortFunc(pts, func(a, b point) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		return a.member - b.member
	})
	return &Ring{members: ms, points: pts, loadFactor: loadFactor}
}

// Capacity is the most keys one member receives when n keys are assigned:
// ceil(loadFactor × n / members). It is 0 on an empty ring.
func (r *Ring) Capacity(n int) int {
	if len(r.members) == 0 {
		return 0
	}
	return int(math.Ceil(r.loadFactor * float64(n) / float64(len(r.members))))
}

// Assign maps every key (duplicates and empty keys ignored) to a member. It
// returns an empty map when the ring has no members.
//
// Keys are placed one at a time in the order of their hash, which is fixed
// whatever the members are, so a membership change only moves the keys whose
// first choice changed plus the keys displaced by the load bound.
func (r *Ring) Assign(keys []string) map[string]string {
	ks := sortedUnique(keys)
	out := make(map[string]string, len(ks))
	if len(r.members) == 0 || len(ks) == 0 {
		return out
	}
	type hashed struct {
		hash uint64
		key  string
	}
	hs := make([]hashed, len(ks))
	for i, k := range ks {
		hs[i] = hashed{hash: hashString(k), key: k}
	}
	slices.SortFunc(hs, func(a, b hashed) int {
		if a.hash != b.hash {
			if a.hash < b.hash {
				return -1
			}
			return 1
		}
		if a.key < b.key {
			return -1
		}
		return 1 // keys are unique
	})

	capacity := r.Capacity(len(hs))
	load := make([]int, len(r.members))
	n := len(r.points)
	for _, h := range hs {
		i := sort.Search(n, func(i int) bool { return r.points[i].hash >= h.hash })
		// capacity × members ≥ keys, so some member has room and the walk ends
		// within one turn of the ring.
		for step := 0; step < n; step++ {
			p := r.points[(i+step)%n]
			if load[p.member] < capacity {
				load[p.member]++
				out[h.key] = r.members[p.member]
				break
			}
		}
	}
	return out
}

func sortedUnique(in []string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hashString is FNV-1a followed by the murmur3 finaliser: FNV alone spreads
// similar short names ("hub-0", "hub-1") poorly over the ring. It must never
// change: every replica has to compute the same ring.
func hashString(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return mix64(h.Sum64())
}

func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb93e1a85ec53
	x ^= x >> 33
	return x
}
