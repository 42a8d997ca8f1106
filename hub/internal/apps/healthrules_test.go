package apps

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseHealthCustomRules(t *testing.T) {
	a := parseOne(t, head+`spec:
  source: {repoURL: r}
  destination: {clusters: [a]}
  health:
    rollback: auto
    customRules:
    - group: example.com
      kind: Database
      cel: |
        has(object.status) && object.status.phase == "Ready"
          ? {"status": "Healthy", "message": "ready"}
          : {"status": "Progressing", "message": "waiting"}
    - kind: ConfigMap
      cel: '{"status": "Healthy", "message": "present"}'
`)
	want := HealthPolicy{ProgressDeadline: DefaultProgressDeadline, AutoRollback: true, CustomRules: []HealthRule{
		{Group: "example.com", Kind: "Database", Expression: "has(object.status) && object.status.phase == \"Ready\"\n  ? {\"status\": \"Healthy\", \"message\": \"ready\"}\n  : {\"status\": \"Progressing\", \"message\": \"waiting\"}\n"},
		{Kind: "ConfigMap", Expression: `{"status": "Healthy", "message": "present"}`},
	}}
	if !reflect.DeepEqual(a.Health, want) {
		t.Errorf("health policy\n%+v\nwant\n%+v", a.Health, want)
	}
}

func TestParseHealthCustomRuleErrors(t *testing.T) {
	doc := head + `spec:
  source: {repoURL: r}
  destination: {clusters: [a]}
  health:
    customRules:
    - {group: example.com, kind: Database, cel: '{"status": '}
    - {group: example.com, kind: Cache, cel: '"Healthy"'}
    - {group: example.com, cel: '{"status": "Healthy"}'}
    - {group: example.com, kind: Queue}
    - {group: example.com, kind: Topic, cel: '{"status": obj.phase}'}
    - {group: example.com, kind: Cache, cel: '{"status": "Healthy"}'}
    - {group: example.com, kind: Bucket, expression: '{"status": "Healthy"}'}
`
	apps, errs := Parse("apps/api.yaml", []byte(doc))
	if len(apps) != 0 {
		t.Fatalf("apps = %v, want none", apps)
	}
	// The unknown field fails strict decoding before any rule is looked at.
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `unknown field "spec.health.customRules[6].expression"`) {
		t.Fatalf("errors = %q", errs)
	}

	doc = strings.Replace(doc, "    - {group: example.com, kind: Bucket, expression: '{\"status\": \"Healthy\"}'}\n", "", 1)
	_, errs = Parse("apps/api.yaml", []byte(doc))
	want := []string{
		`apps/api.yaml: Application "api": spec.health.customRules[0].cel: ERROR: <input>:1:12: Syntax error`,
		`apps/api.yaml: Application "api": spec.health.customRules[1].cel: returns string, want a map`,
		`apps/api.yaml: Application "api": spec.health.customRules[2].kind: required`,
		`apps/api.yaml: Application "api": spec.health.customRules[3].cel: required`,
		`apps/api.yaml: Application "api": spec.health.customRules[4].cel: ERROR: <input>:1:12: undeclared reference to 'obj'`,
		`apps/api.yaml: Application "api": spec.health.customRules[5]: a rule for group "example.com" kind "Cache" is already defined`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors = %q, want %d", errs, len(want))
	}
	for i, err := range errs {
		if !strings.HasPrefix(err.Error(), want[i]) {
			t.Errorf("error %d = %q, want prefix %q", i, err, want[i])
		}
	}
}
