package syncer

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// healthLoop assesses every app each HealthInterval, and at once after a sync or rollback
// (assessSoon). It only reads the app's objects and
// records a revision that became healthy in the app's state; the deletions PruneLast defers
// until then, and rollbacks, are left to a worker.
func (c *Controller) healthLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.HealthInterval)
	defer t.Stop()
	for {
		for _, a := range c.snapshot() {
			if ctx.Err() != nil {
				return
			}
			if !a.op.TryLock() {
				continue // syncing: assessed next round
			}
			actx, cancel := context.WithCancel(ctx) // SetDesired cancels it for a new revision
			c.mu.Lock()
			a.rb.cancelAssess = cancel
			c.mu.Unlock()
			start := time.Now()
			c.assess(actx, a)
			c.metrics.healthAssessed.Observe(time.Since(start).Seconds())
			c.mu.Lock()
			a.rb.cancelAssess = nil
			c.mu.Unlock()
			cancel()
			a.op.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-c.assessNow:
		}
	}
}

// assess reads the app's objects, folds their health and reports a change. Caller holds a.op.
func (c *Controller) assess(ctx context.Context, a *app) {
	c.mu.Lock()
	st, d, gone := a.applied, a.desired, c.apps[a.name] != a
	c.mu.Unlock()
	if gone {
		return
	}
	var refs []apply.ObjectRef
	switch {
	case st != nil:
		refs = fromStateRefs(st.Inventory)
	case d != nil:
		refs = c.applier.Refs(ctx, d.revision())
	default:
		return
	}
	policy, hp := SyncPolicy{}, HealthPolicy{}
	switch {
	case d != nil && (st == nil || d.Digest == st.Digest):
		policy, hp = d.Policy, d.Health
	case st != nil:
		policy, hp = fromStatePolicy(st.Policy)
	}
	assessor := c.assessor(a, hp.Rules)
	resources := make([]ResourceStatus, 0, len(refs))
	statuses := make([]health.Status, 0, len(refs))
	for _, r := range refs {
		var s health.Status
		var msg string
		live, err := c.applier.Get(ctx, r)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s, msg = health.Unknown, fmt.Sprintf("cannot read: %v", err)
		} else {
			s, msg = assessor.Assess(live)
		}
		statuses = append(statuses, s)
		resources = append(resources, ResourceStatus{Object: r, Health: string(s), Message: msg})
	}
	slices.SortFunc(resources, func(x, y ResourceStatus) int { return strings.Compare(x.Object.Key(), y.Object.Key()) })
	worst := health.Worst(statuses...)
	var msg string
	for _, r := range resources {
		if worst != health.Healthy && r.Health == string(worst) {
			msg = r.Object.String() + ": " + r.Message
			break
		}
	}
	pastDeadline := false
	if dl := hp.ProgressDeadline; dl > 0 && st != nil && worst == health.Progressing && time.Since(st.AppliedAt) > dl {
		worst, msg = health.Degraded, fmt.Sprintf("not healthy within %s of the sync: %s", dl, msg)
		pastDeadline = true
	}
	if ctx.Err() != nil {
		return // cancelled: a new revision arrived
	}

	if st != nil && worst == health.Healthy {
		c.recordHealthy(ctx, a, st) // before reporting Healthy: whoever sees it sees it recorded
	}
	c.mu.Lock()
	a.health.assessed(a.applied, worst, msg, resources) // st, or its copy recordHealthy just saved
	follow := st != nil && worst == health.Healthy && policy.PruneLast && policy.Prune && a.sync.stale > 0
	if reason := unhealthyReason(worst, msg, pastDeadline); reason != "" && hp.AutoRollback && a.applied == st && canRollBack(st) {
		a.rb.due, follow = &rollbackDue{digest: st.Digest, reason: reason}, true
	}
	// Objects gone that the last drift check did not see gone (deleted while the agent was
	// down, or an event missed): check again.
	if st != nil && countMissing(resources) != countDrift(a.drift.items, DriftMissing) {
		for _, r := range resources {
			if r.Health == string(health.Missing) {
				a.drift.note(r.Object)
			}
		}
		follow = true
	}
	c.mu.Unlock()
	c.publish(a, false)
	if follow {
		c.queue.Add(a.name)
	}
}

