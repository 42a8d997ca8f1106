package health

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func fixture(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	// Decode the way the API client does (integers as int64), which kstatus relies on.
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(js); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return obj
}

// TestAssess covers the built-in rules: for every kind, its healthy, progressing and degraded
// variants (StatefulSet, DaemonSet, Service and Ingress report no failure in their status, and
// a CronJob never progresses: those have no such variant).
func TestAssess(t *testing.T) {
	tests := []struct {
		fixture string
		want    Status
		message string // a substring of the message
	}{
		{"deployment-healthy.yaml", Healthy, "available"},
		{"deployment-progressing.yaml", Progressing, "Available: 1/3"},
		{"deployment-unobserved.yaml", Progressing, "generation"},
		{"deployment-degraded.yaml", Degraded, "timed out progressing"},
		{"deployment-paused.yaml", Suspended, "paused"},

		{"statefulset-healthy.yaml", Healthy, "All replicas scheduled as expected"},
		{"statefulset-progressing.yaml", Progressing, "Ready: 2/3"},

		{"daemonset-healthy.yaml", Healthy, "Replicas: 3"},
		{"daemonset-progressing.yaml", Progressing, "Updated: 1/3"},
		{"daemonset-ondelete.yaml", Healthy, "OnDelete"},
		{"daemonset-ondelete-progressing.yaml", Progressing, "Available: 2/3"},

		{"replicaset-healthy.yaml", Healthy, "available"},
		{"replicaset-progressing.yaml", Progressing, "Available: 1/2"},
		{"replicaset-degraded.yaml", Degraded, "FailedCreate: pods \"web-7d9c-\" is forbidden: exceeded quota"},

		{"pod-ready.yaml", Healthy, "Ready"},
		{"pod-starting.yaml", Progressing, "0/1 containers ready, 1 restarts"},
		{"pod-pending.yaml", Progressing, "not scheduled: Unschedulable: 0/3 nodes"},
		{"pod-never-running.yaml", Progressing, "running to completion (restartPolicy Never)"},
		{"pod-succeeded.yaml", Healthy, "completed"},
		{"pod-crashloop.yaml", Degraded, "container main: CrashLoopBackOff: back-off"},
		{"pod-init-crashloop.yaml", Degraded, "container migrate: CrashLoopBackOff"},
		{"pod-imagepull.yaml", Degraded, `container main: ImagePullBackOff: Back-off pulling image "registry.example/app:missing"`},
		{"pod-failed.yaml", Degraded, "container main exited with code 2 (Error)"},
		{"pod-evicted.yaml", Degraded, "Evicted: The node was low on resource: memory."},
		// Argo CD: Running, not Ready, restartPolicy Always, a container restarted after failing.
		{"pod-restarting.yaml", Degraded, "container main restarted 3 times, last exited with code 1 (Error)"},
		{"pod-restarted-ready.yaml", Progressing, "1/2 containers ready"},

		{"job-running.yaml", Progressing, "running: 1 active, 0 succeeded, 0 failed"},
		{"job-complete.yaml", Healthy, "completed: 1 succeeded"},
		{"job-failed.yaml", Degraded, "BackoffLimitExceeded: Job has reached the specified backoff limit"},
		{"job-suspended.yaml", Suspended, "suspended"},

		{"cronjob-healthy.yaml", Healthy, "last run succeeded at 2026-01-02T03:01:10Z"},
		{"cronjob-new.yaml", Healthy, "not scheduled yet"},
		{"cronjob-running.yaml", Healthy, "1 jobs running"},
		{"cronjob-failed.yaml", Degraded, "the job scheduled at 2026-01-02T04:00:00Z did not succeed"},
		{"cronjob-suspended.yaml", Suspended, "suspended"},

		{"service-clusterip.yaml", Healthy, "ClusterIP service"},
		{"service-lb-ready.yaml", Healthy, "load balancer at 203.0.113.7"},
		{"service-lb-pending.yaml", Progressing, "waiting for a load balancer address"},
		// Argo CD: any entry in status.loadBalancer.ingress, with an address or not.
		{"service-lb-no-address.yaml", Healthy, "load balancer ingress published"},

		{"ingress-healthy.yaml", Healthy, "lb.example.net"},
		{"ingress-progressing.yaml", Progressing, "waiting for the ingress controller"},
		{"ingress-no-address.yaml", Healthy, "load balancer ingress published"},

		{"pvc-bound.yaml", Healthy, "bound to volume pv-0042"},
		{"pvc-pending.yaml", Progressing, "not bound: Pending"},
		{"pvc-lost.yaml", Degraded, "lost its volume pv-0042"},

		{"hpa-v2-healthy.yaml", Healthy, "TooFewReplicas"},
		{"hpa-v2-metrics-unavailable.yaml", Healthy, "autoscaling inactive: FailedGetResourceMetric"},
		{"hpa-v2-degraded.yaml", Degraded, "FailedGetScale"},
		{"hpa-v2-invalid.yaml", Degraded, "InvalidSelector"},
		{"hpa-v1-healthy.yaml", Healthy, "ValidMetricFound"},
		{"hpa-v1-progressing.yaml", Progressing, "waiting for the autoscaler"},
		{"hpa-v1-degraded.yaml", Degraded, "FailedUpdateScale"},
		// Argo CD: AbleToScale or ScalingLimited True is Healthy, unless a condition says Degraded.
		{"hpa-v2-able-only.yaml", Healthy, "ReadyForNewScale: recommended size matches current size"},
		{"hpa-v1-limited-only.yaml", Healthy, "TooManyReplicas"},
		{"hpa-v2-starting.yaml", Degraded, "FailedGetScale"},
		{"hpa-v1-empty-conditions.yaml", Progressing, "waiting for the autoscaler"},
		// Flotilla's own: Argo CD says Healthy.
		{"hpa-v2-scaling-disabled.yaml", Suspended, "ScalingDisabled"},

		{"apiservice-healthy.yaml", Healthy, "all checks passed"},
		{"apiservice-progressing.yaml", Progressing, "MissingEndpoints"},
		{"apiservice-degraded.yaml", Degraded, "ServiceNotFound"},

		{"crd-healthy.yaml", Healthy, "established"},
		{"crd-installing.yaml", Progressing, "Install in progress"},
		{"crd-degraded.yaml", Degraded, `"databases" is already in use`},

		// Custom resources without a rule: kstatus conventions.
		{"cr-ready.yaml", Healthy, ""},
		{"cr-reconciling.yaml", Progressing, "creating the bucket"},
		{"cr-stalled.yaml", Degraded, "bucket quota exceeded"},

		{"configmap.yaml", Healthy, "present"},
		{"role.yaml", Healthy, "present"},
		{"terminating.yaml", Progressing, "deleted"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.fixture, ".yaml"), func(t *testing.T) {
			got, msg := Assess(fixture(t, tt.fixture))
			if got != tt.want {
				t.Errorf("Assess = %s (%q), want %s", got, msg, tt.want)
			}
			if !strings.Contains(msg, tt.message) {
				t.Errorf("message %q does not contain %q", msg, tt.message)
			}
		})
	}
}

