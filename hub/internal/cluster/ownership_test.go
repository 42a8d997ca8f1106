package cluster

import (
	"errors"
	"testing"
)

// fixedOwners owns each cluster by the member named in owner; "local" is this replica.
type fixedOwners map[string]string

func (f fixedOwners) Local() Member { return Member{Name: "local"} }
func (f fixedOwners) Owner(cluster string, _ []string) (Member, uint64) {
	return Member{Name: f[cluster]}, 7
}

// TestOwnership: alone, every cluster is this hub's; among replicas, the ring's owner; an
// unreadable registry counts every cluster as owned; Release calls its hooks only among replicas.
func TestOwnership(t *testing.T) {
	alone := NewOwnership(nil, nil, nil)
	released := 0
	alone.OnRelease(func(func(string) bool) { released++ })
	if !alone.Owned()("any") || !alone.Release()("any") || released != 0 {
		t.Fatalf("alone: owned %v, released %d", alone.Owned()("any"), released)
	}

	keys := func() ([]string, error) { return []string{"a", "b"}, nil }
	o := NewOwnership(fixedOwners{"a": "local", "b": "other"}, keys, nil)
	now, err := o.Now()
	if err != nil {
		t.Fatal(err)
	}
	if w := now.Of("b"); w.Mine || w.Member.Name != "other" || w.Epoch != 7 || !now.Mine("a") {
		t.Fatalf("Of(b) = %+v, Mine(a) = %v", w, now.Mine("a"))
	}
	var got func(string) bool
	o.OnRelease(func(mine func(string) bool) { got = mine })
	if mine := o.Release(); got == nil || !mine("a") || got("b") {
		t.Fatal("Release did not hand its hook the owners")
	}

	broken := NewOwnership(fixedOwners{}, func() ([]string, error) { return nil, errors.New("disk gone") }, nil)
	if _, err := broken.Now(); err == nil || !broken.Owned()("a") {
		t.Fatalf("unreadable registry: Now err %v, Owned(a) %v", err, broken.Owned()("a"))
	}
}