// assessSoon asks the health loop to assess the apps now rather than at its next tick.
func (c *Controller) assessSoon() {
	select {
	case c.assessNow <- struct{}{}:
	default:
	}
}

// recordHealthy records the applied revision, now healthy, as the last healthy one (with its
// bundle: the rollback target). It writes only the app's state. Caller holds a.op.
func (c *Controller) recordHealthy(ctx context.Context, a *app, st *state.AppState) {
	if st.HealthyRevision == st.Revision && st.HealthyDigest == st.Digest {
		return
	}
	next := *st
	next.HealthyRevision, next.HealthyDigest, next.HealthyBundle = st.Revision, st.Digest, st.Bundle
	_ = c.save(ctx, a, &next) // a failure is retried (save.go)
	c.mu.Lock()
	if a.applied == st {
		a.applied, a.health.of = &next, &next
	}
	c.mu.Unlock()
	c.log.Info("revision healthy", logging.KeyApp, a.name, logging.KeyRevision, st.Revision)
}

// pruneLast runs the prune PruneLast deferred, once the revision is healthy, and retries
// deletions that failed. Caller holds a.op.
func (c *Controller) pruneLast(ctx context.Context, a *app) {
	c.mu.Lock()
	st, d := a.applied, a.desired
	due := st != nil && d != nil && d.Digest == st.Digest && d.Policy.Prune &&
		(a.sync.pruneFailed > 0 || a.health.healthyNow(st) && a.sync.stale > 0 && d.Policy.PruneLast)
	c.mu.Unlock()
	if !due {
		return
	}
	log := c.log.With(logging.KeyApp, a.name, logging.KeyRevision, st.Revision)
	res, err := c.prune(ctx, d, fromStateRefs(st.Inventory), st.Waves)
	if err != nil {
		log.Warn("prune after healthy failed", logging.Err(err))
		c.queue.AddAfter(a.name, backoff(Retry{}, 1))
		return
	}
	log.Info("pruned after healthy", keyPruned, res.Count(apply.Pruned), keyHeld, res.Count(apply.Held))
	next := *st
	next.Inventory = toStateRefs(res.Inventory)
	next.Waves = keptWaves(st.Waves, res.Inventory, nil)
	_ = c.save(ctx, a, &next) // a failure is retried (save.go)
	c.mu.Lock()
	var retry time.Duration
	if a.applied == st {
		a.applied, a.health.of = &next, &next
		retry = a.sync.changed(res)
	}
	c.mu.Unlock()
	c.retryPrune(a, retry)
}

// publish reports the app's status when it changed since the last report, or always when
// force is set.
func (c *Controller) publish(a *app, force bool) {
	a.pub.Lock()
	defer a.pub.Unlock()
	c.mu.Lock()
	if c.apps[a.name] != a {
		c.mu.Unlock()
		c.wakeDependents(a.name) // removed: apps waiting for it are told so
		return
	}
	s := c.statusOf(a)
	if !force && a.reported != nil && reflect.DeepEqual(*a.reported, s) {
		c.mu.Unlock()
		return
	}
	a.reported = &s
	c.mu.Unlock()
	c.cfg.Reporter.Status(s)
	c.wakeDependents(a.name) // depends.go: apps waiting for it judge it again
}

