package charts

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
)

// checkCommon checks every rendered object: identity, namespaces, valid names, references
// between objects, selectors.
func checkCommon(t *testing.T, objs []*unstructured.Unstructured, namespace string) {
	t.Helper()
	clusterScoped := map[string]bool{"ClusterRole": true, "ClusterRoleBinding": true, "Namespace": true}
	seen := map[string]bool{}
	for _, o := range objs {
		id := o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
		if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" {
			t.Errorf("object without apiVersion, kind or name: %v", o.Object)
		}
		if seen[id] {
			t.Errorf("%s rendered twice", id)
		}
		seen[id] = true
		if errs := validation.IsDNS1123Subdomain(o.GetName()); len(errs) > 0 {
			t.Errorf("%s: name: %v", id, errs)
		}
		switch {
		case clusterScoped[o.GetKind()]:
			if o.GetNamespace() != "" {
				t.Errorf("%s: cluster-scoped object with a namespace", id)
			}
		case o.GetNamespace() == "":
			t.Errorf("%s: namespaced object without a namespace", id)
		case o.GetNamespace() != namespace && !(o.GetKind() == "Role" || o.GetKind() == "RoleBinding"):
			t.Errorf("%s: outside the release namespace %s", id, namespace)
		}
		if o.GetKind() == "Service" {
			if errs := validation.IsDNS1035Label(o.GetName()); len(errs) > 0 {
				t.Errorf("%s: Service name: %v", id, errs)
			}
		}
		for k, v := range o.GetLabels() {
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				t.Errorf("%s: label key %q: %v", id, k, errs)
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				t.Errorf("%s: label %s value %q: %v", id, k, v, errs)
			}
		}
		switch o.GetKind() {
		case "RoleBinding":
			rb := typed[rbacv1.RoleBinding](t, o)
			checkBinding(t, objs, id, o.GetNamespace(), rb.RoleRef, rb.Subjects)
		case "ClusterRoleBinding":
			crb := typed[rbacv1.ClusterRoleBinding](t, o)
			checkBinding(t, objs, id, "", crb.RoleRef, crb.Subjects)
		case "Deployment":
			d := typed[appsv1.Deployment](t, o)
			checkPodRefs(t, objs, id, namespace, d.Spec.Selector.MatchLabels, d.Spec.Template)
		case "StatefulSet":
			s := typed[appsv1.StatefulSet](t, o)
			checkPodRefs(t, objs, id, namespace, s.Spec.Selector.MatchLabels, s.Spec.Template)
			if !has(objs, "Service", s.Spec.ServiceName) {
				t.Errorf("%s: serviceName %s not rendered", id, s.Spec.ServiceName)
			}
		case "Service":
			svc := typed[corev1.Service](t, o)
			if len(svc.Spec.Selector) == 0 {
				t.Errorf("%s: no selector", id)
			}
		}
	}
}

// checkBinding checks that a binding's role and ServiceAccount subjects are rendered too
// (unless the ServiceAccount is not the chart's to create).
func checkBinding(t *testing.T, objs []*unstructured.Unstructured, id, ns string, ref rbacv1.RoleRef, subjects []rbacv1.Subject) {
	t.Helper()
	if ref.Kind == "Role" {
		findIn(t, objs, "Role", ns, ref.Name)
	} else {
		find(t, objs, ref.Kind, ref.Name)
	}
	if len(subjects) == 0 {
		t.Errorf("%s: no subjects", id)
	}
	for _, s := range subjects {
		if s.Kind != "ServiceAccount" || s.Namespace == "" {
			t.Errorf("%s: subject %+v", id, s)
		}
		if len(ofKind(objs, "ServiceAccount")) > 0 && !has(objs, "ServiceAccount", s.Name) {
			t.Errorf("%s: ServiceAccount %s not rendered", id, s.Name)
		}
	}
}

// checkPodRefs checks a workload's selector against its pod labels, and that the Secrets and
// ConfigMaps its pod uses are rendered or are the ones the values name.
func checkPodRefs(t *testing.T, objs []*unstructured.Unstructured, id, ns string, selector map[string]string, pod corev1.PodTemplateSpec) {
	t.Helper()
	for k, v := range selector {
		if pod.Labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the pod labels %v", id, k, v, pod.Labels)
		}
	}
	external := map[string]bool{"cluster-c1-token": true, "hub-gossip": true, "hub-webhook": true, "hub-ca": true}
	for _, c := range pod.Spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				ref := e.ValueFrom.SecretKeyRef
				if external[ref.Name] {
					continue
				}
				sec := typed[corev1.Secret](t, findIn(t, objs, "Secret", ns, ref.Name))
				if _, ok := sec.Data[ref.Key]; !ok {
					t.Errorf("%s: env %s from Secret %s key %s: no such key", id, e.Name, ref.Name, ref.Key)
				}
			}
		}
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.Secret != nil && !external[v.Secret.SecretName]:
			sec := typed[corev1.Secret](t, findIn(t, objs, "Secret", ns, v.Secret.SecretName))
			for _, it := range v.Secret.Items {
				if _, ok := sec.Data[it.Key]; !ok {
					t.Errorf("%s: volume %s: Secret %s has no key %s", id, v.Name, sec.Name, it.Key)
				}
			}
		case v.ConfigMap != nil:
			findIn(t, objs, "ConfigMap", ns, v.ConfigMap.Name)
		}
	}
}

