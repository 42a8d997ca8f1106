package store

import (
	"testing"
	"time"
)

func TestMergePin(t *testing.T) {
	early, late := t0, t0.Add(time.Minute)
	pin := func(rev string, at time.Time) Pin {
		return Pin{App: "api", Cluster: "c1", Revision: rev, Actor: "ann", Time: at}
	}
	unpin := func(at time.Time) Pin { return Pin{App: "api", Cluster: "c1", Actor: "bob", Time: at, Cleared: true} }
	tests := []struct {
		name        string
		stored      *Pin
		in          Pin
		want        Pin
		wantChanged bool
	}{
		{name: "unknown pin is added", in: pin("v1", early), want: pin("v1", early), wantChanged: true},
		{name: "unknown clear is kept", in: unpin(early), want: unpin(early), wantChanged: true},
		{name: "later pin wins", stored: ptr(pin("v1", early)), in: pin("v2", late), want: pin("v2", late), wantChanged: true},
		{name: "earlier pin loses", stored: ptr(pin("v2", late)), in: pin("v1", early), want: pin("v2", late)},
		{name: "later clear wins", stored: ptr(pin("v1", early)), in: unpin(late), want: unpin(late), wantChanged: true},
		{name: "a stale pin does not undo a clear", stored: ptr(unpin(late)), in: pin("v1", early), want: unpin(late)},
		{name: "a later pin follows a clear", stored: ptr(unpin(early)), in: pin("v1", late), want: pin("v1", late), wantChanged: true},
		{name: "at the same millisecond a clear wins", stored: ptr(pin("v1", early)), in: unpin(early.Truncate(time.Millisecond)), want: unpin(early), wantChanged: true},
		{name: "at the same millisecond the greater revision wins", stored: ptr(pin("v2", early)), in: pin("v1", early), want: pin("v2", early)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := newTestDB(t)
			if tt.stored != nil {
				if _, err := db.MergePin(*tt.stored); err != nil {
					t.Fatal(err)
				}
			}
			changed, err := db.MergePin(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			got := onlyPinRecord(t, db)
			if !samePin(got, tt.want) {
				t.Errorf("pin = %+v, want %+v", got, tt.want)
			}
			if changed, err := db.MergePin(tt.in); err != nil || changed {
				t.Errorf("second merge: changed %v, err %v", changed, err)
			}
			if pins, _ := db.ListPins(); len(pins) != map[bool]int{true: 0, false: 1}[tt.want.Cleared] {
				t.Errorf("pins in force = %+v, want the pin unless cleared", pins)
			}
		})
	}
}

// TestMergePinCommutes: replicas that receive the same changes in any order hold the same pin.
func TestMergePinCommutes(t *testing.T) {
	recs := []Pin{
		{App: "api", Cluster: "c1", Revision: "v1", Time: t0},
		{App: "api", Cluster: "c1", Revision: "v2", Time: t0.Add(time.Second)},
		{App: "api", Cluster: "c1", Cleared: true, Time: t0.Add(time.Second)},
		{App: "api", Cluster: "c1", Revision: "v0", Time: t0.Add(time.Second)},
	}
	var results []Pin
	for _, order := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}} {
		db := newTestDB(t)
		for _, i := range order {
			if _, err := db.MergePin(recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		results = append(results, onlyPinRecord(t, db))
	}
	for _, p := range results {
		if !p.Cleared || !samePin(p, results[0]) {
			t.Fatalf("orders disagree or the clear lost: %+v", results)
		}
	}
}

// TestPutPinOrdersAfterWhatItReplaces: a change made on a replica whose clock is behind the
// one that made the previous change still wins over it everywhere.
func TestPutPinOrdersAfterWhatItReplaces(t *testing.T) {
	db := newTestDB(t)
	ahead := Pin{App: "api", Cluster: "c1", Revision: "v1", Time: t0.Add(time.Hour)}
	if _, err := db.MergePin(ahead); err != nil {
		t.Fatal(err)
	}
	cleared, err := db.PutPin(Pin{App: "api", Cluster: "c1", Actor: "bob", Time: t0, Cleared: true})
	if err != nil {
		t.Fatal(err)
	}
	if !laterPin(cleared, ahead) || cleared.Time.UnixMilli() != ahead.Time.UnixMilli()+1 {
		t.Fatalf("clear stored at %s, want just after the pin it replaces (%s)", cleared.Time, ahead.Time)
	}
	if pins, _ := db.ListPins(); len(pins) != 0 {
		t.Fatalf("pins after the clear: %+v", pins)
	}
	// The replica that made the pin receives the clear and drops the pin.
	other := newTestDB(t)
	if _, err := other.MergePin(ahead); err != nil {
		t.Fatal(err)
	}
	if changed, err := other.MergePin(cleared); err != nil || !changed {
		t.Fatalf("merge of the clear: changed %v, err %v", changed, err)
	}
	if pins, _ := other.ListPins(); len(pins) != 0 {
		t.Fatalf("pins on the other replica after the clear: %+v", pins)
	}
	if _, err := db.PutPin(Pin{App: "api", Cluster: "c1"}); err == nil {
		t.Error("pin without a revision stored")
	}
}

func onlyPinRecord(t *testing.T, db *testDB) Pin {
	t.Helper()
	recs, err := db.ListPinRecords()
	if err != nil || len(recs) != 1 {
		t.Fatalf("pin records = %+v, %v; want one", recs, err)
	}
	return recs[0]
}

func samePin(a, b Pin) bool {
	return a.Time.UnixMilli() == b.Time.UnixMilli() && a.Cleared == b.Cleared && a.Revision == b.Revision
}

func ptr[T any](v T) *T { return &v }
