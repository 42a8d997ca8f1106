// Package pins keeps the operator's rollback pins: an app held on chosen clusters at an
// earlier revision, whatever Git's target revision says, until cleared (`flotilla rollback`).
// Pins live in the store, replicate between hub replicas as whole records (store.MergePin),
// and are loaded into the fleet, whose reconciler renders the pinned revision.
package pins

import (
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/store"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// MaxRevision bounds the revision of a pin: a commit, tag or branch name.
const MaxRevision = 255

// ErrNoMatchingCluster: a change named no cluster the app targets (or, to clear, no pin).
var ErrNoMatchingCluster = errors.New("no matching cluster")

// Store is what pins need of the store (store.Store).
type Store interface {
	PutPin(p store.Pin) (store.Pin, error)
	MergePin(p store.Pin) (bool, error)
	ListPins() ([]store.Pin, error)
	ListPinRecords() ([]store.Pin, error)
}

// pinnedFleet is the fleet, which renders the pinned revisions.
type pinnedFleet interface {
	SetPins(pins map[string]map[string]string)
}

// Pins keeps the pins in the store and the fleet in step with them.
type Pins struct {
	store Store
	fleet pinnedFleet
	log   *slog.Logger

	mu sync.Mutex // serialises loading the pins into the fleet
}

// New returns the pins kept in st, applied to fl.
func New(st Store, fl pinnedFleet, log *slog.Logger) *Pins {
	if log == nil {
		log = slog.Default()
	}
	return &Pins{store: st, fleet: fl, log: log}
}

// Change is an operator's change of the pins of one app: pin it to Revision, or Clear its
// pins, on the clusters named by Cluster (empty: any) and by a selector (InSelector; nil:
// none given).
type Change struct {
	App        string
	Revision   string
	Clear      bool
	Cluster    string
	InSelector map[string]bool
	Actor      string
	Time       time.Time
}

func (c Change) names(cluster string) bool {
	return (c.Cluster == "" || cluster == c.Cluster) && (c.InSelector == nil || c.InSelector[cluster])
}

// Apply makes the change on the clusters it names among targeted (those the app targets), or,
// to clear, among the app's pins, and loads the pins into the fleet. It returns the clusters,
// sorted, and the records stored, to replicate, also when it fails part of the way. The
// error is ErrNoMatchingCluster when it names none.
func (p *Pins) Apply(c Change, targeted []string) (clusters []string, changed []store.Pin, err error) {
	for _, name := range targeted {
		if c.names(name) {
			clusters = append(clusters, name)
		}
	}
	if c.Clear {
		list, err := p.store.ListPins()
		if err != nil {
			return nil, nil, fmt.Errorf("pins: %w", err)
		}
		clusters = clusters[:0]
		for _, pin := range list {
			if pin.App == c.App && c.names(pin.Cluster) {
				clusters = append(clusters, pin.Cluster)
			}
		}
	}
	if len(clusters) == 0 {
		return nil, nil, ErrNoMatchingCluster
	}
	sort.Strings(clusters)
	for _, name := range clusters {
		rec, err := p.store.PutPin(store.Pin{App: c.App, Cluster: name, Revision: c.Revision, Actor: c.Actor, Time: c.Time, Cleared: c.Clear})
		if err != nil {
			return nil, changed, fmt.Errorf("pin: %w", err)
		}
		changed = append(changed, rec)
	}
	if err := p.Load(); err != nil {
		return nil, changed, fmt.Errorf("pins: %w", err)
	}
	return clusters, changed, nil
}

// Load loads the pins in force from the store into the fleet. Loads run one at a time, so
// that a slower one never installs an older list over a newer one.
func (p *Pins) Load() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	list, err := p.store.ListPins()
	if err != nil {
		return err
	}
	pins := map[string]map[string]string{}
	for _, pin := range list {
		if pins[pin.App] == nil {
			pins[pin.App] = map[string]string{}
		}
		pins[pin.App][pin.Cluster] = pin.Revision
	}
	p.fleet.SetPins(pins)
	return nil
}

// Merge folds pin records from another replica into the store and, when any changed, into
// the fleet. It returns how many changed and whether one of those concerns a cluster owned
// says is this replica's (whose rendering must then change at once).
func (p *Pins) Merge(records []store.Pin, owned func(cluster string) bool) (n int, mine bool) {
	for _, rec := range records {
		changed, err := p.store.MergePin(rec)
		if err != nil {
			p.log.Warn("replicated pin not stored", logging.KeyApp, rec.App, logging.KeyCluster, rec.Cluster, logging.Err(err))
			continue
		}
		if changed {
			n++
			mine = mine || owned(rec.Cluster)
		}
	}
	if n == 0 {
		return 0, false
	}
	if err := p.Load(); err != nil {
		p.log.Warn("operator pins not loaded", logging.Err(err))
	}
	return n, mine
}

// Records returns every pin record, cleared ones included, for a replica to merge.
func (p *Pins) Records() ([]store.Pin, error) { return p.store.ListPinRecords() }
