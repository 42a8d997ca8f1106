package cluster

import (
	"slices"
	"strings"
	"sync"
)

// view is one consistent picture of the cluster: the live members and the
// epochs they claim with. It is immutable once built.
type view struct {
	members []Member          // sorted by name
	epochs  map[string]uint64 // member name → packed epoch
	ring    *Ring

	mu   sync.Mutex // guards last
	last *assignment
}

// assignment caches the last Assign over the view's ring: callers ask Owner
// for one agent at a time with the same list of clusters.
type assignment struct {
	keys   []string
	owners map[string]string
}

// buildView makes the view of the local replica self, whose counter is
// counter, from the members the tracker recorded.
func buildView(self, grpc string, counter uint64, nodes map[string]nodeMeta) *view {
	members := make([]Member, 0, len(nodes)+1)
	epochs := make(map[string]uint64, len(nodes)+1)
	for name, meta := range nodes {
		if name != self {
			members = append(members, Member{Name: name, GRPCAddr: meta.GRPC})
			epochs[name] = packEpoch(meta.Epoch, name)
		}
	}
	members = append(members, Member{Name: self, GRPCAddr: grpc})
	epochs[self] = packEpoch(counter, self)
	return newView(members, epochs)
}

func newView(members []Member, epochs map[string]uint64) *view {
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	names := make([]string, len(members))
	for i, m := range members {
		names[i] = m.Name
	}
	return &view{
		members: members,
		epochs:  epochs,
		ring:    NewRing(names, DefaultVNodes, DefaultLoadFactor),
	}
}

// equal reports whether two views hold the same members and epochs.
func (v *view) equal(o *view) bool {
	if o == nil {
		return false
	}
	if !slices.Equal(v.members, o.members) || len(v.epochs) != len(o.epochs) {
		return false
	}
	for k, e := range v.epochs {
		if oe, ok := o.epochs[k]; !ok || oe != e {
			return false
		}
	}
	return true
}

// owner returns the member that owns cluster among all (cluster is added to
// all when missing) and that member's epoch.
func (v *view) owner(cluster string, all []string) (Member, uint64) {
	owners := v.assign(all)
	name, ok := owners[cluster]
	if !ok {
		name, ok = v.ring.Assign(append(slices.Clip(all), cluster))[cluster]
	}
	if !ok { // an empty name or no members
		return Member{}, 0
	}
	i, found := slices.BinarySearchFunc(v.members, name, func(m Member, n string) int {
		return strings.Compare(m.Name, n)
	})
	if !found {
		return Member{}, 0
	}
	return v.members[i], v.epochs[name]
}

// assign returns the assignment of all over the view, reusing the last one
// when all is the same list in the same order.
func (v *view) assign(all []string) map[string]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.last == nil || !slices.Equal(v.last.keys, all) {
		v.last = &assignment{keys: slices.Clone(all), owners: v.ring.Assign(all)}
	}
	return v.last.owners
}
