package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/policy"
	"github.com/flotilla-dev/flotilla/shared/syncoptions"
)

// The hub checks each render against its app's spec.policy before it becomes desired state, so
// a violation shows at once in `flotilla apps` and nothing is sent. The agent checks again
// before it applies; its check is the authoritative one, because only the cluster knows for
// sure which kinds are cluster-scoped. The hub decides scope without a cluster (scopeOf):
//
//  1. a kind of clusterScoped is cluster-scoped, a kind of namespacedKinds is namespaced;
//  2. a kind defined by a CustomResourceDefinition of the same bundle has that CRD's scope;
//  3. any other object is cluster-scoped when it has no metadata.namespace (fail closed: a
//     custom resource whose CRD comes from elsewhere needs metadata.namespace to be taken for
//     namespaced), namespaced otherwise.

// clusterScoped are the well-known cluster-scoped kinds of Kubernetes.
var clusterScoped = kindSet(map[string][]string{
	"":                             {"Namespace", "Node", "PersistentVolume", "ComponentStatus"},
	"rbac.authorization.k8s.io":    {"ClusterRole", "ClusterRoleBinding"},
	"apiextensions.k8s.io":         {"CustomResourceDefinition"},
	"apiregistration.k8s.io":       {"APIService"},
	"admissionregistration.k8s.io": {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"},
	"storage.k8s.io":               {"StorageClass", "CSIDriver", "CSINode", "VolumeAttachment", "VolumeAttributesClass"},
	"scheduling.k8s.io":            {"PriorityClass"},
	"node.k8s.io":                  {"RuntimeClass"},
	"networking.k8s.io":            {"IngressClass", "IPAddress", "ServiceCIDR"},
	"certificates.k8s.io":          {"CertificateSigningRequest", "ClusterTrustBundle"},
	"flowcontrol.apiserver.k8s.io": {"FlowSchema", "PriorityLevelConfiguration"},
	"resource.k8s.io":              {"DeviceClass", "ResourceSlice"},
	"authentication.k8s.io":        {"TokenReview", "SelfSubjectReview"},
	"authorization.k8s.io":         {"SubjectAccessReview", "SelfSubjectAccessReview", "SelfSubjectRulesReview"},
	"internal.apiserver.k8s.io":    {"StorageVersion"},
	"storagemigration.k8s.io":      {"StorageVersionMigration"},
})

// namespacedKinds are the well-known namespaced kinds of Kubernetes.
var namespacedKinds = kindSet(map[string][]string{
	"": {"Pod", "Service", "ConfigMap", "Secret", "ServiceAccount", "PersistentVolumeClaim", "Endpoints",
		"Event", "LimitRange", "ResourceQuota", "ReplicationController", "PodTemplate"},
	"apps":                      {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ControllerRevision"},
	"batch":                     {"Job", "CronJob"},
	"autoscaling":               {"HorizontalPodAutoscaler"},
	"networking.k8s.io":         {"Ingress", "NetworkPolicy"},
	"policy":                    {"PodDisruptionBudget"},
	"rbac.authorization.k8s.io": {"Role", "RoleBinding"},
	"coordination.k8s.io":       {"Lease"},
	"discovery.k8s.io":          {"EndpointSlice"},
	"events.k8s.io":             {"Event"},
	"storage.k8s.io":            {"CSIStorageCapacity"},
	"resource.k8s.io":           {"ResourceClaim", "ResourceClaimTemplate"},
	"authorization.k8s.io":      {"LocalSubjectAccessReview"},
	"flotilla.dev":              {"EncryptedSecret"}, // becomes a Secret on the agent
})

func kindSet(byGroup map[string][]string) map[schema.GroupKind]bool {
	out := map[schema.GroupKind]bool{}
	for g, kinds := range byGroup {
		for _, k := range kinds {
			out[schema.GroupKind{Group: g, Kind: k}] = true
		}
	}
	return out
}

// policyObject is what the policy check needs of one object of a bundle.
type policyObject struct {
	gk        schema.GroupKind
	namespace string
	name      string
	cluster   bool // cluster-scoped, as scopeOf decides
	// unknownOptions are the per-object sync options in its annotations that the agent does
	// not honour (shared/syncoptions).
	unknownOptions []string
}

// String names the object as people read it: "ClusterRole/admin-all", "Deployment/api/web".
func (o policyObject) String() string {
	if o.namespace != "" && !o.cluster {
		return o.gk.Kind + "/" + o.namespace + "/" + o.name
	}
	return o.gk.Kind + "/" + o.name
}

// policyIndexMax bounds the bundles whose objects a policyIndex remembers.
const policyIndexMax = 512

// policyIndex remembers the objects of recent bundles by digest: a bundle sent to a thousand
// clusters is decoded once, not once per cluster and round. The zero value is ready.
type policyIndex struct {
	mu       sync.Mutex
	byDigest map[string][]policyObject
}

// objects returns the policy view of b's objects.
func (x *policyIndex) objects(b *bundle.Bundle) ([]policyObject, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if objs, ok := x.byDigest[b.Digest]; ok {
		return objs, nil
	}
	objs, err := decodePolicyObjects(b.Data)
	if err != nil {
		return nil, err
	}
	if x.byDigest == nil || len(x.byDigest) >= policyIndexMax {
		x.byDigest = map[string][]policyObject{}
	}
	x.byDigest[b.Digest] = objs
	return objs, nil
}

// decodePolicyObjects reads the kinds, names and namespaces of a bundle's objects, and the
// scope of the kinds its CRDs define, without decoding anything else.
func decodePolicyObjects(data []byte) ([]policyObject, error) {
	var raw []struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name        string            `json:"name"`
			Namespace   string            `json:"namespace"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("policy check: decode bundle: %w", err)
	}
	crds := map[schema.GroupKind]bool{} // kind → cluster-scoped
	objs := make([]policyObject, len(raw))
	for i, r := range raw {
		gv, err := schema.ParseGroupVersion(r.APIVersion)
		if err != nil {
			return nil, fmt.Errorf("policy check: %s/%s: %w", r.Kind, r.Metadata.Name, err)
		}
		objs[i] = policyObject{gk: schema.GroupKind{Group: gv.Group, Kind: r.Kind}, namespace: r.Metadata.Namespace, name: r.Metadata.Name,
			unknownOptions: syncoptions.Unknown(r.Metadata.Annotations)}
		if objs[i].gk == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}) && len(r.Spec) > 0 {
			var spec struct {
				Group string `json:"group"`
				Scope string `json:"scope"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
			}
			if json.Unmarshal(r.Spec, &spec) == nil && spec.Group != "" && spec.Names.Kind != "" {
				crds[schema.GroupKind{Group: spec.Group, Kind: spec.Names.Kind}] = spec.Scope == "Cluster"
			}
		}
	}
	for i := range objs {
		objs[i].cluster = scopeOf(objs[i], crds)
	}
	return objs, nil
}

