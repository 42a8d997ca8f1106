package ignore

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRuleMatches(t *testing.T) {
	dep := Rule{Group: "apps", Kind: "Deployment"}
	for _, tc := range []struct {
		name                   string
		rule                   Rule
		group, kind, ns, oname string
		want                   bool
	}{
		{"group and kind", dep, "apps", "Deployment", "api", "web", true},
		{"other kind", dep, "apps", "StatefulSet", "api", "web", false},
		{"other group", dep, "extensions", "Deployment", "api", "web", false},
		{"empty group is the core group", Rule{Kind: "ConfigMap"}, "", "ConfigMap", "api", "x", true},
		{"empty group is not any group", Rule{Kind: "ConfigMap"}, "example.com", "ConfigMap", "api", "x", false},
		{"glob group and kind", Rule{Group: "*", Kind: "*"}, "apps", "Deployment", "api", "web", true},
		{"glob kind", Rule{Group: "admissionregistration.k8s.io", Kind: "*WebhookConfiguration"}, "admissionregistration.k8s.io", "MutatingWebhookConfiguration", "", "hook", true},
		{"name matches", Rule{Group: "apps", Kind: "Deployment", Name: "web"}, "apps", "Deployment", "api", "web", true},
		{"name differs", Rule{Group: "apps", Kind: "Deployment", Name: "web"}, "apps", "Deployment", "api", "db", false},
		{"namespace matches", Rule{Group: "apps", Kind: "Deployment", Namespace: "api"}, "apps", "Deployment", "api", "web", true},
		{"namespace differs", Rule{Group: "apps", Kind: "Deployment", Namespace: "api"}, "apps", "Deployment", "other", "web", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.rule.Matches(tc.group, tc.kind, tc.ns, tc.oname); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRuleCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Rule
		want []string // substrings of the errors, in order; none for a good rule
	}{
		{"good", Rule{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas", "/metadata/annotations/a~1b"},
			JQPathExpressions: []string{`.spec.template.spec.containers[] | select(.name == "istio-proxy")`}, ManagedFieldsManagers: []string{"kube-controller-manager"}}, nil},
		{"pointer without slash", Rule{Kind: "Deployment", JSONPointers: []string{"/ok", "spec/replicas"}}, []string{`jsonPointers[1]: "spec/replicas" is not a JSON pointer`}},
		{"bad escape", Rule{Kind: "Deployment", JSONPointers: []string{"/a~2b"}}, []string{`jsonPointers[0]: "/a~2b" is not a JSON pointer: "~" must be followed by 0 or 1`}},
		{"whole object", Rule{Kind: "Deployment", JSONPointers: []string{""}}, []string{`jsonPointers[0]: "": the whole object cannot be ignored`}},
		{"jq does not compile", Rule{Kind: "Deployment", JQPathExpressions: []string{".spec.replicas", ".spec | select("}}, []string{`jqPathExpressions[1]: ".spec | select(" does not compile`}},
		{"no kind", Rule{JSONPointers: []string{"/spec"}}, []string{"kind: required"}},
		{"no field", Rule{Kind: "Deployment"}, []string{"names no field"}},
		{"empty manager", Rule{Kind: "Deployment", ManagedFieldsManagers: []string{" "}}, []string{"managedFieldsManagers[0]: empty manager name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := tc.rule.Check()
			if len(errs) != len(tc.want) {
				t.Fatalf("Check = %v, want %d errors %q", errs, len(tc.want), tc.want)
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tc.want[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, e, tc.want[i])
				}
			}
		})
	}
}

// obj decodes JSON as the API machinery does (integers as int64).
func obj(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return numbers(v).(map[string]any)
}

func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

const deployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a/b":"x","keep":"y"}},
 "spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"web","image":"web:1"},{"name":"istio-proxy","image":"proxy:1"}]}}}}`

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule Rule
		want string
	}{
		{"pointer", Rule{Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a/b":"x","keep":"y"}},
			  "spec":{"template":{"spec":{"containers":[{"name":"web","image":"web:1"},{"name":"istio-proxy","image":"proxy:1"}]}}}}`},
		{"escaped pointer", Rule{Kind: "Deployment", JSONPointers: []string{"/metadata/annotations/a~1b"}},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"keep":"y"}},
			  "spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"web","image":"web:1"},{"name":"istio-proxy","image":"proxy:1"}]}}}}`},
		{"pointer into a list", Rule{Kind: "Deployment", JSONPointers: []string{"/spec/template/spec/containers/1"}},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a/b":"x","keep":"y"}},
			  "spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"web","image":"web:1"}]}}}}`},
		{"pointer to nothing", Rule{Kind: "Deployment", JSONPointers: []string{"/spec/paused", "/spec/template/spec/containers/7/image"}}, deployment},
		{"jq select", Rule{Kind: "Deployment", JQPathExpressions: []string{`.spec.template.spec.containers[] | select(.name == "istio-proxy")`}},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a/b":"x","keep":"y"}},
			  "spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"web","image":"web:1"}]}}}}`},
		{"jq over a missing field selects nothing", Rule{Kind: "Deployment", JQPathExpressions: []string{`.spec.template.spec.initContainers[] | select(.name == "x")`}}, deployment},
		{"jq field", Rule{Kind: "Deployment", JQPathExpressions: []string{`.spec.replicas`}},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a/b":"x","keep":"y"}},
			  "spec":{"template":{"spec":{"containers":[{"name":"web","image":"web:1"},{"name":"istio-proxy","image":"proxy:1"}]}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rule.Group = "apps"
			s, err := Compile([]Rule{tc.rule})
			if err != nil {
				t.Fatal(err)
			}
			in := obj(t, deployment)
			got := s.For("apps", "Deployment", "api", "web").Normalize(in, nil)
			if want := obj(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("Normalize =\n%v\nwant\n%v", got, want)
			}
			if !reflect.DeepEqual(in, obj(t, deployment)) {
				t.Error("Normalize modified its input")
			}
		})
	}
}

func TestNormalizeManagedFields(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{
		{Manager: "flotilla-agent", Operation: metav1.ManagedFieldsOperationApply,
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{".":{},"f:image":{},"f:name":{}}}}}}}`)}},
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}},
		{Manager: "istio", Operation: metav1.ManagedFieldsOperationUpdate,
			FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:a/b":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"istio-proxy\"}":{"f:image":{}}}}}}}`)}},
	}
	for _, tc := range []struct {
		name     string
		managers []string
		want     string
	}{
		{"one manager", []string{"kube-controller-manager"},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a/b":"x","keep":"y"}},
			  "spec":{"template":{"spec":{"containers":[{"name":"web","image":"web:1"},{"name":"istio-proxy","image":"proxy:1"}]}}}}`},
		{"keyed list element and annotation", []string{"istio"},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"keep":"y"}},
			  "spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"web","image":"web:1"},{"name":"istio-proxy"}]}}}}`},
		{"a manager owning nothing", []string{"nobody"}, deployment},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile([]Rule{{Group: "apps", Kind: "Deployment", ManagedFieldsManagers: tc.managers}})
			if err != nil {
				t.Fatal(err)
			}
			got := s.For("apps", "Deployment", "api", "web").Normalize(obj(t, deployment), managed)
			if want := obj(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("Normalize =\n%v\nwant\n%v", got, want)
			}
		})
	}
}

func TestRespect(t *testing.T) {
	live := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},
	 "spec":{"replicas":7,"template":{"spec":{"containers":[{"name":"web","image":"web:1"},{"name":"istio-proxy","image":"proxy:2"}]}}}}`
	target := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a":"1"}},
	 "spec":{"replicas":2,"paused":true,"template":{"spec":{"containers":[{"name":"web","image":"web:2"}]}}}}`
	for _, tc := range []struct {
		name string
		rule Rule
		want string
	}{
		{"pointer takes live's value", Rule{Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a":"1"}},
			  "spec":{"replicas":7,"paused":true,"template":{"spec":{"containers":[{"name":"web","image":"web:2"}]}}}}`},
		{"pointer live lacks is dropped", Rule{Kind: "Deployment", JSONPointers: []string{"/spec/paused", "/metadata/annotations/a"}},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{}},
			  "spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"web","image":"web:2"}]}}}}`},
		{"jq takes live's elements", Rule{Kind: "Deployment", JQPathExpressions: []string{`.spec.template.spec.containers[] | select(.name == "istio-proxy")`}},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a":"1"}},
			  "spec":{"replicas":2,"paused":true,"template":{"spec":{"containers":[{"name":"web","image":"web:2"},{"name":"istio-proxy","image":"proxy:2"}]}}}}`},
		{"jq field", Rule{Kind: "Deployment", JQPathExpressions: []string{`.spec.replicas`}},
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","annotations":{"a":"1"}},
			  "spec":{"replicas":7,"paused":true,"template":{"spec":{"containers":[{"name":"web","image":"web:2"}]}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.rule.Group = "apps"
			s, err := Compile([]Rule{tc.rule})
			if err != nil {
				t.Fatal(err)
			}
			in := obj(t, target)
			got := s.For("apps", "Deployment", "api", "web").Respect(in, obj(t, live), nil)
			if want := obj(t, tc.want); !reflect.DeepEqual(got, want) {
				t.Errorf("Respect =\n%v\nwant\n%v", got, want)
			}
			if !reflect.DeepEqual(in, obj(t, target)) {
				t.Error("Respect modified its input")
			}
		})
	}
}

func TestCompileNamesTheRule(t *testing.T) {
	_, err := Compile([]Rule{{Kind: "Deployment", JSONPointers: []string{"/spec"}}, {Kind: "Service", JSONPointers: []string{"spec"}}})
	if err == nil || !strings.Contains(err.Error(), "ignoreDifferences[1].jsonPointers[0]") {
		t.Errorf("Compile = %v, want an error naming ignoreDifferences[1].jsonPointers[0]", err)
	}
	if s := (*Set)(nil); s.For("apps", "Deployment", "", "x") != nil {
		t.Error("a nil Set matches")
	}
}
