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
		{"pod-crashloop.yaml", Degraded, "CrashLoop"},
		{"pod-ready.yaml", Healthy, "Ready"},
		{"configmap.yaml", Healthy, "present"},
		{"role.yaml", Healthy, "present"},
		{"cronjob-suspended.yaml", Suspended, "suspended"},
		{"terminating.yaml", Progressing, "deleted"},
		{"pvc-pending.yaml", Progressing, ""},
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
	data, err := os.ReadFile(filepath.Join("testdata", "deployment-degraded.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		t.Fatal(err)
	}
	if got, msg := Assess(obj); got != Degraded {
		t.Errorf("Assess = %s (%q), want Degraded", got, msg)
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
