package rollout

import (
	"fmt"
	"slices"
	"time"

	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Each transition of a rollout is notified once per (rollout id, transition, step), also
// across a coordinator's failover. The record marks the transitions notified (Notified), and
// with replicas the coordinator sends a notification only once every other live replica has
// been answered the record that marks it (Export): a replica that takes over then either has
// the transition in its copy (it neither derives it again nor notifies it), or the coordinator
// died before any sent it, and the new owner derives it and notifies it. A replica that does
// not ask for the record within ackWait is not waited for.

// notice is a transition waiting for the followers to have the record that marks it.
type notice struct {
	rec    *Record
	t      Transition
	queued time.Time
}

// noticeKey names a transition within its rollout.
func noticeKey(t Transition) string { return fmt.Sprintf("%s/%d", t.Kind, t.Step) }

// markNotified marks ts notified in r and returns those it had not marked yet.
func (r *Record) markNotified(ts []Transition) []Transition {
	var fresh []Transition
	for _, t := range ts {
		key := noticeKey(t)
		if slices.Contains(r.Notified, key) {
			continue
		}
		r.Notified = append(r.Notified, key)
		fresh = append(fresh, t)
	}
	return fresh
}

// ackWait is how long a notification waits for a follower that does not ask for the record.
func (c *Coordinator) ackWait() time.Duration { return 5 * c.cfg.Interval }

// commitLocked marks ts notified in rec, stores rec (when changed, or when it marked any) and
// queues the notifications.
func (c *Coordinator) commitLocked(rec *Record, changed bool, ts []Transition) {
	fresh := rec.markNotified(ts)
	if changed || len(fresh) > 0 {
		c.saveLocked(rec)
	}
	for _, t := range fresh {
		c.cfg.Logger.Info("rollout "+string(t.Kind), logging.KeyApp, rec.App, logging.KeyRollout, rec.ID, logging.KeyRevision, rec.Revision,
			logging.KeyStep, t.Step+1, logging.KeyState, rec.State, logging.KeyDuration, t.Duration)
		c.outbox[rec.App] = append(c.outbox[rec.App], notice{rec: rec.Clone(), t: t, queued: c.cfg.Now()})
	}
	c.flushLocked(rec.App)
}

// flushLocked sends app's queued notifications, in order, that every follower has the record
// of (or that waited ackWait).
func (c *Coordinator) flushLocked(app string) {
	queue := c.outbox[app]
	var followers []string
	if c.peers != nil && len(queue) > 0 {
		followers = c.peers.Followers()
	}
	now := c.cfg.Now()
	sent := 0
	for _, n := range queue {
		if now.Sub(n.queued) < c.ackWait() && !c.followedLocked(app, n.rec.Seq, followers) {
			break
		}
		if c.cfg.Notify != nil {
			c.cfg.Notify(n.rec, n.t)
		}
		sent++
	}
	if sent == len(queue) {
		delete(c.outbox, app)
		return
	}
	c.outbox[app] = queue[sent:]
}

// followedLocked reports whether each follower has been answered app's record at seq or later.
func (c *Coordinator) followedLocked(app string, seq uint64, followers []string) bool {
	for _, f := range followers {
		if c.exported[app][f] < seq {
			return false
		}
	}
	return true
}

// flushAllLocked sends what waited long enough (a follower that stopped asking).
func (c *Coordinator) flushAllLocked() {
	for app := range c.outbox {
		c.flushLocked(app)
	}
}
