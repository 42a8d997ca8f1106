package health

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// rule assesses one kind. It sees an object that exists, is not being deleted, is not
// suspended, whose controller has observed its latest generation, and whose integers are int64.
type rule func(obj *unstructured.Unstructured) (Status, string)

// builtinRules are the built-in rules, by group/kind. Kinds listed neither here nor in
// presentIsHealthy follow the kstatus conventions.
//
// The rules say Degraded only for what needs a person: a revision that turns Degraded is rolled
// back at once when its app rolls back automatically. A condition that is routine for a while
// after an object is created (metrics not yet available to an autoscaler, an APIService whose
// pods are starting) is Progressing; a revision that stays there turns Degraded at its progress
// deadline.
var builtinRules = map[string]rule{
	"apps/Deployment":  viaKstatus, // ProgressDeadlineExceeded is Degraded
	"apps/StatefulSet": viaKstatus, // no failure signal in its status: the deadline decides
	"apps/DaemonSet":   daemonSet,
	"apps/ReplicaSet":  replicaSet,
	"/Pod":             pod,
	"batch/Job":        job,
	"batch/CronJob":    cronJob,

	"/Service":                            service,
	"networking.k8s.io/Ingress":           ingress,
	"/PersistentVolumeClaim":              pvc,
	"autoscaling/HorizontalPodAutoscaler": hpa,
	"apiregistration.k8s.io/APIService":   apiService,

	"apiextensions.k8s.io/CustomResourceDefinition": viaKstatus, // NamesAccepted=False is Degraded
}

// condition is one entry of status.conditions (or of an HPA v1 conditions annotation).
type condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// conditions reads status.conditions; entries that are not objects are skipped.
func conditions(obj *unstructured.Unstructured) []condition {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	out := make([]condition, 0, len(list))
	for _, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			continue
		}
		c := condition{}
		c.Type, _ = m["type"].(string)
		c.Status, _ = m["status"].(string)
		c.Reason, _ = m["reason"].(string)
		c.Message, _ = m["message"].(string)
		out = append(out, c)
	}
	return out
}

func findCondition(conds []condition, typ string) (condition, bool) {
	for _, c := range conds {
		if c.Type == typ {
			return c, true
		}
	}
	return condition{}, false
}

// explain joins a reason and a message for people, either of which may be empty.
func explain(reason, message string) string {
	switch {
	case reason == "":
		return message
	case message == "":
		return reason
	default:
		return reason + ": " + message
	}
}

// unobserved reports a spec change the object's controller has not acted on yet.
func unobserved(obj *unstructured.Unstructured) (Status, string, bool) {
	gen := obj.GetGeneration()
	observed, found, err := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
	if gen == 0 || !found || err != nil || observed >= gen {
		return "", "", false
	}
	return Progressing, fmt.Sprintf("waiting for the controller to observe generation %d (observed %d)", gen, observed), true
}

func nestedInt(obj *unstructured.Unstructured, fields ...string) int64 {
	v, _, _ := unstructured.NestedInt64(obj.Object, fields...)
	return v
}

func nestedString(obj *unstructured.Unstructured, fields ...string) string {
	v, _, _ := unstructured.NestedString(obj.Object, fields...)
	return v
}

// lbIngress returns how many entries status.loadBalancer.ingress has (Service and Ingress),
// and the addresses among them.
func lbIngress(obj *unstructured.Unstructured) (entries int, addrs []string) {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "loadBalancer", "ingress")
	for _, item := range list {
		m, _ := item.(map[string]any)
		for _, k := range []string{"ip", "hostname"} {
			if s, _ := m[k].(string); s != "" {
				addrs = append(addrs, s)
				break
			}
		}
	}
	return len(list), addrs
}

// published describes a load balancer that published entries, with or without addresses.
func published(prefix string, addrs []string) string {
	if len(addrs) == 0 {
		return "load balancer ingress published (no address)"
	}
	return prefix + strings.Join(addrs, ", ")
}

// service: a LoadBalancer is Healthy once its status.loadBalancer.ingress has an entry, with an
// address or not (an entry may carry only ports or ipMode), as in Argo CD; Progressing before.
// Other types are Healthy.
func service(obj *unstructured.Unstructured) (Status, string) {
	typ := nestedString(obj, "spec", "type")
	if typ != "LoadBalancer" {
		if typ == "" {
			typ = "ClusterIP"
		}
		return Healthy, typ + " service"
	}
	if n, addrs := lbIngress(obj); n > 0 {
		return Healthy, published("load balancer at ", addrs)
	}
	return Progressing, "waiting for a load balancer address"
}

