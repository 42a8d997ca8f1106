package notify

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestNotifierExactlyOnce drives a real Fleet as the hub's agent streams do — ACKs, NACKs
// of retries, status re-reports — with the notifier on its OnReport hook, and checks the
// receiver gets each event exactly once.
func TestNotifierExactlyOnce(t *testing.T) {
	hook := newReceiver(t)
	rec := &counts{}
	fl := fleet.New(time.Minute)
	n := New(testConfig(t, "", [3]string{"hook", "webhook", hook.URL}), fl, func() ([]string, error) { return []string{"staging"}, nil }, rec, nil)
	fl.OnReport(n.Report)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	fl.Seen("staging", "v1", true)
	fl.SetDesired(fleet.Desired{Cluster: "staging", App: "api", Revision: "r1", Bundle: nil, Author: "Ada <ada@example.com>", Message: "api: 2.0.0"})
	fl.Ack("staging", "api", 1, "r1", "d-r1")
	for range 3 {
		fl.Status("staging", applied("r1"))
	}
	for range 3 {
		fl.Status("staging", with(applied("r1"), func(r *fleet.Report) { r.Drift, r.Sync = drifted, "OutOfSync" }))
	}
	for range 3 {
		fl.Nack("staging", "api", 2, "boom")
	}
	fl.Ack("staging", "api", 2, "r1", "d-r1")
	for range 3 {
		fl.Status("staging", applied("r1"))
	}
	want := []Event{SyncSucceeded, DriftDetected, SyncFailed, DriftCorrected}
	testwait.Until(t, 30*time.Second, "the deliveries", func() bool { return rec.get("hook/sent") >= len(want) })
	testwait.Stays(t, 200*time.Millisecond, "no duplicate delivery", func() bool { return rec.get("hook/sent") == len(want) })
	var got []Notification
	for _, b := range hook.requests() {
		var n Notification
		if err := json.Unmarshal(b, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if len(got) != len(want) {
		t.Fatalf("received %+v, want events %v", got, want)
	}
	for i, e := range want {
		if got[i].Event != e || got[i].Cluster != "staging" || got[i].App != "api" {
			t.Errorf("notification %d = %+v, want %s for api on staging", i, got[i], e)
		}
	}
	if got[0].Revision != "r1" || got[0].Author != "Ada <ada@example.com>" || got[0].Message != "api: 2.0.0" {
		t.Errorf("sync-succeeded %+v, want the commit of r1", got[0])
	}
}

// TestRemovalHeldNotifiedOnce: a fleet that holds the removal of most of its apps notifies
// once, naming them, however often the same load comes again.
func TestRemovalHeldNotifiedOnce(t *testing.T) {
	hook := newReceiver(t)
	rec := &counts{}
	fl := fleet.New(time.Minute)
	n := New(testConfig(t, "", [3]string{"hook", "webhook", hook.URL}), fl, func() ([]string, error) { return nil, nil }, rec, nil)
	fl.OnRemovalHold(n.RemovalHeld)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- n.Run(ctx) }()
	defer func() { cancel(); <-done }()

	fl.GuardRemoval([]string{"api", "web", "db"})
	for range 3 {
		fl.GuardRemoval([]string{"api"})
	}
	testwait.Until(t, 30*time.Second, "the delivery", func() bool { return rec.get("hook/sent") >= 1 })
	testwait.Stays(t, 200*time.Millisecond, "no duplicate delivery", func() bool { return rec.get("hook/sent") == 1 })
	var got Notification
	if err := json.Unmarshal(hook.requests()[0], &got); err != nil {
		t.Fatal(err)
	}
	if got.Event != RemovalHeld || !strings.Contains(got.Summary, "2 of 3") || !strings.Contains(got.Summary, "db, web") {
		t.Errorf("notification = %+v, want removal-held of db and web, 2 of 3", got)
	}
}
