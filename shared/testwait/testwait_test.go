package testwait

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// recorder is a testing.TB that records a failure instead of stopping the test.
type recorder struct {
	testing.TB
	failed atomic.Bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(string, ...any) {
	r.failed.Store(true)
	panic(errFatal)
}

var errFatal = errors.New("fatal")

// run calls f with a recorder and reports whether it failed.
func run(t *testing.T, f func(tb testing.TB)) bool {
	r := &recorder{TB: t}
	func() {
		defer func() {
			if p := recover(); p != nil && p != errFatal {
				panic(p)
			}
		}()
		f(r)
	}()
	return r.failed.Load()
}

func TestForAndUntil(t *testing.T) {
	var n atomic.Int32
	if run(t, func(tb testing.TB) { Until(tb, 5*time.Second, "third call", func() bool { return n.Add(1) >= 3 }) }) {
		t.Fatal("Until failed although the condition came true")
	}
	if !run(t, func(tb testing.TB) { Until(tb, 200*time.Millisecond, "never", func() bool { return false }) }) {
		t.Fatal("Until passed although the condition never came true")
	}
	if !run(t, func(tb testing.TB) {
		For(tb, 5*time.Second, "error", func(context.Context) (bool, error) { return false, errors.New("broken") })
	}) {
		t.Fatal("For passed although the condition failed")
	}
}

func TestHoldsAndStays(t *testing.T) {
	if run(t, func(tb testing.TB) { Stays(tb, 200*time.Millisecond, "true", func() bool { return true }) }) {
		t.Fatal("Stays failed although the condition held")
	}
	var n atomic.Int32
	if !run(t, func(tb testing.TB) { Stays(tb, 5*time.Second, "flips", func() bool { return n.Add(1) < 3 }) }) {
		t.Fatal("Stays passed although the condition stopped holding")
	}
	if !run(t, func(tb testing.TB) {
		Holds(tb, 5*time.Second, "error", func(context.Context) error { return errors.New("broken") })
	}) {
		t.Fatal("Holds passed although the condition failed")
	}
}
