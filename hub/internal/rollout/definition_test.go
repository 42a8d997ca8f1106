package rollout

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
)

func wantTarget(t *testing.T, r *Record, cluster string, want Target, held bool) {
	t.Helper()
	if got, h := r.TargetFor(cluster); got != want || h != held {
		t.Fatalf("TargetFor(%s) = %+v %v, want %+v %v", cluster, got, h, want, held)
	}
}

// TestRolloutApplicationEditPure: an edit of the Application at the same commit is a rollout
// of its own (its id distinct), the held clusters keep the definition they had, and a commit
// arriving with an edit is one rollout; a commit that supersedes an edit's rollout keeps each
// cluster's definition until its step.
func TestRolloutApplicationEditPure(t *testing.T) {
	s := newSim(cl("canary", "canary"), cl("m1", "main"), cl("m2", "main"))
	spec := &apps.RolloutSpec{FailurePolicy: apps.FailureHalt, Steps: []apps.RolloutStep{{Selector: ringSel("canary")}, {}}}
	v1a := Target{Revision: "c0ffee1234", Spec: "aaaa1111"}
	base := Baseline("api", v1a, s.now)
	base.Defs.setDoc("aaaa1111", []byte(`{"a":1}`))
	s.advance(t, base, spec)

	edit := Target{Revision: "c0ffee1234", Spec: "bbbb2222"}
	r := Start(base, edit, s.now)
	r.Defs.setDoc("bbbb2222", []byte(`{"b":1}`))
	if !r.Edit() || r.ID != "r-c0ffee-bbbb" || r.ID == base.ID {
		t.Fatalf("edit rollout: Edit %v, ID %q (baseline %q)", r.Edit(), r.ID, base.ID)
	}
	s.advance(t, r, spec)
	wantPhases(t, r, "canary=Updating m1=Pending m2=Pending")
	wantTarget(t, r, "canary", edit, false)
	wantTarget(t, r, "m1", v1a, true) // the same commit, the definition it had
	if got := r.Hold("m1"); got != "Waiting for rollout step 2 of r-c0ffee-bbbb (an Application edit)" {
		t.Errorf("Hold(m1) = %q", got)
	}
	if len(r.Defs.Docs) != 2 {
		t.Errorf("docs kept %v, want the edit's and the one before", r.Defs.Docs)
	}

	// The record survives a round trip through JSON (the store, the replicas) unchanged.
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	wantTarget(t, &back, "m1", v1a, true)
	if string(back.Defs.Docs["aaaa1111"]) != `{"a":1}` {
		t.Errorf("doc after a round trip: %s", back.Defs.Docs["aaaa1111"])
	}

	// A commit and a second edit arrive together while m1 and m2 still hold v1a: one rollout.
	s.healthy("canary")
	s.advance(t, r, spec)
	wantPhases(t, r, "canary=Done m1=Updating m2=Updating")
	s.obs = map[string]Observation{}
	both := Target{Revision: "d00d5678", Spec: "cccc3333"}
	r2 := Start(r, both, s.now)
	r2.Defs.setDoc("cccc3333", []byte(`{"c":1}`))
	if !r2.Edit() || r2.ID != "r-d00d56-cccc" {
		t.Fatalf("commit and edit: Edit %v, ID %q", r2.Edit(), r2.ID)
	}
	s.advance(t, r2, spec)
	wantTarget(t, r2, "canary", both, false)
	wantTarget(t, r2, "m1", edit, true) // it had got the first edit: it keeps it, not rolled back first
	if _, ok := r2.Defs.Docs["bbbb2222"]; !ok {
		t.Errorf("the definition m1 holds was dropped from the record: %v", r2.Defs.Docs)
	}

	// A commit alone (no edit) after a completed edit's rollout is not an edit.
	done := Baseline("api", edit, s.now)
	r3 := Start(done, Target{Revision: "e1e1e1e1", Spec: "bbbb2222"}, s.now)
	if r3.Edit() || r3.ID != "r-e1e1e1" || strings.Contains(r3.what(), "edit") {
		t.Errorf("a commit alone: Edit %v, ID %q", r3.Edit(), r3.ID)
	}
	if len(r3.Defs.Docs) != 0 {
		t.Errorf("docs %v: the baseline had none to keep", r3.Defs.Docs)
	}
}
