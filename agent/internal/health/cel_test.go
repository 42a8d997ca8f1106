package health

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// databaseRule judges the Database custom resource of testdata/database-*.yaml by its phase.
var databaseRule = Rule{Group: "example.com", Kind: "Database", Expression: `
	!has(object.status) || !has(object.status.phase)
	  ? {"status": "Progressing", "message": "waiting for the operator"}
	: object.status.phase == "Ready" && object.status.readyReplicas >= object.spec.replicas
	  ? {"status": "Healthy", "message": string(object.status.readyReplicas) + " replicas ready"}
	: object.status.phase == "Failed"
	  ? {"status": "Degraded", "message": object.status.error}
	: {"status": "Progressing", "message": "phase " + object.status.phase}
`}

func TestAssessorCustomRule(t *testing.T) {
	a, err := NewAssessor([]Rule{databaseRule})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		fixture string
		want    Status
		message string
	}{
		{"database-ready.yaml", Healthy, "3 replicas ready"},
		{"database-creating.yaml", Progressing, "phase Creating"},
		{"database-failed.yaml", Degraded, "disk full on orders-2"},
		{"database-new.yaml", Progressing, "waiting for the operator"},
		// Other kinds keep the built-in rules.
		{"deployment-degraded.yaml", Degraded, "timed out progressing"},
		{"cr-ready.yaml", Healthy, ""},
		// Deletion wins over the rule.
		{"terminating.yaml", Progressing, "being deleted"},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.fixture, ".yaml"), func(t *testing.T) {
			got, msg := a.Assess(fixture(t, tt.fixture))
			if got != tt.want || !strings.Contains(msg, tt.message) {
				t.Errorf("Assess = %s %q, want %s %q", got, msg, tt.want, tt.message)
			}
		})
	}
}

// TestAssessorOverridesBuiltin: a rule for a built-in kind replaces the built-in rule.
func TestAssessorOverridesBuiltin(t *testing.T) {
	a, err := NewAssessor([]Rule{{Group: "apps", Kind: "Deployment", Expression: `{"status": "Suspended", "message": "managed elsewhere"}`}})
	if err != nil {
		t.Fatal(err)
	}
	if got, msg := a.Assess(fixture(t, "deployment-degraded.yaml")); got != Suspended || msg != "managed elsewhere" {
		t.Errorf("Assess = %s %q", got, msg)
	}
}

func TestNewAssessorErrors(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		want  string // in the error
	}{
		{"syntax", []Rule{{Group: "example.com", Kind: "Database", Expression: `{"status": `}}, "health rule for Database.example.com: ERROR"},
		{"not a map", []Rule{{Kind: "ConfigMap", Expression: `"Healthy"`}}, "health rule for ConfigMap: returns string, want a map"},
		{"unknown variable", []Rule{{Kind: "ConfigMap", Expression: `{"status": obj.x}`}}, "undeclared reference to 'obj'"},
		{"empty", []Rule{{Group: "example.com", Kind: "Database"}}, "health rule for Database.example.com: no expression"},
		{"no kind", []Rule{{Group: "example.com", Expression: `{}`}}, "health rule 1: no kind"},
		{"duplicate", []Rule{databaseRule, databaseRule}, "health rule for Database.example.com: more than one rule"},
		{"too long", []Rule{{Kind: "ConfigMap", Expression: strings.Repeat(" ", MaxExpressionLength) + "{}"}}, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAssessor(tt.rules)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewAssessor error = %v, want one containing %q", err, tt.want)
			}
			if a == nil {
				t.Fatal("NewAssessor returned no Assessor with its error")
			}
		})
	}
}

// TestBrokenRuleIsUnknown: objects of a kind whose rule does not compile are Unknown, naming
// the rule; other kinds are assessed as usual.
func TestBrokenRuleIsUnknown(t *testing.T) {
	a, err := NewAssessor([]Rule{{Group: "example.com", Kind: "Database", Expression: `{"status": `}})
	if err == nil {
		t.Fatal("no error")
	}
	if got, msg := a.Assess(fixture(t, "database-ready.yaml")); got != Unknown || !strings.Contains(msg, "health rule for Database.example.com") {
		t.Errorf("Assess = %s %q, want Unknown naming the rule", got, msg)
	}
	if got, _ := a.Assess(fixture(t, "deployment-healthy.yaml")); got != Healthy {
		t.Errorf("Assess of a Deployment = %s, want Healthy", got)
	}
}

// costly is a list of a million sums: far above a rule's cost limit.
var costly = "[0,1,2,3,4,5,6,7,8,9].map(a, [0,1,2,3,4,5,6,7,8,9].map(b, [0,1,2,3,4,5,6,7,8,9]" +
	".map(c, [0,1,2,3,4,5,6,7,8,9].map(d, [0,1,2,3,4,5,6,7,8,9].map(e, [0,1,2,3,4,5,6,7,8,9].map(f, a+b+c+d+e+f))))))"

func TestRuleEvaluationErrors(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		{`{"status": object.status.missing}`, "no such key: missing"},
		{`{"status": "Fine", "message": "x"}`, `status "Fine" is not one of`},
		{`{"message": "no status"}`, `status "" is not one of`},
		{`object.spec.replicas > 2 ? {"status": "Healthy"} : {"status": "Degraded"}`, ""},
		{costly + `.size() > 0 ? {"status": "Healthy"} : {"status": "Healthy"}`, "cost limit exceeded"},
	}
	for _, tt := range tests {
		a, err := NewAssessor([]Rule{{Group: "example.com", Kind: "Database", Expression: tt.expr}})
		if err != nil {
			t.Fatalf("%s: %v", tt.expr, err)
		}
		got, msg := a.Assess(fixture(t, "database-ready.yaml"))
		if tt.want == "" {
			// Numbers of the object compare with CEL integers.
			if got != Healthy {
				t.Errorf("%s: Assess = %s %q, want Healthy", tt.expr, got, msg)
			}
			continue
		}
		if got != Unknown || !strings.Contains(msg, tt.want) || !strings.Contains(msg, "Database.example.com") {
			t.Errorf("%s: Assess = %s %q, want Unknown with %q", tt.expr, got, msg, tt.want)
		}
	}
}

// TestAssessorConcurrent: one compiled Assessor serves many goroutines (run with -race).
func TestAssessorConcurrent(t *testing.T) {
	a, err := NewAssessor([]Rule{databaseRule})
	if err != nil {
		t.Fatal(err)
	}
	objs := []string{"database-ready.yaml", "database-failed.yaml", "deployment-healthy.yaml"}
	var wg sync.WaitGroup
	for i := range 8 {
		obj := fixture(t, objs[i%len(objs)])
		wg.Go(func() {
			for range 50 {
				if s, msg := a.Assess(obj); s == Unknown {
					t.Errorf("Assess = %s %q", s, msg)
				}
			}
		})
	}
	wg.Wait()
}

// TestCustomRuleFloatNumbers: an object decoded with encoding/json (numbers as float64, as
// shared/bundle.Decode and YAML files give them) reaches a rule with integers as int64.
func TestCustomRuleFloatNumbers(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "database-ready.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		t.Fatal(err)
	}
	a, err := NewAssessor([]Rule{databaseRule})
	if err != nil {
		t.Fatal(err)
	}
	if got, msg := a.Assess(obj); got != Healthy || msg != "3 replicas ready" {
		t.Errorf("Assess = %s %q, want Healthy %q", got, msg, "3 replicas ready")
	}
}
