package apply

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/shared/policy"
)

// PolicyError is a revision refused before anything was applied: objects that the app's
// spec.policy does not allow, or that belong to the agent itself. Each violation names the
// object and the rule. The revision fails the same way every time (IsRejected).
type PolicyError struct {
	Violations []string
}

func (e *PolicyError) Error() string { return strings.Join(e.Violations, "; ") }

// Self-management: the agent never lets an app modify the agent itself.
const (
	// LabelAgentName is the label the agent's chart puts on everything it installs
	// (app.kubernetes.io/name, the chart name).
	LabelAgentName = "app.kubernetes.io/name"
	// AgentName is its value, and the prefix of the names of the agent's own objects.
	AgentName = "flotilla-agent"
)

// selfGuard keeps desired state away from the agent itself: everything in its own namespace
// (its identity and state Secrets, its Deployment, ...), that namespace, and its own
// ServiceAccount, Roles, RoleBindings, ClusterRoles and ClusterRoleBindings wherever they are
// (named flotilla-agent* or labelled app.kubernetes.io/name=flotilla-agent, as the chart
// labels them; the live object's labels count too). The zero value guards nothing.
type selfGuard struct {
	namespace string // the agent's own namespace; "" turns the guard off
}

// selfKinds are the kinds of the agent's own identity and permissions.
var selfKinds = map[schema.GroupKind]bool{
	{Kind: "ServiceAccount"}:                                         true,
	{Group: "rbac.authorization.k8s.io", Kind: "Role"}:               true,
	{Group: "rbac.authorization.k8s.io", Kind: "RoleBinding"}:        true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:        true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}: true,
}

// checkPolicy (the app's spec.policy, shared/policy) refuses d when any of its objects violates d.Access or touches the agent itself;
// it writes nothing. Scope comes from the cluster's RESTMapper (or a CRD of the bundle).
func (a *Applier) checkPolicy(ctx context.Context, d *Revision) error {
	crds := bundleCRDs(d.Objects)
	fresh := false
	var violations []string
	for _, o := range slices.Concat(d.Objects, d.Hooks) {
		gvk := o.GroupVersionKind()
		namespaced, _, err := a.scope(ctx, gvk, crds, &item{obj: o}, &fresh)
		if err != nil {
			return err
		}
		ns := ""
		if namespaced {
			if ns = o.GetNamespace(); ns == "" {
				ns = d.Namespace
			}
		}
		v, err := a.self.violation(ctx, a, o, ns, namespaced)
		if err != nil {
			return err
		}
		if v == "" {
			v = accessViolation(d.Access, d.Namespace, o, gvk.GroupKind(), ns, namespaced)
		}
		if v != "" {
			violations = append(violations, v)
		}
	}
	if len(violations) == 0 {
		return nil
	}
	return &PolicyError{Violations: violations}
}

// accessViolation returns why p refuses o (of kind gk, going to namespace ns when namespaced),
// or "". The wording matches the hub's.
func accessViolation(p policy.Access, dest string, o *unstructured.Unstructured, gk schema.GroupKind, ns string, namespaced bool) string {
	name := policyName(o, ns, namespaced)
	switch {
	case p.Denies(gk):
		return fmt.Sprintf("%s: kind %s is denied by spec.policy.deny", name, policy.KindName(gk))
	case !namespaced && !p.AllowsClusterKind(gk):
		return fmt.Sprintf("%s: cluster-scoped kind %s is not allowed by spec.policy.clusterResources", name, policy.KindName(gk))
	case !namespaced && gk == (schema.GroupKind{Kind: "Namespace"}) && !p.AllowsNamespace(o.GetName(), dest):
		return fmt.Sprintf("%s: namespace %q is not allowed by spec.policy.namespaces%s", name, o.GetName(), p.NamespacesNote(dest))
	case namespaced && ns != "" && !p.AllowsNamespace(ns, dest):
		return fmt.Sprintf("%s: namespace %q is not allowed by spec.policy.namespaces%s", name, ns, p.NamespacesNote(dest))
	}
	return "" // a namespaced object without any namespace fails in prepare
}

// violation returns why o, going to namespace ns, would modify the agent itself, or "".
func (g selfGuard) violation(ctx context.Context, a *Applier, o *unstructured.Unstructured, ns string, namespaced bool) (string, error) {
	if g.namespace == "" {
		return "", nil
	}
	gvk := o.GroupVersionKind()
	name := policyName(o, ns, namespaced)
	const why = "the agent does not let apps modify itself (--allow-self-management)"
	switch {
	case namespaced && ns == g.namespace:
		return fmt.Sprintf("%s: in the agent's own namespace %q: %s", name, g.namespace, why), nil
	case !namespaced && isNamespace(gvk) && o.GetName() == g.namespace:
		return fmt.Sprintf("%s: the agent's own namespace: %s", name, why), nil
	case !selfKinds[gvk.GroupKind()]:
		return "", nil
	case strings.HasPrefix(o.GetName(), AgentName), o.GetLabels()[LabelAgentName] == AgentName:
		return fmt.Sprintf("%s: the agent's own %s: %s", name, gvk.Kind, why), nil
	}
	// The chart names these after its release ("<release>-flotilla-agent"): the live object's
	// label tells.
	if !namespaced {
		ns = ""
	}
	live, err := a.Get(ctx, ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: ns, Name: o.GetName()})
	if err != nil {
		return "", objectError("get", ObjectRef{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: ns, Name: o.GetName()}, err)
	}
	if live != nil && live.GetLabels()[LabelAgentName] == AgentName {
		return fmt.Sprintf("%s: the agent's own %s (labelled %s=%s): %s", name, gvk.Kind, LabelAgentName, AgentName, why), nil
	}
	return "", nil
}

// policyName names o as people read it, as the hub does: "ClusterRole/admin-all",
// "Deployment/api/web".
func policyName(o *unstructured.Unstructured, ns string, namespaced bool) string {
	if namespaced && ns != "" {
		return o.GetKind() + "/" + ns + "/" + o.GetName()
	}
	return o.GetKind() + "/" + o.GetName()
}
