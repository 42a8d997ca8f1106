package server

import (
	"testing"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// TestHookResult: a hook's outcome as `flotilla history` shows it.
func TestHookResult(t *testing.T) {
	for _, tc := range []struct {
		run  *flotillav1.HookRun
		want string
	}{
		{&flotillav1.HookRun{Phase: "PreSync", Result: "Succeeded", StartedUnixMs: 1000, FinishedUnixMs: 4240,
			Object: &flotillav1.ObjectRef{Group: "batch", Kind: "Job", Namespace: "api", Name: "migrate"}},
			"PreSync hook Job.batch/api/migrate: Succeeded (3.2s)"},
		{&flotillav1.HookRun{Phase: "SyncFail", Result: "Failed", Message: "failed: BackoffLimitExceeded",
			Object: &flotillav1.ObjectRef{Kind: "Pod", Namespace: "api", Name: "alert"}},
			"SyncFail hook Pod/api/alert: Failed: failed: BackoffLimitExceeded"},
		{&flotillav1.HookRun{Phase: "PostSync", Result: "Succeeded", Object: &flotillav1.ObjectRef{Group: "example.dev", Kind: "Check", Name: "smoke"}},
			"PostSync hook Check.example.dev/smoke: Succeeded"},
	} {
		if got := hookResult(tc.run); got != tc.want {
			t.Errorf("hookResult = %q, want %q", got, tc.want)
		}
	}
}