// statusOf builds the app's status. Caller holds Controller.mu.
func (c *Controller) statusOf(a *app) AppStatus {
	d, st := a.desired, a.applied
	h := &a.health
	s := AppStatus{App: a.name, Health: string(h.status), Resources: slices.Clone(h.resources)}
	healthMsg := h.msg
	if st != nil && (h.of == nil || h.of.Digest != st.Digest) && h.status != "" {
		// What was assessed is another revision's health (a sync or rollback since): never
		// report it for this one.
		s.Health, s.Resources = string(health.Progressing), nil
		healthMsg = fmt.Sprintf("revision %s applied; its health is being assessed", st.Revision)
	}
	if s.Health == "" {
		s.Health = string(health.Unknown)
	}
	var msgs []string
	var rb *state.RolledBack
	if st != nil {
		s.Generation, s.AppliedRevision, s.AppliedDigest = st.Generation, st.Revision, st.Digest
		s.HealthyRevision, s.AppliedAt = st.HealthyRevision, st.AppliedAt
		rb = st.RolledBack
	}
	// A rollback mark comes first in the message (rollback.go, "Reporting").
	switch {
	case rb == nil:
	case rb.Failed:
		s.Health = string(health.Degraded)
		msgs = append(msgs, fmt.Sprintf("%s: revision %s %s; re-applying revision %s failed, nothing more is done: %s",
			EventRollbackFailed, rb.Revision, rb.Reason, st.HealthyRevision, rb.Error))
	default:
		s.Health, s.RolledBackRevision = string(health.Degraded), rb.Revision
		msgs = append(msgs, fmt.Sprintf("%s: revision %s %s", EventRolledBack, rb.Revision, rb.Reason))
	}
	s.Drift = slices.Clone(a.drift.items)
	s.Events = c.warnings.of(a.name)
	switch {
	case d == nil:
		s.Sync = SyncUnknown
	case st != nil && st.Digest == d.Digest && !a.sync.pending && len(a.drift.items) == 0 && (rb == nil || !rb.Failed):
		s.Sync = SyncSynced
	default:
		s.Sync = SyncOutOfSync
	}
	if w := a.deps.waitingFor(d); w != "" && (st == nil || st.Digest != d.Digest) {
		msgs = append(msgs, w) // depends.go
	}
	if d != nil {
		s.Generation = d.Generation
		held := rb != nil && rb.Revision == d.Revision && rb.Digest == d.Digest
		if (st == nil || st.Digest != d.Digest) && !d.Policy.Automated && !d.SyncRequested && !held {
			msgs = append(msgs, fmt.Sprintf("revision %s not applied: automated sync is off", d.Revision))
		}
	}
	if n := len(a.drift.items); n > 0 && st != nil {
		msgs = append(msgs, fmt.Sprintf("%d objects differ from revision %s", n, st.Revision))
		if c := countContested(a.drift.items); c > 0 {
			msgs = append(msgs, fmt.Sprintf("%d contested: another actor keeps changing them back, self-heal is backing off", c))
		}
	}
	for _, m := range []string{a.sync.progress, a.sync.err, a.sync.notes, healthMsg} {
		if m != "" {
			msgs = append(msgs, m)
		}
	}
	s.Message = strings.Join(msgs, "; ")
	a.unsavedStatus(&s)
	return s
}

// ruleSet is an app's custom health rules, compiled once: they change only with the policy.
type ruleSet struct {
	rules    []health.Rule
	assessor *health.Assessor
}

// assessor returns the app's Assessor for rules, compiling them when they changed. A rule that
// does not compile is logged, and the objects it covers are Unknown naming it (health.NewAssessor).
// Caller holds a.op.
func (c *Controller) assessor(a *app, rules []health.Rule) *health.Assessor {
	if r := &a.health.rules; r.assessor != nil && slices.Equal(r.rules, rules) {
		return r.assessor
	}
	as, err := health.NewAssessor(rules)
	if err != nil {
		c.log.Warn("custom health rules do not compile", logging.KeyApp, a.name, logging.Err(err))
	}
	a.health.rules = ruleSet{rules: slices.Clone(rules), assessor: as}
	return as
}

func countMissing(rs []ResourceStatus) int {
	n := 0
	for _, r := range rs {
		if r.Health == string(health.Missing) {
			n++
		}
	}
	return n
}

func countContested(items []DriftItem) int {
	n := 0
	for _, d := range items {
		if d.Contested {
			n++
		}
	}
	return n
}

func countDrift(items []DriftItem, typ string) int {
	n := 0
	for _, d := range items {
		if d.Type == typ {
			n++
		}
	}
	return n
}
