// Package testwait is the one place tests wait: For polls until a condition holds, Holds checks
// that one keeps holding. Tests never sleep a fixed time; a deadline here is a bound on how long
// a broken system is given, not a claim about speed (make bench measures speed).
package testwait

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Interval is how often For checks its condition; HoldsInterval how often Holds does (a state
// that must not come rarely comes and goes within a quarter second).
const (
	Interval      = 100 * time.Millisecond
	HoldsInterval = 250 * time.Millisecond
)

// For polls cond every Interval until it returns true, failing tb when it returns an error or
// timeout passes. cond's context ends with the test or the timeout.
func For(tb testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	tb.Helper()
	if err := wait.PollUntilContextTimeout(tb.Context(), Interval, timeout, true, cond); err != nil {
		tb.Fatalf("%s: not within %s: %v", what, timeout, err)
	}
}

// Until is For for a condition that needs no context and cannot fail.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	For(tb, timeout, what, func(context.Context) (bool, error) { return cond(), nil })
}

// Holds checks cond every HoldsInterval for d and fails tb at its first error. cond gets the test's
// context, not the window's: a check running as the window ends must not fail for that.
func Holds(tb testing.TB, d time.Duration, what string, cond func(ctx context.Context) error) {
	tb.Helper()
	ctx := tb.Context()
	var failure error
	err := wait.PollUntilContextTimeout(ctx, HoldsInterval, d, true, func(context.Context) (bool, error) {
		failure = cond(ctx)
		return failure != nil, nil
	})
	if failure != nil {
		tb.Fatalf("%s: %v", what, failure)
	}
	if !wait.Interrupted(err) {
		tb.Fatalf("%s: %v", what, err)
	}
}

// Stays is Holds for a condition that is simply true or false.
func Stays(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	Holds(tb, d, what, func(context.Context) error {
		if !cond() {
			return errStopped
		}
		return nil
	})
}

var errStopped = stopped{}

type stopped struct{}

func (stopped) Error() string { return "stopped holding" }
