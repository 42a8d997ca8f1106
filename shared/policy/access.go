// Package policy is an Application's spec.policy, the access rules both the hub (after each
// render) and the agent (before it applies, authoritatively) check an app's objects against.
package policy

import (
	"fmt"
	"path"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Access is what an app's objects may touch, much like an Argo CD AppProject but written on
// the Application itself (Flotilla has no projects).
//
// The zero value is the default and fails closed: namespaced objects only in the destination
// namespace, no cluster-scoped objects at all.
type Access struct {
	// Namespaces are globs (path.Match: *, ?, [a-z]) over the namespaces the app's namespaced
	// objects may go to, and the names its Namespace objects may have. Empty: only the
	// destination namespace.
	Namespaces []string
	// ClusterResources are the cluster-scoped kinds the app may hold; group and kind are globs
	// ("*" matches any, including the core group ""). Empty: none.
	ClusterResources []schema.GroupKind
	// Deny are kinds the app may never hold, namespaced or not; a deny wins over everything.
	Deny []schema.GroupKind
}

// AllowsNamespace reports whether the app's namespaced objects may go to namespace ns (and a
// Namespace object may be named ns): ns matches one of Namespaces or, when there are none, is
// the destination namespace dest.
func (p Access) AllowsNamespace(ns, dest string) bool {
	if len(p.Namespaces) == 0 {
		return ns != "" && ns == dest
	}
	return slices.ContainsFunc(p.Namespaces, func(g string) bool {
		ok, _ := path.Match(g, ns)
		return ok
	})
}

// AllowsClusterKind reports whether the app may hold cluster-scoped objects of kind gk.
func (p Access) AllowsClusterKind(gk schema.GroupKind) bool {
	return slices.ContainsFunc(p.ClusterResources, func(g schema.GroupKind) bool { return matchKind(g, gk) })
}

// Denies reports whether kind gk is denied.
func (p Access) Denies(gk schema.GroupKind) bool {
	return slices.ContainsFunc(p.Deny, func(g schema.GroupKind) bool { return matchKind(g, gk) })
}

// NamespacesNote explains, for a refusal, what unset Namespaces mean for destination dest;
// it is empty when Namespaces are set.
func (p Access) NamespacesNote(dest string) string {
	switch {
	case len(p.Namespaces) > 0:
		return ""
	case dest == "":
		return " (unset: only the destination namespace, and the app has none)"
	default:
		return fmt.Sprintf(" (unset: only the destination namespace %q)", dest)
	}
}

// KindName is "group/Kind", or "Kind" for the core group.
func KindName(gk schema.GroupKind) string {
	if gk.Group == "" {
		return gk.Kind
	}
	return gk.Group + "/" + gk.Kind
}

// matchKind matches gk against the group and kind globs of pattern.
func matchKind(pattern, gk schema.GroupKind) bool {
	g, _ := path.Match(pattern.Group, gk.Group)
	k, _ := path.Match(pattern.Kind, gk.Kind)
	return g && k
}
