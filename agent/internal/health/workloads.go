package health

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// daemonSet follows kstatus, except that with updateStrategy OnDelete pods still running an
// older template are expected: such a DaemonSet is Healthy once its pods are available.
func daemonSet(obj *unstructured.Unstructured) (Status, string) {
	if nestedString(obj, "spec", "updateStrategy", "type") != "OnDelete" {
		return viaKstatus(obj)
	}
	desired := nestedInt(obj, "status", "desiredNumberScheduled")
	available := nestedInt(obj, "status", "numberAvailable")
	updated := nestedInt(obj, "status", "updatedNumberScheduled")
	if available < desired {
		return Progressing, fmt.Sprintf("Available: %d/%d", available, desired)
	}
	return Healthy, fmt.Sprintf("%d pods available, %d on the latest template (updateStrategy OnDelete)", available, updated)
}

// replicaSet follows kstatus, and is Degraded when it cannot create its pods (ReplicaFailure:
// quota exceeded, forbidden by admission...), where kstatus keeps waiting.
func replicaSet(obj *unstructured.Unstructured) (Status, string) {
	if c, ok := findCondition(conditions(obj), "ReplicaFailure"); ok && c.Status == "True" {
		return Degraded, explain(c.Reason, c.Message)
	}
	return viaKstatus(obj)
}

// failingWaitReason reports whether a container waiting for reason is failing rather than
// starting: CrashLoopBackOff, ImagePullBackOff, ErrImagePull, InvalidImageName,
// CreateContainerConfigError, RunContainerError and the like (Argo CD's test).
func failingWaitReason(reason string) bool {
	return strings.HasPrefix(reason, "Err") || strings.HasSuffix(reason, "Error") ||
		strings.HasSuffix(reason, "BackOff") || reason == "InvalidImageName"
}

// pod: a container crash-looping or unable to pull its image is Degraded whatever the phase.
// A pod that restarts its containers (restartPolicy Always) is Healthy when Ready, Degraded when
// not Ready with a container restarted after failing (Argo CD's verdict), else Progressing; one
// that runs to completion (OnFailure, Never) is Progressing while it runs, Healthy when it
// succeeded, Degraded when it failed.
func pod(obj *unstructured.Unstructured) (Status, string) {
	for _, field := range []string{"initContainerStatuses", "containerStatuses"} {
		list, _, _ := unstructured.NestedSlice(obj.Object, "status", field)
		for _, item := range list {
			cs, _ := item.(map[string]any)
			name, _ := cs["name"].(string)
			waiting, _, _ := unstructured.NestedMap(cs, "state", "waiting")
			reason, _ := waiting["reason"].(string)
			if failingWaitReason(reason) {
				msg, _ := waiting["message"].(string)
				return Degraded, "container " + name + ": " + explain(reason, msg)
			}
		}
	}
	restartPolicy := nestedString(obj, "spec", "restartPolicy")
	if restartPolicy == "" {
		restartPolicy = "Always"
	}
	conds := conditions(obj)
	switch phase := nestedString(obj, "status", "phase"); phase {
	case "Succeeded":
		return Healthy, "completed"
	case "Failed":
		if msg := explain(nestedString(obj, "status", "reason"), nestedString(obj, "status", "message")); msg != "" {
			return Degraded, "failed: " + msg
		}
		if msg := terminatedWithError(obj); msg != "" {
			return Degraded, "failed: " + msg
		}
		return Degraded, "failed"
	case "Running":
		if restartPolicy != "Always" {
			return Progressing, fmt.Sprintf("running to completion (restartPolicy %s)", restartPolicy)
		}
		if c, ok := findCondition(conds, "Ready"); ok && c.Status == "True" {
			return Healthy, "running and Ready"
		}
		if msg := restartedAfterError(obj); msg != "" {
			return Degraded, msg
		}
		ready, total, restarts := containerCounts(obj)
		msg := fmt.Sprintf("running, %d/%d containers ready", ready, total)
		if restarts > 0 {
			msg += fmt.Sprintf(", %d restarts", restarts)
		}
		return Progressing, msg
	case "Pending":
		if c, ok := findCondition(conds, "PodScheduled"); ok && c.Status == "False" {
			return Progressing, "not scheduled: " + explain(c.Reason, c.Message)
		}
		return Progressing, "pending"
	case "":
		return Progressing, "waiting for the pod to be observed"
	default: // Unknown: the node stopped reporting
		return Unknown, "phase " + phase + ": " + nestedString(obj, "status", "message")
	}
}

