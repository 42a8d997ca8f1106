package store

import (
	"testing"
	"time"
)

// TestHistoryRetention: each app×cluster keeps only its newest HistoryPerApp records, as they
// are added (an agent NACKing in a loop cannot grow the store); Prune drops records older
// than HistoryMaxAge.
func TestHistoryRetention(t *testing.T) {
	db := newTestDB(t)
	db.SetRetention(Retention{HistoryPerApp: 3, HistoryMaxAge: time.Hour})
	now := time.Now()
	for i := range 10 {
		for _, c := range []string{"edge-1", "edge-2"} {
			if err := db.AddHistory(HistoryRecord{Time: now.Add(time.Duration(i) * time.Second), Cluster: c, App: "api", Revision: string(rune('a' + i))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.AddHistory(HistoryRecord{Time: now.Add(-2 * time.Hour), Cluster: "edge-3", App: "api", Revision: "old"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"edge-1", "edge-2"} {
		recs, err := db.ListHistory("api", c, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 3 || recs[0].Revision != "j" || recs[2].Revision != "h" {
			t.Errorf("%s keeps %d records %v, want the newest 3 (j, i, h)", c, len(recs), recs)
		}
	}
	n, err := db.Prune(now)
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want the one record older than an hour", n, err)
	}
	if recs, _ := db.ListHistory("api", "edge-3", 0); len(recs) != 0 {
		t.Errorf("edge-3 keeps %v, older than the maximum age", recs)
	}
	if recs, _ := db.ListHistory("api", "", 0); len(recs) != 6 {
		t.Errorf("%d records left, want 6", len(recs))
	}
}

// TestAuditRetention: Prune keeps the newest AuditMax audit records, none older than
// AuditMaxAge.
func TestAuditRetention(t *testing.T) {
	db := newTestDB(t)
	now := time.Now()
	for i := range 10 {
		if err := db.Audit(AuditRecord{Time: now.Add(-time.Duration(10-i) * time.Hour), Actor: "admin", Action: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	db.SetRetention(Retention{AuditMax: 6, AuditMaxAge: 3*time.Hour + time.Minute})
	n, err := db.Prune(now)
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := db.ListAudit(0)
	if n != 7 || len(recs) != 3 || recs[0].Action != "j" || recs[2].Action != "h" {
		t.Errorf("Prune deleted %d, kept %v; want the 3 records of the last 3h", n, recs)
	}
	db.SetRetention(Retention{AuditMax: 2})
	if n, err := db.Prune(now); err != nil || n != 1 {
		t.Errorf("Prune to 2 records = %d, %v; want 1 deleted", n, err)
	}
	db.SetRetention(Retention{})
	if n, err := db.Prune(now); err != nil || n != 0 {
		t.Errorf("Prune without bounds = %d, %v; want nothing deleted", n, err)
	}
}