// ingress is Healthy once its controller published an entry in status.loadBalancer.ingress, as
// in Argo CD.
func ingress(obj *unstructured.Unstructured) (Status, string) {
	if n, addrs := lbIngress(obj); n > 0 {
		return Healthy, published("address ", addrs)
	}
	return Progressing, "waiting for the ingress controller to publish an address"
}

// pvc: Bound is Healthy, Lost is Degraded, anything else (Pending) Progressing.
func pvc(obj *unstructured.Unstructured) (Status, string) {
	switch phase := nestedString(obj, "status", "phase"); phase {
	case "Bound":
		return Healthy, "bound to volume " + nestedString(obj, "spec", "volumeName")
	case "Lost":
		return Degraded, "lost its volume " + nestedString(obj, "spec", "volumeName")
	case "":
		return Progressing, "waiting to be bound"
	default:
		return Progressing, "not bound: " + phase
	}
}

// hpaConditionsAnnotation carries the conditions of an autoscaling/v1 HorizontalPodAutoscaler.
const hpaConditionsAnnotation = "autoscaling.alpha.kubernetes.io/conditions"

// hpa reads the autoscaler's conditions (status.conditions in autoscaling/v2, the
// autoscaling.alpha.kubernetes.io/conditions annotation in autoscaling/v1) as Argo CD does:
//
//   - Degraded when it cannot reach or scale its target (AbleToScale False: FailedGetScale,
//     FailedUpdateScale) or its selector or metric source is invalid (ScalingActive False with
//     an Invalid* reason; Argo CD names InvalidSelector);
//   - else Healthy when AbleToScale or ScalingLimited is True;
//   - else, or without conditions, Progressing.
//
// Two deliberate differences, documented in the README: metrics that cannot be read
// (ScalingActive False, FailedGet*Metric or FailedComputeMetricsReplicas) are Healthy with the
// reason in the message, where Argo CD says Degraded; scaling disabled (ScalingDisabled: the
// target is at zero replicas) is Suspended, where Argo CD says Healthy.
func hpa(obj *unstructured.Unstructured) (Status, string) {
	conds := conditions(obj)
	if len(conds) == 0 {
		if ann := obj.GetAnnotations()[hpaConditionsAnnotation]; ann != "" {
			if err := json.Unmarshal([]byte(ann), &conds); err != nil {
				return Unknown, fmt.Sprintf("cannot read the %s annotation: %v", hpaConditionsAnnotation, err)
			}
		}
	}
	if len(conds) == 0 {
		return Progressing, "waiting for the autoscaler"
	}
	able, hasAble := findCondition(conds, "AbleToScale")
	if hasAble && able.Status == "False" {
		return Degraded, explain(able.Reason, able.Message)
	}
	active, hasActive := findCondition(conds, "ScalingActive")
	if hasActive && active.Status == "False" {
		switch {
		case active.Reason == "ScalingDisabled":
			return Suspended, explain(active.Reason, active.Message)
		case strings.HasPrefix(active.Reason, "Invalid"):
			return Degraded, explain(active.Reason, active.Message)
		default:
			// FailedGet*Metric, FailedComputeMetricsReplicas: the metrics pipeline (for example
			// metrics-server) does not answer. The autoscaler keeps the current replicas, and the
			// workload's health is its own; making this Degraded (Argo CD) or Progressing would
			// hold every revision unhealthy, and roll it back, on clusters without metrics.
			return Healthy, "autoscaling inactive: " + explain(active.Reason, active.Message)
		}
	}
	limited, hasLimited := findCondition(conds, "ScalingLimited")
	switch {
	case hasLimited && limited.Status == "True":
		return Healthy, explain(limited.Reason, limited.Message)
	case !hasAble || able.Status != "True":
		return Progressing, "waiting for the autoscaler"
	case hasActive && active.Status == "True":
		return Healthy, explain(active.Reason, active.Message)
	default:
		return Healthy, explain(able.Reason, able.Message)
	}
}

// apiService reads the aggregator's Available condition. A Service that does not exist or does
// not serve the port is a configuration error: Degraded; endpoints missing or failing discovery
// happen while the backing pods start: Progressing.
func apiService(obj *unstructured.Unstructured) (Status, string) {
	c, ok := findCondition(conditions(obj), "Available")
	switch {
	case !ok:
		return Progressing, "waiting for the aggregator"
	case c.Status == "True":
		return Healthy, explain("available", c.Message)
	case c.Reason == "ServiceNotFound" || c.Reason == "ServicePortError":
		return Degraded, explain(c.Reason, c.Message)
	default:
		return Progressing, explain(c.Reason, c.Message)
	}
}