// containerCounts returns how many containers are ready, how many there are, and their
// restarts.
func containerCounts(obj *unstructured.Unstructured) (ready, total int, restarts int64) {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "containerStatuses")
	for _, item := range list {
		cs, _ := item.(map[string]any)
		total++
		if r, _ := cs["ready"].(bool); r {
			ready++
		}
		if n, ok := cs["restartCount"].(int64); ok {
			restarts += n
		}
	}
	return ready, total, restarts
}

// restartedAfterError describes the first container that is not ready and whose last run
// ended with an error (lastState.terminated with a non-zero exit code): a container that keeps
// failing between its CrashLoopBackOff waits, which Argo CD calls Degraded.
func restartedAfterError(obj *unstructured.Unstructured) string {
	list, _, _ := unstructured.NestedSlice(obj.Object, "status", "containerStatuses")
	for _, item := range list {
		cs, _ := item.(map[string]any)
		if ready, _ := cs["ready"].(bool); ready {
			continue
		}
		last, _, _ := unstructured.NestedMap(cs, "lastState", "terminated")
		code, _ := last["exitCode"].(int64)
		if code == 0 {
			continue
		}
		name, _ := cs["name"].(string)
		restarts, _ := cs["restartCount"].(int64)
		msg := fmt.Sprintf("container %s restarted %d times, last exited with code %d", name, restarts, code)
		if reason, _ := last["reason"].(string); reason != "" {
			msg += " (" + reason + ")"
		}
		return msg
	}
	return ""
}

// terminatedWithError describes the first container that exited with a non-zero code.
func terminatedWithError(obj *unstructured.Unstructured) string {
	for _, field := range []string{"initContainerStatuses", "containerStatuses"} {
		list, _, _ := unstructured.NestedSlice(obj.Object, "status", field)
		for _, item := range list {
			cs, _ := item.(map[string]any)
			term, _, _ := unstructured.NestedMap(cs, "state", "terminated")
			if code, _ := term["exitCode"].(int64); code != 0 {
				name, _ := cs["name"].(string)
				reason, _ := term["reason"].(string)
				msg := fmt.Sprintf("container %s exited with code %d", name, code)
				if reason != "" {
					msg += " (" + reason + ")"
				}
				return msg
			}
		}
	}
	return ""
}

// job: Complete (or SuccessCriteriaMet) is Healthy; Failed (or FailureTarget, set while its
// pods are being terminated) is Degraded; a Job still running is Progressing, as in Argo CD.
// A suspended Job is Suspended.
func job(obj *unstructured.Unstructured) (Status, string) {
	succeeded := nestedInt(obj, "status", "succeeded")
	active := nestedInt(obj, "status", "active")
	failed := nestedInt(obj, "status", "failed")
	for _, c := range conditions(obj) {
		if c.Status != "True" {
			continue
		}
		switch c.Type {
		case "Failed", "FailureTarget":
			return Degraded, "failed: " + explain(c.Reason, c.Message)
		case "Complete", "SuccessCriteriaMet":
			return Healthy, fmt.Sprintf("completed: %d succeeded", succeeded)
		case "Suspended":
			return Suspended, "suspended"
		}
	}
	if nestedString(obj, "status", "startTime") == "" {
		return Progressing, "not started"
	}
	return Progressing, fmt.Sprintf("running: %d active, %d succeeded, %d failed", active, succeeded, failed)
}

// cronJob is Healthy while its schedule runs; Degraded when its last scheduled run is over and
// did not succeed (the controller moves a finished Job out of status.active and records its
// success in the same update). A suspended CronJob is Suspended.
func cronJob(obj *unstructured.Unstructured) (Status, string) {
	scheduled := parseTime(nestedString(obj, "status", "lastScheduleTime"))
	if scheduled.IsZero() {
		return Healthy, "not scheduled yet"
	}
	active, _, _ := unstructured.NestedSlice(obj.Object, "status", "active")
	if len(active) > 0 {
		return Healthy, fmt.Sprintf("%d jobs running, last scheduled %s", len(active), scheduled.UTC().Format(time.RFC3339))
	}
	succeeded := parseTime(nestedString(obj, "status", "lastSuccessfulTime"))
	if succeeded.Before(scheduled) {
		return Degraded, fmt.Sprintf("the job scheduled at %s did not succeed", scheduled.UTC().Format(time.RFC3339))
	}
	return Healthy, "last run succeeded at " + succeeded.UTC().Format(time.RFC3339)
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}