// checkSecurity checks the pod and container security settings both charts promise.
func checkSecurity(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v", psc)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("container %s: no securityContext", c.Name)
			continue
		}
		if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
			t.Errorf("container %s: runAsNonRoot %s runAsUser %s, want true and 65532", c.Name, deref(sc.RunAsNonRoot), deref(sc.RunAsUser))
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: root filesystem writable", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: privilege escalation allowed", c.Name)
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s: capabilities %+v, want drop ALL", c.Name, sc.Capabilities)
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("container %s: seccompProfile %+v", c.Name, sc.SeccompProfile)
		}
	}
}

// checkProbes checks liveness on /healthz and readiness on /readyz, on the container port
// numbered port.
func checkProbes(t *testing.T, c corev1.Container, port int32) {
	t.Helper()
	for name, p := range map[string]struct {
		probe *corev1.Probe
		path  string
	}{"liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("container %s: no HTTP %s probe", c.Name, name)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			t.Errorf("container %s: %s probe path %q, want %q", c.Name, name, p.probe.HTTPGet.Path, p.path)
		}
		got := p.probe.HTTPGet.Port.IntVal
		if p.probe.HTTPGet.Port.StrVal != "" {
			got = 0
			for _, cp := range c.Ports {
				if cp.Name == p.probe.HTTPGet.Port.StrVal {
					got = cp.ContainerPort
				}
			}
		}
		if got != port {
			t.Errorf("container %s: %s probe on port %d (%s), want %d", c.Name, name, got, p.probe.HTTPGet.Port.String(), port)
		}
	}
}

// checkFlags checks that every argument is a --flag=value (or --flag) the binary has.
func checkFlags(t *testing.T, args, known []string) {
	t.Helper()
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || !slices.Contains(known, name) {
			t.Errorf("argument %q: not a flag the binary has (%s)", a, strings.Join(known, ", "))
		}
	}
}

// checkEnvExpansion checks that every $(VAR) in the arguments names an env var of the container:
// Kubernetes leaves references to undefined variables as they are.
func checkEnvExpansion(t *testing.T, c corev1.Container) {
	t.Helper()
	env := envByName(c)
	for _, a := range c.Args {
		for rest := a; ; {
			i := strings.Index(rest, "$(")
			if i < 0 {
				break
			}
			j := strings.Index(rest[i:], ")")
			if j < 0 {
				t.Errorf("argument %q: unterminated $(", a)
				break
			}
			if _, ok := env[rest[i+2:i+j]]; !ok {
				t.Errorf("argument %q refers to $(%s), which the container does not define", a, rest[i+2:i+j])
			}
			rest = rest[i+j:]
		}
	}
}

// deref prints *p, or nil.
func deref[T any](p *T) string {
	if p == nil {
		return "nil"
	}
	return fmt.Sprint(*p)
}

// allows reports whether rules grant verb on group/resource.
func allows(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	match := func(list []string, v string) bool { return slices.Contains(list, v) || slices.Contains(list, "*") }
	for _, r := range rules {
		if match(r.APIGroups, group) && match(r.Resources, resource) && match(r.Verbs, verb) && len(r.ResourceNames) == 0 {
			return true
		}
	}
	return false
}

// flagValues returns the values of --name=value arguments, in order.
func flagValues(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func envByName(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

// typed converts u to T, failing on fields T does not have (a misspelt or misplaced field).
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return out
}

func deployment(t *testing.T, objs []*unstructured.Unstructured, name string) *appsv1.Deployment {
	t.Helper()
	return typed[appsv1.Deployment](t, find(t, objs, "Deployment", name))
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s in %s", kind, name, describe(objs))
	return nil
}

func findIn(t *testing.T, objs []*unstructured.Unstructured, kind, ns, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s/%s in %s", kind, ns, name, describe(objs))
	return nil
}

func has(objs []*unstructured.Unstructured, kind, name string) bool {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return true
		}
	}
	return false
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func kinds(objs []*unstructured.Unstructured) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.GetKind()
	}
	return out
}

func describe(objs []*unstructured.Unstructured) string {
	var b strings.Builder
	for _, o := range objs {
		fmt.Fprintf(&b, "\n  %s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
	}
	return b.String()
}

// appVersion is the appVersion of the chart in directory name.
func appVersion(t *testing.T, name string) string {
	t.Helper()
	ch, err := Load(name)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.AppVersion == "" {
		t.Fatalf("chart %s has no appVersion", name)
	}
	return ch.Metadata.AppVersion
}
