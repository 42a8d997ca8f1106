package cluster

import (
	"log/slog"
	"sync"

	"github.com/flotilla-dev/flotilla/shared/logging"
)

// owners is the ring of live replicas (Membership).
type owners interface {
	Local() Member
	Owner(cluster string, all []string) (Member, uint64)
}

var _ owners = (*Membership)(nil)

// Ownership answers which replica owns each cluster, over the registered clusters keys
// returns: every one, revoked ones included, so that a revocation moves no other cluster, and
// every replica with the same registry and members computes the same owners. Without
// replicas (a hub that runs alone) this replica owns every cluster, with epoch 0.
type Ownership struct {
	replicas owners // nil for a hub that runs alone
	keys     func() ([]string, error)
	log      *slog.Logger

	mu        sync.Mutex
	onRelease []func(mine func(cluster string) bool)
}

// NewOwnership returns the ownership of the clusters keys lists over replicas (nil for a hub
// that runs alone).
func NewOwnership(replicas owners, keys func() ([]string, error), log *slog.Logger) *Ownership {
	if log == nil {
		log = slog.Default()
	}
	return &Ownership{replicas: replicas, keys: keys, log: log}
}

// Owner is who owns a cluster and the epoch of that claim; Mine when it is this replica.
type Owner struct {
	Member Member
	Epoch  uint64
	Mine   bool
}

// Owners is who owns each cluster, over one reading of the registry.
type Owners struct {
	o    *Ownership
	keys []string
}

// Alone reports whether this hub runs alone, without replicas.
func (o *Ownership) Alone() bool { return o.replicas == nil }

// Now returns the owners over one reading of the registry.
func (o *Ownership) Now() (Owners, error) {
	if o.Alone() {
		return Owners{o: o}, nil
	}
	keys, err := o.keys()
	if err != nil {
		return Owners{}, err
	}
	return Owners{o: o, keys: keys}, nil
}

// Of returns the owner of cluster.
func (w Owners) Of(cluster string) Owner {
	if w.o.Alone() {
		return Owner{Mine: true}
	}
	m, epoch := w.o.replicas.Owner(cluster, w.keys)
	return Owner{Member: m, Epoch: epoch, Mine: m.Name == "" || m.Name == w.o.replicas.Local().Name}
}

// Mine reports whether this replica owns cluster.
func (w Owners) Mine(cluster string) bool { return w.Of(cluster).Mine }

// Owned returns a function reporting whether this replica owns a cluster, over one reading
// of the registry; on a hub that runs alone it is always true. While the registry cannot be
// read every cluster counts as owned: that renders more than needed, but drops no state
// (agents are not served meanwhile: their claim fails).
func (o *Ownership) Owned() func(cluster string) bool {
	if o.Alone() {
		return func(string) bool { return true }
	}
	now, err := o.Now()
	if err != nil {
		o.log.Warn("cluster registry unreadable; every cluster counts as owned here", logging.Err(err))
		return func(string) bool { return true }
	}
	return now.Mine
}

// OnRelease registers f, which Release calls with the clusters this replica owns so that it
// gives up the others. Register before the replica runs.
func (o *Ownership) OnRelease(f func(mine func(cluster string) bool)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.onRelease = append(o.onRelease, f)
}

// Release gives up the clusters this replica no longer owns, over one reading of the owners,
// which it returns: every function registered with OnRelease is called with it, in order. On
// a hub that runs alone it does nothing and owns them all.
func (o *Ownership) Release() func(cluster string) bool {
	mine := o.Owned()
	if o.Alone() {
		return mine
	}
	o.mu.Lock()
	fs := o.onRelease
	o.mu.Unlock()
	for _, f := range fs {
		f(mine)
	}
	return mine
}
