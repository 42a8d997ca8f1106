package store

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

func TestAudit(t *testing.T) {
	db := newTestDB(t)
	for i := range 5 {
		// Written out of time order: listing follows the record time.
		ts := t0.Add(time.Duration((i*3)%5) * time.Minute)
		if err := db.Audit(AuditRecord{Time: ts, Actor: "alice", Action: "sync", Target: fmt.Sprintf("app-%d", (i*3)%5)}); err != nil {
			t.Fatal(err)
		}
	}
	// Two records in the same nanosecond keep their insertion order.
	if err := db.Audit(AuditRecord{Time: t0.Add(10 * time.Minute), Actor: "bob", Action: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := db.Audit(AuditRecord{Time: t0.Add(10 * time.Minute), Actor: "bob", Action: "b"}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if err := db.Audit(AuditRecord{Actor: "carol", Action: "token"}); err != nil {
		t.Fatal(err)
	}
	db.reopen()

	all, err := db.ListAudit(0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range all {
		got = append(got, r.Actor+":"+r.Action+":"+r.Target)
	}
	want := []string{"carol:token:", "bob:b:", "bob:a:", "alice:sync:app-4", "alice:sync:app-3", "alice:sync:app-2", "alice:sync:app-1", "alice:sync:app-0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListAudit(0) = %v\nwant %v", got, want)
	}
	if all[0].Time.Before(before) {
		t.Errorf("zero time was not set to now: %s", all[0].Time)
	}
	if !all[3].Time.Equal(t0.Add(4 * time.Minute)) {
		t.Errorf("time read back as %s, want %s", all[3].Time, t0.Add(4*time.Minute))
	}
	three, err := db.ListAudit(3)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(three, all[:3]) {
		t.Errorf("ListAudit(3) = %+v, want the newest three", three)
	}
}

func TestHistory(t *testing.T) {
	db := newTestDB(t)
	// Names chosen so a naive prefix would mix them up: api/api2 and c1/c10.
	adds := []HistoryRecord{
		{Time: t0.Add(1 * time.Minute), Cluster: "c1", App: "api", Revision: "r1"},
		{Time: t0.Add(2 * time.Minute), Cluster: "c10", App: "api", Revision: "r1"},
		{Time: t0.Add(3 * time.Minute), Cluster: "c1", App: "api2", Revision: "x1"},
		{Time: t0.Add(4 * time.Minute), Cluster: "c2", App: "api", Revision: "r2"},
		{Time: t0.Add(5 * time.Minute), Cluster: "c1", App: "api", Revision: "r2", Author: "dev", Message: "bump", Result: "Synced", Health: "Healthy"},
		{Time: t0.Add(6 * time.Minute), Cluster: "c10", App: "api", Revision: "r2"},
		{Time: t0.Add(30 * time.Second), Cluster: "c1", App: "api", Revision: "r0"}, // late write of an old record
	}
	for _, r := range adds {
		if err := db.AddHistory(r); err != nil {
			t.Fatal(err)
		}
	}
	db.reopen()

	tests := []struct {
		app, cluster string
		limit        int
		want         []string // cluster/revision, newest first
	}{
		{app: "api", want: []string{"c10/r2", "c1/r2", "c2/r2", "c10/r1", "c1/r1", "c1/r0"}},
		{app: "api", limit: 3, want: []string{"c10/r2", "c1/r2", "c2/r2"}},
		{app: "api", cluster: "c1", want: []string{"c1/r2", "c1/r1", "c1/r0"}},
		{app: "api", cluster: "c1", limit: 2, want: []string{"c1/r2", "c1/r1"}},
		{app: "api", cluster: "c10", want: []string{"c10/r2", "c10/r1"}},
		{app: "api2", want: []string{"c1/x1"}},
		{app: "api2", cluster: "c10"},
		{app: "ap"},
		{app: "web"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%s/%d", tt.app, tt.cluster, tt.limit), func(t *testing.T) {
			recs, err := db.ListHistory(tt.app, tt.cluster, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				if r.App != tt.app {
					t.Errorf("record of app %s in the history of %s", r.App, tt.app)
				}
				got = append(got, r.Cluster+"/"+r.Revision)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ListHistory = %v, want %v", got, tt.want)
			}
		})
	}

	recs, err := db.ListHistory("api", "c1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := adds[4]; len(recs) != 1 || !recs[0].Time.Equal(want.Time) || recs[0].Author != want.Author ||
		recs[0].Message != want.Message || recs[0].Result != want.Result || recs[0].Health != want.Health {
		t.Errorf("record read back as %+v, want %+v", recs, want)
	}
	for _, bad := range []HistoryRecord{{Cluster: "c1"}, {App: "api"}, {App: "a\x00", Cluster: "c1"}} {
		if err := db.AddHistory(bad); err == nil {
			t.Errorf("AddHistory(%+v): want error", bad)
		}
	}
	if _, err := db.ListHistory("", "", 0); err == nil {
		t.Error("ListHistory without app: want error")
	}
}
