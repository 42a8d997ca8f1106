// Package health assesses the health of Kubernetes objects (kstatus, with Argo CD's vocabulary)
// and folds many assessments into one.
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

// Worst returns the worst of statuses by the order documented on rank; Healthy when there are
// none. An unrecognised status counts as Unknown.
func Worst(statuses ...Status) Status {
	worst := Healthy
	for _, s := range statuses {
		if _, ok := rank[s]; !ok {
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

// Assess returns the health of obj and a message for people. A nil obj is Missing.
func Assess(obj *unstructured.Unstructured) (Status, string) {
	if obj == nil {
		return Missing, "not found"
	}
	if obj.GetDeletionTimestamp() != nil {
		return Progressing, "being deleted"
	}
	gvk := obj.GroupVersionKind()
	if presentIsHealthy[gvk.Group+"/"+gvk.Kind] {
		return Healthy, "present"
	}
	if s, msg, ok := suspended(obj); ok {
		return s, msg
	}
	res, err := status.Compute(obj)
	if err != nil {
		// kstatus reads integers as int64; objects decoded with encoding/json carry float64.
		if norm, nerr := normalize(obj); nerr == nil {
			res, err = status.Compute(norm)
		}
	}
	if err != nil {
		return Unknown, fmt.Sprintf("cannot assess: %v", err)
	}
	return fromKstatus(res.Status), message(res)
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

// normalize re-decodes obj the way the API client does, so integers are int64.
func normalize(obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	data, err := obj.MarshalJSON()
	if err != nil {
		return nil, err
	}
	out := &unstructured.Unstructured{}
	return out, out.UnmarshalJSON(data)
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
