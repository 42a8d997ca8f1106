package store

import (
	"encoding/json"
	"testing"
)

func TestRolloutRecords(t *testing.T) {
	db := newTestDB(t)
	rec := func(app string, seq uint64, step string) Rollout {
		return Rollout{App: app, Seq: seq, Data: json.RawMessage(`{"step":` + step + `}`)}
	}
	if err := db.PutRollout(rec("api", 3, "1")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		in      Rollout
		changed bool
		want    string
	}{
		{rec("api", 2, "0"), false, `{"step":1}`}, // older: ignored
		{rec("api", 3, "1"), false, `{"step":1}`}, // the same: idempotent
		{rec("api", 3, "2"), true, `{"step":2}`},  // same seq: the greater data, on every replica
		{rec("api", 4, "0"), true, `{"step":0}`},  // newer wins
		{rec("web", 1, "0"), true, `{"step":0}`},
	} {
		changed, err := db.MergeRollout(tt.in)
		if err != nil || changed != tt.changed {
			t.Fatalf("MergeRollout(%+v) = %v, %v; want changed %v", tt.in, changed, err, tt.changed)
		}
		list, err := db.ListRollouts()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list {
			if r.App == tt.in.App && string(r.Data) != tt.want {
				t.Fatalf("after merging %+v: %s, want %s", tt.in, r.Data, tt.want)
			}
		}
	}
	if err := db.PutRollout(Rollout{}); err == nil {
		t.Fatal("a record without an app was stored")
	}
}
