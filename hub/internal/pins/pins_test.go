package pins

import (
	"errors"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/store"
)

// loaded is a fleet that keeps the last pins loaded into it.
type loaded struct{ pins map[string]map[string]string }

func (l *loaded) SetPins(p map[string]map[string]string) { l.pins = p }

func newPins(t *testing.T) (*Pins, *store.Store, *loaded) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "flotilla.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fl := &loaded{}
	return New(st, fl, slog.New(slog.NewTextHandler(io.Discard, nil))), st, fl
}

// TestApply: a change pins the clusters it names among those the app targets, loads them into
// the fleet and returns the records to replicate; a clear names the pins, not the targets.
func TestApply(t *testing.T) {
	p, _, fl := newPins(t)
	now := time.Now()
	targeted := []string{"c3", "c1", "c2"}

	clusters, changed, err := p.Apply(Change{App: "api", Revision: "v1", InSelector: map[string]bool{"c1": true, "c3": true}, Actor: "op", Time: now}, targeted)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(clusters, []string{"c1", "c3"}) || len(changed) != 2 || changed[0].Revision != "v1" || changed[0].Actor != "op" {
		t.Fatalf("Apply = %v, %+v", clusters, changed)
	}
	if got := fl.pins["api"]; !maps.Equal(got, map[string]string{"c1": "v1", "c3": "v1"}) {
		t.Fatalf("fleet pins %v", fl.pins)
	}

	if _, _, err := p.Apply(Change{App: "api", Revision: "v1", Cluster: "c9", Time: now}, targeted); !errors.Is(err, ErrNoMatchingCluster) {
		t.Fatalf("a cluster the app does not target: %v, want ErrNoMatchingCluster", err)
	}

	// c2 is targeted but not pinned: a clear of every cluster clears c1 and c3 only.
	clusters, changed, err = p.Apply(Change{App: "api", Clear: true, Time: now.Add(time.Second)}, targeted)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(clusters, []string{"c1", "c3"}) || len(changed) != 2 || !changed[0].Cleared {
		t.Fatalf("clear = %v, %+v", clusters, changed)
	}
	if len(fl.pins) != 0 {
		t.Fatalf("fleet pins after the clear: %v", fl.pins)
	}
	if _, _, err := p.Apply(Change{App: "api", Clear: true, Time: now.Add(2 * time.Second)}, targeted); !errors.Is(err, ErrNoMatchingCluster) {
		t.Fatalf("clear without pins: %v, want ErrNoMatchingCluster", err)
	}
}

// TestMerge: records of another replica change the store and the fleet once; mine says whether
// one concerns a cluster this replica owns; a stale record changes nothing.
func TestMerge(t *testing.T) {
	p, st, fl := newPins(t)
	now := time.Now().Truncate(time.Millisecond)
	owned := func(c string) bool { return c == "c1" }

	n, mine := p.Merge([]store.Pin{{App: "api", Cluster: "c2", Revision: "v1", Actor: "op", Time: now}}, owned)
	if n != 1 || mine {
		t.Fatalf("Merge c2 = %d, %v; want 1, false", n, mine)
	}
	n, mine = p.Merge([]store.Pin{
		{App: "api", Cluster: "c2", Revision: "v1", Actor: "op", Time: now},
		{App: "api", Cluster: "c1", Revision: "v2", Actor: "op", Time: now},
	}, owned)
	if n != 1 || !mine {
		t.Fatalf("Merge c1 again with c2 = %d, %v; want 1, true", n, mine)
	}
	if got := fl.pins["api"]; !maps.Equal(got, map[string]string{"c1": "v2", "c2": "v1"}) {
		t.Fatalf("fleet pins %v", fl.pins)
	}
	if n, _ := p.Merge([]store.Pin{{App: "api", Cluster: "c1", Revision: "v0", Actor: "op", Time: now.Add(-time.Minute)}}, owned); n != 0 {
		t.Fatalf("an older record changed %d pins", n)
	}
	recs, err := p.Records()
	if err != nil || len(recs) != 2 {
		t.Fatalf("Records = %v, %v", recs, err)
	}

	// Load reads the store afresh: a pin put there directly is loaded.
	if _, err := st.PutPin(store.Pin{App: "web", Cluster: "c1", Revision: "v9", Actor: "op"}); err != nil {
		t.Fatal(err)
	}
	if err := p.Load(); err != nil || fl.pins["web"]["c1"] != "v9" {
		t.Fatalf("Load = %v, pins %v", err, fl.pins)
	}
}