// TestAssessFloatNumbers covers objects decoded with encoding/json (numbers as float64), as
// shared/bundle.Decode produces them.
func TestAssessFloatNumbers(t *testing.T) {
	for _, name := range []string{"deployment-degraded.yaml", "pod-failed.yaml", "job-failed.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			t.Fatal(err)
		}
		if got, msg := Assess(obj); got != Degraded {
			t.Errorf("%s: Assess = %s (%q), want Degraded", name, got, msg)
		}
	}
}

func TestAssessMissing(t *testing.T) {
	if got, _ := Assess(nil); got != Missing {
		t.Errorf("Assess(nil) = %s, want Missing", got)
	}
}

func TestWorst(t *testing.T) {
	tests := []struct {
		in   []Status
		want Status
	}{
		{nil, Healthy},
		{[]Status{Healthy, Healthy}, Healthy},
		{[]Status{Healthy, Unknown}, Unknown},
		{[]Status{Unknown, Suspended}, Suspended},
		{[]Status{Suspended, Progressing, Healthy}, Progressing},
		{[]Status{Progressing, Missing}, Missing},
		{[]Status{Missing, Degraded, Progressing}, Degraded},
		{[]Status{Healthy, "Bogus"}, Unknown},
	}
	for _, tt := range tests {
		if got := Worst(tt.in...); got != tt.want {
			t.Errorf("Worst(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
