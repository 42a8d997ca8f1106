package hubclient

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// This file chooses the hub replica of each connection attempt. Each cluster is owned by one
// replica; another replica answers Hello with a Redirect to the owner, which the client
// follows at once. Welcome and Redirect carry the addresses of every live replica, which the
// client remembers next to --hub and falls back to, in turn, when the owner is unreachable.
//
// Ownership claims carry an epoch (hub/internal/cluster). While a stream is up the client
// ignores a Redirect whose epoch is older than the claim of that stream, and while following
// redirects it ignores a claim older than the redirect that sent it there; once a stream has
// ended, or every address failed in turn, it follows the next owner whatever its epoch (a
// replica that restarted claims low again).

// maxHops is how many redirects in a row are followed at once, without a Welcome in between;
// past it the client backs off before following more (replicas that disagree for a moment
// about who owns the cluster must not make it spin).
const maxHops = 4

// maxQuickTurns is how many turns in a row end in a short back-off because a replica
// answered (with a redirect) though none welcomed the agent: the replicas are alive and
// only converging on who owns the cluster (one of them died a moment ago), so the agent
// asks again soon rather than after an ever longer back-off. Past it, the back-off grows.
const maxQuickTurns = 20

// errStaleClaim ends a connection attempt whose hub claims the cluster with an older epoch
// than the claim the client followed.
var errStaleClaim = errors.New("hub replica claims the cluster with an older ownership epoch than another replica did; ignored")

// redirectError ends a session on a Redirect to be followed.
type redirectError struct {
	addr  string
	epoch uint64
}

func (e *redirectError) Error() string {
	return fmt.Sprintf("hub replica redirected this agent to %s, which owns its cluster (epoch %#x)", e.addr, e.epoch)
}

// route is the client's choice of hub address. It is safe for concurrent use.
type route struct {
	mu      sync.Mutex
	static  []string // --hub, in order
	learned []string // the replicas named by the latest Welcome or Redirect
	cursor  int      // the next address in turn, an index into list()
	next    string   // the address of the next attempt, before those in turn: a redirect's target
	inTurn  bool     // the current attempt is the address in turn (not next)
	floor   uint64   // claims with a lower epoch are ignored
	up      bool     // the current session was welcomed
	hops    int      // redirects followed since the last Welcome or back-off
	failed  int      // failures since the last Welcome or back-off

	answered   bool // a replica answered in the current turn, with a redirect
	quick      bool // the turn that just ended calls for the shortest back-off
	quickTurns int  // turns in a row that did, since the last Welcome
}

func newRoute(addrs []string) *route { return &route{static: slices.Clone(addrs)} }

// list is every known address: --hub first, then the replicas learnt.
func (r *route) list() []string {
	out := slices.Clone(r.static)
	for _, a := range r.learned {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// pick returns the address of the next attempt.
func (r *route) pick() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inTurn = r.next == ""
	if a := r.next; a != "" {
		r.next = ""
		return a
	}
	l := r.list()
	if len(l) == 0 {
		return ""
	}
	return l[r.cursor%len(l)]
}

func (r *route) learn(replicas []string) {
	if len(replicas) > 0 {
		r.learned = slices.Clone(replicas)
	}
}

// welcomed records the Welcome of a session; it returns errStaleClaim when the claim is older
// than the one that sent the client here.
func (r *route) welcomed(epoch uint64, replicas []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if epoch < r.floor {
		return errStaleClaim
	}
	r.floor, r.up, r.hops, r.failed = epoch, true, 0, 0
	r.answered, r.quick, r.quickTurns = false, false, 0
	r.learn(replicas)
	return nil
}

// redirected handles a Redirect, in place of Welcome or on a stream that is up: it returns
// the *redirectError to end the session with and follow, or, for a claim older than the
// current one, errStaleClaim in place of Welcome and nil on a stream that is up (the stream
// goes on).
func (r *route) redirected(addr string, epoch uint64, replicas []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.up {
		r.answered = true
	}
	if epoch < r.floor || addr == "" {
		if r.up {
			return nil
		}
		return errStaleClaim
	}
	r.floor = epoch
	r.learn(replicas)
	return &redirectError{addr: addr, epoch: epoch}
}

// ended records the end of the session with addr and its error. It returns whether to make
// the next attempt at once (a redirect to follow, or fewer failures than known addresses
// since the last Welcome or back-off) and whether the session had been welcomed.
func (r *route) ended(addr string, err error) (now, wasUp bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	wasUp, r.up = r.up, false
	if r.inTurn && !wasUp {
		r.cursor++ // whatever comes of it, the next attempt in turn is the next address
	}
	var rd *redirectError
	switch {
	case errors.As(err, &rd):
		r.next = rd.addr
		r.hops++
		if r.hops > maxHops {
			r.hops = 0
			r.endTurn()
			return false, wasUp
		}
		return true, wasUp
	case wasUp:
		// The stream ended: the next owner is followed whatever its epoch, and the replica
		// just left is asked first (it redirects if the cluster moved).
		r.floor, r.failed, r.next = 0, 0, addr
		return false, true
	}
	if l := r.list(); !r.inTurn && len(l) > 0 && l[r.cursor%len(l)] == addr {
		r.cursor++ // it failed out of turn: its turn would only fail again
	}
	r.failed++
	if r.failed < len(r.list()) {
		return true, false
	}
	// Every address failed in turn: back off, then take any claim.
	r.failed, r.hops, r.floor = 0, 0, 0
	r.endTurn()
	return false, false
}

// endTurn ends a turn that welcomed nobody.
func (r *route) endTurn() {
	r.quick = r.answered && r.quickTurns < maxQuickTurns
	if r.quick {
		r.quickTurns++
	}
	r.answered = false
}

// converging reports whether the turn that just ended, though nobody welcomed the agent,
// calls for the shortest back-off: a replica answered (see maxQuickTurns).
func (r *route) converging() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.quick
}

// settledStream is how long a welcomed stream must have lasted for its end to reset the
// reconnection backoff: an agent whose replica died or gave its cluster away re-homes within
// a second or two.
const settledStream = 5 * time.Second
