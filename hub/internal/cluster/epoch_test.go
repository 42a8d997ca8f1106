package cluster

import (
	"slices"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestTrackerEpochInputs(t *testing.T) {
	node := func(name string, epoch uint64) *memberlist.Node {
		return &memberlist.Node{Name: name, Meta: encodeMeta(nodeMeta{Version: metaVersion, GRPC: name + ":1", Epoch: epoch})}
	}
	tr := newTracker("self")
	tr.NotifyJoin(node("self", 0))
	tr.NotifyJoin(node("b", 5))
	nodes, changed, seen := tr.take()
	if !changed || seen != 5 || len(nodes) != 2 {
		t.Fatalf("after joins: changed %v, seen %d, %d nodes; want true, 5, 2", changed, seen, len(nodes))
	}

	steps := []struct {
		name        string
		event       func()
		wantChanged bool
		wantSeen    uint64
	}{
		{name: "higher counter gossiped: seen, not a change", event: func() { tr.NotifyUpdate(node("b", 9)) }, wantSeen: 9},
		{name: "own update: not a change", event: func() { tr.NotifyUpdate(node("self", 3)) }, wantSeen: 9},
		{name: "counter went back: b restarted", event: func() { tr.NotifyUpdate(node("b", 1)) }, wantChanged: true, wantSeen: 9},
		{name: "join", event: func() { tr.NotifyJoin(node("c", 12)) }, wantChanged: true, wantSeen: 12},
		{name: "leave keeps its counter in seen", event: func() { tr.NotifyUpdate(node("c", 14)); tr.NotifyLeave(node("c", 14)) }, wantChanged: true, wantSeen: 14},
	}
	for _, s := range steps {
		s.event()
		_, changed, seen := tr.take()
		if changed != s.wantChanged || seen != s.wantSeen {
			t.Errorf("%s: changed %v, seen %d; want %v, %d", s.name, changed, seen, s.wantChanged, s.wantSeen)
		}
	}
	select {
	case <-tr.notify:
	default:
		t.Error("tracker never signalled")
	}
}

func TestTrackerRefusesForeignAndCollidingNodes(t *testing.T) {
	n1, n2 := "hub-3688", "hub-667976" // found by search: their 32-bit tags collide
	if nodeTag(n1) != nodeTag(n2) {
		t.Fatalf("tags of %s and %s differ: nodeTag changed, which breaks every replica's epochs", n1, n2)
	}
	meta := encodeMeta(nodeMeta{Version: metaVersion, GRPC: "x:1"})
	tr := newTracker("self")
	tr.NotifyJoin(&memberlist.Node{Name: n1, Meta: meta})

	tests := []struct {
		name    string
		node    *memberlist.Node
		wantErr bool
	}{
		{name: "known member", node: &memberlist.Node{Name: n1, Meta: meta}},
		{name: "new member", node: &memberlist.Node{Name: "hub-new", Meta: meta}},
		{name: "tag collision", node: &memberlist.Node{Name: n2, Meta: meta}, wantErr: true},
		{name: "no metadata", node: &memberlist.Node{Name: "other"}, wantErr: true},
		{name: "other metadata version", node: &memberlist.Node{Name: "other", Meta: []byte(`{"v":2}`)}, wantErr: true},
	}
	for _, tt := range tests {
		if err := tr.NotifyAlive(tt.node); (err != nil) != tt.wantErr {
			t.Errorf("%s: NotifyAlive = %v, want error %v", tt.name, err, tt.wantErr)
		}
	}
}

func TestViewEpochs(t *testing.T) {
	nodes := map[string]nodeMeta{
		"self": {Version: metaVersion, GRPC: "stale", Epoch: 1},
		"b":    {Version: metaVersion, GRPC: "b:1", Epoch: 7},
	}
	v := buildView("self", "self:1", 8, nodes)
	want := []Member{{Name: "b", GRPCAddr: "b:1"}, {Name: "self", GRPCAddr: "self:1"}}
	if !slices.Equal(v.members, want) {
		t.Fatalf("members %v, want %v", v.members, want)
	}
	if got := v.epochs["self"]; got != packEpoch(8, "self") || got>>32 != 8 {
		t.Errorf("own epoch %x, want counter 8 from the local replica, not its gossiped metadata", got)
	}
	if v.epochs["b"] == v.epochs["self"] || v.epochs["b"]>>32 != 7 {
		t.Errorf("epoch of b %x", v.epochs["b"])
	}
	clusters := names("cluster", 50)
	for _, c := range clusters {
		o, e := v.owner(c, clusters)
		if e != v.epochs[o.Name] {
			t.Fatalf("%s: owner %s with epoch %x, want its own %x", c, o.Name, e, v.epochs[o.Name])
		}
	}
	if o, _ := v.owner("not-listed", clusters); o.Name == "" {
		t.Error("no owner for a cluster missing from the list")
	}
	if o, e := v.owner("", clusters); o != (Member{}) || e != 0 {
		t.Errorf("owner of the empty name: %v %x", o, e)
	}
}
