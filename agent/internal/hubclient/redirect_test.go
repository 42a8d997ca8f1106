package hubclient

import (
	"errors"
	"io"
	"slices"
	"testing"
)

// session plays one connection attempt against r: pick, then what the hub answered.
type step struct {
	wantAddr string
	// answer: "welcome", "redirect", "down" (unreachable or refused), "end" (a welcomed
	// stream ending), "moved" (a Redirect on a stream that is up).
	answer   string
	epoch    uint64
	to       string   // redirect target
	replicas []string // carried by Welcome or Redirect
	wantNow  bool     // the next attempt is made at once
	wantErr  error    // from welcomed or redirected, when it is an error of its own
}

func play(t *testing.T, r *route, steps []step) {
	t.Helper()
	up := false
	var upAddr string
	for i, s := range steps {
		var addr string
		if s.answer == "end" || s.answer == "moved" {
			if !up {
				t.Fatalf("step %d: %s without a stream up", i, s.answer)
			}
			addr = upAddr
		} else {
			addr = r.pick()
		}
		if s.wantAddr != "" && addr != s.wantAddr {
			t.Fatalf("step %d: dialled %s, want %s", i, addr, s.wantAddr)
		}
		var err error
		switch s.answer {
		case "welcome":
			if err = r.welcomed(s.epoch, s.replicas); err == nil {
				up, upAddr = true, addr
				continue
			}
		case "redirect":
			err = r.redirected(s.to, s.epoch, s.replicas)
		case "moved":
			if err = r.redirected(s.to, s.epoch, s.replicas); err == nil {
				continue // ignored: the stream goes on
			}
		case "down":
			err = errors.New("connection refused")
		case "end":
			err = io.EOF
		}
		if s.wantErr != nil && !errors.Is(err, s.wantErr) {
			t.Fatalf("step %d: error %v, want %v", i, err, s.wantErr)
		}
		up = false
		if now, _ := r.ended(addr, err); now != s.wantNow {
			t.Fatalf("step %d (%s at %s): next attempt at once = %v, want %v", i, s.answer, addr, now, s.wantNow)
		}
	}
}

