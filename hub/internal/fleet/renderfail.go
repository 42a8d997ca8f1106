package fleet

import (
	"fmt"
	"strings"
)

// SyncRenderFailed is the sync state of an app on a cluster whose latest render for that
// cluster failed or broke the app's policy: the hub has nothing new to send, the last good
// state (if any) stays desired and applied, and the row's message names the failure.
const SyncRenderFailed = "RenderFailed"

// SetRenderError records the outcome of the latest render of app for cluster, at revision:
// err is why it failed (a render error, a refusal by spec.policy or spec.secrets, a pinned
// revision that cannot be fetched), nil when it succeeded, which clears an earlier failure.
// The failure is kept on the app's report, so `flotilla status` shows the cluster×app even
// when nothing was ever desired or reported there, it is persisted with the report and
// notifications see it start and end once. Recording the same failure again changes nothing.
func (f *Fleet) SetRenderError(cluster, app, revision string, err error) {
	f.mu.Lock()
	r := f.status[cluster][app]
	if err == nil {
		if r == nil || r.RenderError == "" {
			f.mu.Unlock()
			return
		}
		r.RenderError, r.RenderRevision = "", ""
	} else {
		msg := err.Error()
		if r != nil && r.RenderError == msg && r.RenderRevision == revision {
			f.mu.Unlock()
			return
		}
		r = f.reportLocked(cluster, app)
		r.RenderError, r.RenderRevision = msg, revision
	}
	out := *r
	f.mu.Unlock()
	f.notify(cluster, &out)
}

// pruneRenderErrorsLocked forgets, after a complete load of the apps, the render failures of
// apps that no longer target a cluster the load covered, and the reports the hub made only to
// show such a failure (no agent ever reported on them). Caller holds f.mu.
func (f *Fleet) pruneRenderErrorsLocked(targets map[string]map[string]bool) {
	for c, byApp := range f.status {
		apps, covered := targets[c]
		if !covered {
			continue
		}
		for app, r := range byApp {
			if apps[app] || f.desired[c][app] != nil {
				continue
			}
			r.RenderError, r.RenderRevision = "", ""
			if r.Reported.IsZero() {
				delete(byApp, app)
			}
		}
	}
}

// renderFailedRow shows the render failure r records on row: sync RenderFailed, the health the
// agent reports of the last good state (Unknown when there is none), and the failure, with the
// revision that failed, ahead of any other message. d is the desired state, nil if none.
func renderFailedRow(row *Row, r *Report, d *Desired) {
	msg := fmt.Sprintf("RenderFailed at %s: %s", shortRev(r.RenderRevision), r.RenderError)
	switch {
	case d != nil:
		msg += " (the last good state, " + shortRev(d.Revision) + ", stays desired)"
	case r.AppliedRevision != "":
		msg += " (the agent keeps " + shortRev(r.AppliedRevision) + " applied)"
	default:
		msg += " (nothing applied)"
	}
	if row.Message != "" && !strings.HasPrefix(row.Message, "no longer desired") && !strings.HasPrefix(row.Message, "not rendered yet") {
		msg += "; " + row.Message
	}
	row.Sync = SyncRenderFailed
	row.Message = msg
}
