// Package health assesses the health of Kubernetes objects, with Argo CD's vocabulary, and folds
// many assessments into one. Built-in rules cover the core workload, networking, storage and
// API-extension kinds (rules.go, workloads.go); other custom resources follow the kstatus
// conventions (Ready, Reconciling and Stalled conditions, observedGeneration); users add CEL
// rules for the kinds they own (cel.go).
package health

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Status is the health of one object or of an app.
type Status string

// Health states, as Argo CD names them.
const (
	Healthy     Status = "Healthy"
	Progressing Status = "Progressing"
	Degraded    Status = "Degraded"
	Suspended   Status = "Suspended"
	Missing     Status = "Missing"
	Unknown     Status = "Unknown"
)

// rank orders statuses from best to worst for Worst:
//
//	Healthy < Unknown < Suspended < Progressing < Missing < Degraded
//
// Degraded is worst: something failed and needs a person. Missing comes next: an object the app
// declares is not there at all. Progressing outranks Suspended and Unknown because it says the
// app is not done yet, which is what an operator asks first. Unknown (a kind kstatus cannot
// read, or an error reading it) ranks just above Healthy so that one unreadable object does not
// hide the real state of the rest; it still keeps an app from being reported Healthy.
var rank = map[Status]int{
	Healthy:     0,
	Unknown:     1,
	Suspended:   2,
	Progressing: 3,
	Missing:     4,
	Degraded:    5,
}

// Valid reports whether s is one of the health states.
func Valid(s Status) bool {
	_, ok := rank[s]
	return ok
}

// Worst returns the worst of statuses by the order documented on rank; Healthy when there are
// none. An unrecognised status counts as Unknown.
func Worst(statuses ...Status) Status {
	worst := Healthy
	for _, s := range statuses {
		if !Valid(s) {
			s = Unknown
		}
		if rank[s] > rank[worst] {
			worst = s
		}
	}
	return worst
}

// presentIsHealthy lists kinds (group/kind) without a status worth reading: they are Healthy as
// soon as they exist.
var presentIsHealthy = map[string]bool{
	"/ConfigMap":                            true,
	"/Secret":                               true,
	"/ServiceAccount":                       true,
	"/Endpoints":                            true,
	"/LimitRange":                           true,
	"/ResourceQuota":                        true,
	"/PodTemplate":                          true,
	"rbac.authorization.k8s.io/Role":        true,
	"rbac.authorization.k8s.io/ClusterRole": true,
	"rbac.authorization.k8s.io/RoleBinding": true,
	"rbac.authorization.k8s.io/ClusterRoleBinding":                true,
	"networking.k8s.io/NetworkPolicy":                             true,
	"networking.k8s.io/IngressClass":                              true,
	"scheduling.k8s.io/PriorityClass":                             true,
	"storage.k8s.io/StorageClass":                                 true,
	"coordination.k8s.io/Lease":                                   true,
	"admissionregistration.k8s.io/ValidatingWebhookConfiguration": true,
	"admissionregistration.k8s.io/MutatingWebhookConfiguration":   true,
}

// Assess returns the health of obj by the built-in rules, and a message for people. A nil obj
// is Missing. It is (*Assessor)(nil).Assess.
func Assess(obj *unstructured.Unstructured) (Status, string) {
	var a *Assessor
	return a.Assess(obj)
}

// builtin assesses obj, which exists and is not being deleted, without custom rules.
func builtin(obj *unstructured.Unstructured) (Status, string) {
	gvk := obj.GroupVersionKind()
	key := gvk.Group + "/" + gvk.Kind
	if presentIsHealthy[key] {
		return Healthy, "present"
	}
	if s, msg, ok := suspended(obj); ok {
		return s, msg
	}
	obj = normalized(obj)
	if rule := builtinRules[key]; rule != nil {
		if s, msg, ok := unobserved(obj); ok {
			return s, msg
		}
		return rule(obj)
	}
	return viaKstatus(obj)
}

// suspended recognises objects switched off on purpose: spec.suspend (CronJob, Job and most
// controllers' custom resources) and a paused Deployment.
func suspended(obj *unstructured.Unstructured) (Status, string, bool) {
	if v, ok, _ := unstructured.NestedBool(obj.Object, "spec", "suspend"); ok && v {
		return Suspended, "suspended", true
	}
	if obj.GetKind() == "Deployment" {
		if v, ok, _ := unstructured.NestedBool(obj.Object, "spec", "paused"); ok && v {
			return Suspended, "rollout paused", true
		}
	}
	return "", "", false
}

// normalized returns obj with integers as int64, as the API client decodes them, which
// kstatus and the rules read: objects decoded with encoding/json (shared/bundle.Decode, YAML
// files) carry float64. An object without floats is returned as it is.
func normalized(obj *unstructured.Unstructured) *unstructured.Unstructured {
	if !hasFloat(obj.Object) {
		return obj
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		return obj
	}
	out := &unstructured.Unstructured{}
	if err := out.UnmarshalJSON(data); err != nil {
		return obj
	}
	return out
}

func hasFloat(v any) bool {
	switch v := v.(type) {
	case float64, float32:
		return true
	case map[string]any:
		for _, x := range v {
			if hasFloat(x) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if hasFloat(x) {
				return true
			}
		}
	}
	return false
}

// viaKstatus assesses obj by the kstatus conventions.
func viaKstatus(obj *unstructured.Unstructured) (Status, string) {
	res, err := status.Compute(obj)
	if err != nil {
		return Unknown, fmt.Sprintf("cannot assess: %v", err)
	}
	return fromKstatus(res.Status), message(res)
}

func fromKstatus(s status.Status) Status {
	switch s {
	case status.CurrentStatus:
		return Healthy
	case status.InProgressStatus, status.TerminatingStatus:
		return Progressing
	case status.FailedStatus:
		return Degraded
	case status.NotFoundStatus:
		return Missing
	default:
		return Unknown
	}
}

// message is kstatus's message, with the reason of a failing condition when there is one.
func message(res *status.Result) string {
	msg := res.Message
	if res.Status != status.FailedStatus {
		return msg
	}
	for _, c := range res.Conditions {
		if c.Message != "" && c.Message != msg {
			return msg + ": " + c.Message
		}
	}
	return msg
}
