package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const healthObjects = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: api, generation: 2}
spec: {replicas: 1, progressDeadlineSeconds: 60}
status:
  observedGeneration: 2
  replicas: 1
  updatedReplicas: 1
  conditions:
  - {type: Progressing, status: "False", reason: ProgressDeadlineExceeded, message: 'ReplicaSet "web-1" has timed out progressing.'}
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings, namespace: api}
- apiVersion: example.com/v1
  kind: Database
  metadata: {name: orders, namespace: api}
  status: {phase: Failed}
---
apiVersion: v1
kind: Namespace
metadata: {name: api}
status: {phase: Active}
`

const healthRules = `- group: example.com
  kind: Database
  cel: |
    object.status.phase == "Ready" ? {"status": "Healthy", "message": "ready"}
      : {"status": "Degraded", "message": "phase " + object.status.phase}
`

// runHealth runs `flotilla-agent health` with args; files maps names to contents written in a
// temporary directory, and every "@name" argument becomes that file's path.
func runHealth(t *testing.T, stdin string, files map[string]string, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for i, a := range args {
		if name, ok := strings.CutPrefix(a, "@"); ok {
			args[i] = filepath.Join(dir, name)
		}
	}
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append([]string{"health"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

func TestHealthCommandTable(t *testing.T) {
	out, err := runHealth(t, "", map[string]string{"objs.yaml": healthObjects}, "-f", "@objs.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"OBJECT STATUS MESSAGE",
		`Deployment.apps/api/web Degraded Progress deadline exceeded: ReplicaSet "web-1" has timed out progressing.`,
		"ConfigMap/api/settings Healthy present",
		"Database.example.com/api/orders ",
		"Namespace/api Healthy",
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s", out)
	}
	for i, w := range want {
		if got := strings.Join(strings.Fields(lines[i]), " "); !strings.HasPrefix(got, w) {
			t.Errorf("line %d = %q, want prefix %q", i, got, w)
		}
	}
}

func TestHealthCommandJSONWithRules(t *testing.T) {
	out, err := runHealth(t, healthObjects, map[string]string{"rules.yaml": healthRules}, "-f", "-", "-o", "json", "--rules", "@rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Items []struct{ Object, Status, Message string } `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(got.Items) != 4 {
		t.Fatalf("items %+v", got.Items)
	}
	db := got.Items[2]
	if db.Object != "Database.example.com/api/orders" || db.Status != "Degraded" || db.Message != "phase Failed" {
		t.Errorf("database item %+v", db)
	}
}

func TestHealthCommandErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		args  []string
		want  string
	}{
		{"no file", nil, nil, "-f is required"},
		{"bad output", map[string]string{"o.yaml": healthObjects}, []string{"-f", "@o.yaml", "-o", "yaml"}, `-o "yaml": want table or json`},
		{"missing file", nil, []string{"-f", "@none.yaml"}, "no such file"},
		{"no kind", map[string]string{"o.yaml": "metadata: {name: x}\n"}, []string{"-f", "@o.yaml"}, "document 1: no kind"},
		{"rule does not compile", map[string]string{"o.yaml": healthObjects, "r.yaml": "- {kind: ConfigMap, cel: '{\"status\": '}\n"},
			[]string{"-f", "@o.yaml", "--rules", "@r.yaml"}, "health rule for ConfigMap: ERROR"},
		{"unknown rule field", map[string]string{"o.yaml": healthObjects, "r.yaml": "- {kind: ConfigMap, expression: x}\n"},
			[]string{"-f", "@o.yaml", "--rules", "@r.yaml"}, `unknown field "expression"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runHealth(t, "", tt.files, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