// optionWarnings names, for `flotilla apps`, the per-object sync and compare options of b's
// objects that the agent does not honour.
func (r *Reconciler) optionWarnings(b *bundle.Bundle) []string {
	objs, err := r.policy.objects(b)
	if err != nil {
		return nil // the policy check reports it
	}
	var out []string
	for _, o := range objs {
		if len(o.unknownOptions) > 0 {
			out = append(out, fmt.Sprintf("%s: sync options %s are not supported and are ignored", o, strings.Join(o.unknownOptions, ", ")))
		}
	}
	return out
}

// scopeOf decides whether o is cluster-scoped (see the rule at the top of this file).
func scopeOf(o policyObject, crds map[schema.GroupKind]bool) bool {
	switch {
	case clusterScoped[o.gk]:
		return true
	case namespacedKinds[o.gk]:
		return false
	}
	if cluster, ok := crds[o.gk]; ok {
		return cluster
	}
	return o.namespace == ""
}

// maxViolations bounds the violations one error lists.
const maxViolations = 10

// checkAccess returns an error naming every object (up to maxViolations) that p refuses and
// the rule that refuses it; dest is the app's destination namespace.
func checkAccess(p apps.AccessPolicy, dest string, objs []policyObject) error {
	var violations []string
	for _, o := range objs {
		if v := violation(p, dest, o); v != "" {
			violations = append(violations, v)
		}
	}
	if len(violations) == 0 {
		return nil
	}
	if n := len(violations); n > maxViolations {
		violations = append(violations[:maxViolations], fmt.Sprintf("and %d more", n-maxViolations))
	}
	return errors.New(strings.Join(violations, "; "))
}

// violation returns why p refuses o, or "". A deny wins over everything; a Namespace must be
// an allowed cluster-scoped kind and have an allowed name. A namespaced object without a
// namespace goes to dest, and is named so.
func violation(p apps.AccessPolicy, dest string, o policyObject) string {
	if !o.cluster && o.namespace == "" {
		o.namespace = dest
	}
	switch {
	case p.Denies(o.gk):
		return fmt.Sprintf("%s: kind %s is denied by spec.policy.deny", o, policy.KindName(o.gk))
	case o.cluster && !p.AllowsClusterKind(o.gk):
		return fmt.Sprintf("%s: cluster-scoped kind %s is not allowed by spec.policy.clusterResources", o, policy.KindName(o.gk))
	case o.cluster && o.gk == (schema.GroupKind{Kind: "Namespace"}) && !p.AllowsNamespace(o.name, dest):
		return fmt.Sprintf("%s: namespace %q is not allowed by spec.policy.namespaces%s", o, o.name, p.NamespacesNote(dest))
	case o.cluster:
		return ""
	}
	if o.namespace != "" && !p.AllowsNamespace(o.namespace, dest) {
		return fmt.Sprintf("%s: namespace %q is not allowed by spec.policy.namespaces%s", o, o.namespace, p.NamespacesNote(dest))
	}
	return "" // no namespace at all: the agent refuses it
}

// checkPolicy refuses a render of app whose objects its spec.policy does not allow.
func (r *Reconciler) checkPolicy(app *apps.Application, b *bundle.Bundle) error {
	objs, err := r.policy.objects(b)
	if err != nil {
		return err
	}
	return checkAccess(app.Access, app.Destination.Namespace, objs)
}