func TestRoute(t *testing.T) {
	all := []string{"a:1", "b:1", "c:1"}
	tests := []struct {
		name   string
		static []string
		steps  []step
	}{
		{
			name: "single hub: welcome, stream ends, the same hub again after a back-off", static: []string{"a:1"},
			steps: []step{
				{wantAddr: "a:1", answer: "welcome"},
				{answer: "end"},
				{wantAddr: "a:1", answer: "down"},
				{wantAddr: "a:1", answer: "welcome"},
			},
		},
		{
			name: "redirect is followed at once", static: []string{"a:1"},
			steps: []step{
				{wantAddr: "a:1", answer: "redirect", to: "b:1", epoch: 5 << 32, replicas: all, wantNow: true},
				{wantAddr: "b:1", answer: "welcome", epoch: 5 << 32, replicas: all},
			},
		},
		{
			name: "an owner that is down: fall back to every known replica in turn, then back off", static: []string{"a:1"},
			steps: []step{
				{wantAddr: "a:1", answer: "welcome", epoch: 3 << 32, replicas: all},
				{answer: "end"},
				{wantAddr: "a:1", answer: "down", wantNow: true}, // the replica just left is asked first
				{wantAddr: "b:1", answer: "redirect", to: "a:1", epoch: 3 << 32, wantNow: true},
				{wantAddr: "a:1", answer: "down", wantNow: true},
				{wantAddr: "c:1", answer: "redirect", to: "a:1", epoch: 3 << 32, wantNow: true},
				{wantAddr: "a:1", answer: "down"}, // three failures, as many as addresses: back off
				{wantAddr: "b:1", answer: "redirect", to: "c:1", epoch: 4 << 32, wantNow: true},
				{wantAddr: "c:1", answer: "welcome", epoch: 4 << 32},
			},
		},
		{
			name: "a claim older than the redirect that led there is ignored", static: all,
			steps: []step{
				{wantAddr: "a:1", answer: "redirect", to: "b:1", epoch: 7 << 32, wantNow: true},
				{wantAddr: "b:1", answer: "welcome", epoch: 6 << 32, wantErr: errStaleClaim, wantNow: true},
				{wantAddr: "c:1", answer: "redirect", to: "a:1", epoch: 6 << 32, wantErr: errStaleClaim, wantNow: true},
				{wantAddr: "a:1", answer: "redirect", to: "b:1", epoch: 7 << 32, wantNow: true},
				{wantAddr: "b:1", answer: "welcome", epoch: 7 << 32},
			},
		},
		{
			name: "on a stream that is up, an older redirect is ignored and a newer one followed", static: all,
			steps: []step{
				{wantAddr: "a:1", answer: "welcome", epoch: 5 << 32},
				{answer: "moved", to: "b:1", epoch: 4 << 32},
				{answer: "moved", to: "c:1", epoch: 6 << 32, wantNow: true},
				{wantAddr: "c:1", answer: "welcome", epoch: 6 << 32},
			},
		},
		{
			name: "after a stream ends any claim is followed (a restarted owner claims low)", static: all,
			steps: []step{
				{wantAddr: "a:1", answer: "welcome", epoch: 9 << 32},
				{answer: "end"},
				{wantAddr: "a:1", answer: "redirect", to: "b:1", epoch: 1 << 32, wantNow: true},
				{wantAddr: "b:1", answer: "welcome", epoch: 1 << 32},
			},
		},
		{
			name: "replicas that disagree do not make it spin", static: all,
			steps: []step{
				{wantAddr: "a:1", answer: "redirect", to: "b:1", epoch: 1, wantNow: true},
				{wantAddr: "b:1", answer: "redirect", to: "a:1", epoch: 1, wantNow: true},
				{wantAddr: "a:1", answer: "redirect", to: "b:1", epoch: 1, wantNow: true},
				{wantAddr: "b:1", answer: "redirect", to: "a:1", epoch: 1, wantNow: true},
				{wantAddr: "a:1", answer: "redirect", to: "b:1", epoch: 1}, // fifth hop: back off
				{wantAddr: "b:1", answer: "welcome", epoch: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			play(t, newRoute(tt.static), tt.steps)
		})
	}
}

func TestRouteLearnsReplicas(t *testing.T) {
	r := newRoute([]string{"hub.example:7443"})
	if err := r.welcomed(1, []string{"10.0.0.1:7443", "10.0.0.2:7443"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"hub.example:7443", "10.0.0.1:7443", "10.0.0.2:7443"}
	if got := r.list(); !slices.Equal(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	// The latest list replaces the learnt one; --hub stays.
	if err := r.redirected("10.0.0.3:7443", 2, []string{"10.0.0.3:7443"}); err == nil {
		t.Fatal("redirect not followed")
	}
	want = []string{"hub.example:7443", "10.0.0.3:7443"}
	if got := r.list(); !slices.Equal(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
}

// TestRouteConverging: turns that end without a Welcome but with a redirect (the replicas
// are alive, still converging on the owner after one died) call for the shortest back-off,
// a bounded number of times in a row; turns in which nobody answered do not.
func TestRouteConverging(t *testing.T) {
	r := newRoute([]string{"a:1", "b:1"})
	down := errors.New("connection refused")
	turn := func(redirect bool) bool {
		t.Helper()
		for {
			addr := r.pick()
			var err error = down
			if redirect && addr == "b:1" {
				err = r.redirected("a:1", 1, nil)
			}
			if now, _ := r.ended(addr, err); !now {
				return r.converging()
			}
		}
	}
	if turn(false) {
		t.Fatal("a turn nobody answered calls for the shortest back-off")
	}
	for i := range maxQuickTurns {
		if !turn(true) {
			t.Fatalf("turn %d with a redirect to a dead owner does not call for the shortest back-off", i)
		}
	}
	if turn(true) {
		t.Fatalf("more than %d quick turns in a row", maxQuickTurns)
	}
	if err := r.welcomed(2, nil); err != nil {
		t.Fatal(err)
	}
	if r.ended("a:1", io.EOF); !turn(true) {
		t.Fatal("quick turns not allowed again after a Welcome")
	}
}
