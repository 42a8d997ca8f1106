package syncer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
)

// The controller's calls of the engine (agent/internal/apply). Each runs under the sync
// deadline (Config.SyncTimeout): a call still running then is cancelled, and fails with a
// *DeadlineError, a transient failure retried with backoff. Objects written before it stay in
// the inventory as for any failure.

// DeadlineError is an engine call cut off by the sync deadline.
type DeadlineError struct {
	Timeout time.Duration
	Err     error
}

func (e *DeadlineError) Error() string {
	return fmt.Sprintf("not done within the sync timeout of %s (--sync-timeout): %v", e.Timeout, e.Err)
}

func (e *DeadlineError) Unwrap() error { return e.Err }

// errDeadline is the cause of a context ended by the sync deadline.
var errDeadline = errors.New("sync deadline")

// bounded runs fn under the sync deadline; its error names the deadline when that ended it.
func (c *Controller) bounded(ctx context.Context, fn func(context.Context) error) error {
	bctx, cancel := context.WithTimeoutCause(ctx, c.cfg.SyncTimeout, errDeadline)
	defer cancel()
	err := fn(bctx)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(bctx), errDeadline) {
		return &DeadlineError{Timeout: c.cfg.SyncTimeout, Err: err}
	}
	return err
}

// apply applies d, after failing a revision whose EncryptedSecrets could not be decrypted
// (encrypted.go).
// waves are the sync waves prev's objects were applied in (a prune deletes the highest first).
func (c *Controller) apply(ctx context.Context, d *Desired, prev []apply.ObjectRef, waves map[string]int) (res *apply.ChangeSet, err error) {
	if d.decryptErr != nil {
		return nil, d.decryptErr
	}
	rev := d.revision()
	rev.Waves = waves
	err = c.bounded(ctx, func(ctx context.Context) error {
		res, err = c.applier.Apply(ctx, rev, prev)
		return err
	})
	return res, err
}

// heal re-applies the objects of d that refs name, as apply does.
func (c *Controller) heal(ctx context.Context, d *Desired, refs, inventory []apply.ObjectRef) (res *apply.ChangeSet, err error) {
	if d.decryptErr != nil {
		return nil, d.decryptErr
	}
	err = c.bounded(ctx, func(ctx context.Context) error {
		res, err = c.applier.Heal(ctx, d.revision(), refs, inventory)
		return err
	})
	return res, err
}

// prune deletes from inventory what d no longer holds (PruneLast's deferred prune).
// waves as for apply.
func (c *Controller) prune(ctx context.Context, d *Desired, inventory []apply.ObjectRef, waves map[string]int) (res *apply.ChangeSet, err error) {
	rev := d.revision()
	rev.Waves = waves
	err = c.bounded(ctx, func(ctx context.Context) error {
		res, err = c.applier.Prune(ctx, rev, inventory)
		return err
	})
	return res, err
}

// drifted compares d's objects (only those whose keys only holds, when set) with the cluster.
func (c *Controller) drifted(ctx context.Context, d *Desired, only map[string]bool) (diffs []apply.Drift, err error) {
	err = c.bounded(ctx, func(ctx context.Context) error {
		diffs, err = c.applier.Drift(ctx, d.revision(), only)
		return err
	})
	return diffs, err
}

// deleteInventory deletes a removed app's objects; what the deadline cut off stays in the
// ChangeSet's Inventory, to be retried.
func (c *Controller) deleteInventory(ctx context.Context, app string, inventory []apply.ObjectRef) (res *apply.ChangeSet) {
	_ = c.bounded(ctx, func(ctx context.Context) error {
		res = c.applier.DeleteInventory(ctx, app, inventory)
		return nil
	})
	return res
}

// release lets a removed app's objects go (preserveResourcesOnDeletion), as deleteInventory.
func (c *Controller) release(ctx context.Context, app string, inventory []apply.ObjectRef) (res *apply.ChangeSet) {
	_ = c.bounded(ctx, func(ctx context.Context) error {
		res = c.applier.Release(ctx, app, inventory)
		return nil
	})
	return res
}
