// Package drift describes the drift agents report (objects whose live state differs from Git,
// with the field-level diff the agent wrote, Secret values already masked by it) in the words
// both `flotilla diff` and the dashboard show: the object's kind and name, what happened to it,
// and the diff's lines. Neither adds a value the agent did not send.
package drift

import (
	"strings"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// Contested is what a contested drift item adds to its type.
const Contested = "contested: another actor keeps changing it back; self-heal is backing off"

// Entry is one drifted object of an app on a cluster, as shown to people.
type Entry struct {
	Cluster string
	// Kind is Kind.group (the group left out for the core group).
	Kind string
	// Name is namespace/name, or name for a cluster-scoped object.
	Name string
	// Type is "missing" or "modified", and why self-heal backs off when contested.
	Type string
	// Diff is the agent's field-level diff without trailing newlines (Secret values masked by
	// the agent); empty for a missing object.
	Diff string
}

// Entries lists the drift of each status row in order.
func Entries(items []*flotillav1.AppClusterStatus) []Entry {
	var out []Entry
	for _, s := range items {
		for _, d := range s.Drift {
			out = append(out, Of(s.Cluster, d))
		}
	}
	return out
}

// Of describes one drift item reported from cluster.
func Of(cluster string, d *flotillav1.DriftItem) Entry {
	kind, name := Object(d.Object)
	typ := d.Type
	if d.Contested {
		typ += ", " + Contested
	}
	return Entry{Cluster: cluster, Kind: kind, Name: name, Type: typ, Diff: strings.TrimRight(d.Diff, "\n")}
}

// Object names an object as people read it: Kind.group (the group left out for the core
// group) and namespace/name (name alone for a cluster-scoped object).
func Object(o *flotillav1.ObjectRef) (kind, name string) {
	kind, name = o.GetKind(), o.GetName()
	if g := o.GetGroup(); g != "" {
		kind += "." + g
	}
	if ns := o.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return kind, name
}
