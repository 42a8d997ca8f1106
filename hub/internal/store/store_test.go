package store

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// testDB opens a store in a temporary directory; reopen closes and opens it again, to check
// that what was written is durable.
type testDB struct {
	t    *testing.T
	path string
	*Store
}

func newTestDB(t *testing.T) *testDB {
	t.Helper()
	db := &testDB{t: t, path: filepath.Join(t.TempDir(), "data", FileName)}
	db.open()
	t.Cleanup(func() {
		if db.Store != nil {
			_ = db.Close()
		}
	})
	return db
}

func (db *testDB) open() {
	db.t.Helper()
	s, err := Open(db.path)
	if err != nil {
		db.t.Fatal(err)
	}
	db.Store = s
}

func (db *testDB) reopen() {
	db.t.Helper()
	if err := db.Close(); err != nil {
		db.t.Fatal(err)
	}
	db.Store = nil
	db.open()
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)

func TestClusters(t *testing.T) {
	db := newTestDB(t)
	for _, c := range []Cluster{
		{Name: "prod-2", Labels: map[string]string{"env": "prod"}, CreatedAt: t0},
		{Name: "dev", CreatedAt: t0.Add(time.Minute)},
		{Name: "prod-1", Labels: map[string]string{"env": "prod", "region": "eu"}, CreatedAt: t0, AgentVersion: "v0.1.0", LastSeen: t0.Add(time.Hour)},
	} {
		if err := db.PutCluster(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.PutCluster(Cluster{Name: "dev", CreatedAt: t0.Add(time.Minute), Revoked: true}); err != nil {
		t.Fatal(err)
	}
	db.reopen()

	got, err := db.ListClusters()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range got {
		names = append(names, c.Name)
	}
	if !reflect.DeepEqual(names, []string{"dev", "prod-1", "prod-2"}) {
		t.Errorf("ListClusters names %v, want sorted [dev prod-1 prod-2]", names)
	}
	c, ok, err := db.GetCluster("prod-1")
	if err != nil || !ok {
		t.Fatalf("GetCluster(prod-1) = %v, %v", ok, err)
	}
	if c.Labels["region"] != "eu" || c.AgentVersion != "v0.1.0" || !c.CreatedAt.Equal(t0) || !c.LastSeen.Equal(t0.Add(time.Hour)) {
		t.Errorf("prod-1 read back as %+v", c)
	}
	if dev, _, _ := db.GetCluster("dev"); !dev.Revoked {
		t.Error("the second PutCluster of dev did not replace the first")
	}
	if _, ok, err := db.GetCluster("nope"); ok || err != nil {
		t.Errorf("GetCluster(nope) = %v, %v; want false, nil", ok, err)
	}
	for _, bad := range []string{"", "a\x00b"} {
		if err := db.PutCluster(Cluster{Name: bad}); err == nil {
			t.Errorf("PutCluster(%q): want error", bad)
		}
	}
}

func TestDeleteCluster(t *testing.T) {
	db := newTestDB(t)
	for _, name := range []string{"c1", "c10"} {
		if err := db.PutCluster(Cluster{Name: name}); err != nil {
			t.Fatal(err)
		}
		if err := db.PutStatus(name, "api", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if err := db.PutToken(JoinToken{ID: "tok-" + name, SecretHash: make([]byte, 32), Cluster: name, ExpiresAt: t0}); err != nil {
			t.Fatal(err)
		}
		if err := db.AddHistory(HistoryRecord{Time: t0, Cluster: name, App: "api", Revision: "r1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.DeleteCluster("c1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteCluster("c1"); err != nil {
		t.Errorf("deleting a deleted cluster: %v", err)
	}
	db.reopen()

	if _, ok, _ := db.GetCluster("c1"); ok {
		t.Error("c1 still registered")
	}
	if _, ok, _ := db.GetCluster("c10"); !ok {
		t.Error("c10 was deleted with c1")
	}
	status, err := db.ListStatus()
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 1 || status[0].Cluster != "c10" {
		t.Errorf("status after deleting c1: %+v, want only c10", status)
	}
	if _, _, err := db.RedeemToken("tok-c1", "x", nil, t0); err == nil {
		t.Error("token of deleted cluster still exists")
	}
	hist, err := db.ListHistory("api", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Errorf("history has %d records, want 2 (history outlives the cluster)", len(hist))
	}
}

func TestStatus(t *testing.T) {
	db := newTestDB(t)
	data := []byte(`{"sync":"Synced"}`)
	puts := []StatusRecord{
		{Cluster: "c2", App: "web", Data: []byte(`{"n":1}`)},
		{Cluster: "c1", App: "web", Data: []byte(`{"n":2}`)},
		{Cluster: "c1", App: "api", Data: data},
		{Cluster: "c10", App: "api", Data: []byte(`{"n":3}`)},
		{Cluster: "c2", App: "web", Data: []byte(`{"n":4}`)}, // replaces the first
	}
	for _, r := range puts {
		if err := db.PutStatus(r.Cluster, r.App, r.Data); err != nil {
			t.Fatal(err)
		}
	}
	data[2] = 'X' // the store keeps its own copy
	if err := db.DeleteStatus("c10", "api"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteStatus("c10", "api"); err != nil {
		t.Errorf("deleting a deleted status: %v", err)
	}
	db.reopen()

	got, err := db.ListStatus()
	if err != nil {
		t.Fatal(err)
	}
	want := []StatusRecord{
		{Cluster: "c1", App: "api", Data: []byte(`{"sync":"Synced"}`)},
		{Cluster: "c1", App: "web", Data: []byte(`{"n":2}`)},
		{Cluster: "c2", App: "web", Data: []byte(`{"n":4}`)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ListStatus =\n%q\nwant\n%q", got, want)
	}
	for _, bad := range [][2]string{{"", "a"}, {"c", ""}, {"c\x00", "a"}} {
		if err := db.PutStatus(bad[0], bad[1], nil); err == nil {
			t.Errorf("PutStatus(%q, %q): want error", bad[0], bad[1])
		}
	}
}

func TestOpenFailsOnGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path); err == nil {
		s.Close()
		t.Fatal("Open of a garbage file: want error")
	}
}

func TestPinsSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPin(Pin{App: "api", Cluster: "prod-1", Revision: "abc", Actor: "admin"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPin(Pin{App: "api", Cluster: "prod-2", Revision: "abc"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPin(Pin{App: "api", Cluster: "prod-2", Cleared: true}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pins, err := s.ListPins()
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) != 1 || pins[0].Cluster != "prod-1" || pins[0].Revision != "abc" || pins[0].Actor != "admin" {
		t.Fatalf("pins = %+v", pins)
	}
}
