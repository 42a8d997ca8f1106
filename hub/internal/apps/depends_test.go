package apps

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestCycleThrough(t *testing.T) {
	graph := map[string][]string{
		"self":  {"self"},
		"a":     {"b"},
		"b":     {"a"},
		"x":     {"y"},
		"y":     {"z"},
		"z":     {"x", "y"}, // two cycles through z: z → y → z is the shorter one
		"top":   {"a", "leaf"},
		"leaf":  nil,
		"chain": {"top"},
	}
	tests := []struct {
		start string
		want  []string
	}{
		{"self", []string{"self", "self"}},
		{"a", []string{"a", "b", "a"}},
		{"b", []string{"b", "a", "b"}},
		{"x", []string{"x", "y", "z", "x"}},
		{"z", []string{"z", "y", "z"}},
		{"top", nil},   // depends on a cycle without being part of it
		{"chain", nil}, // likewise, further away
		{"leaf", nil},
		{"unknown", nil},
	}
	for _, tt := range tests {
		if got := CycleThrough(graph, tt.start); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("CycleThrough(%s) = %v, want %v", tt.start, got, tt.want)
		}
	}
}

// TestLoadDependencies: apps in a dependsOn cycle (of two, of three, of one) and an app that
// depends on an app no manifest defines are rejected, each with an error naming the cycle or
// the missing app; the others load, including one that depends on an app in a cycle and one
// that depends on an app whose manifest is invalid. Argo CD Applications take spec.dependsOn
// too, without a warning.
func TestLoadDependencies(t *testing.T) {
	app := func(name string, deps ...string) *fstest.MapFile {
		s := "apiVersion: flotilla.dev/v1alpha1\nkind: Application\nmetadata: {name: " + name + "}\n" +
			"spec:\n  source: {repoURL: https://x/y.git}\n  destination: {clusters: [c]}\n"
		if len(deps) > 0 {
			s += "  dependsOn:\n"
			for _, d := range deps {
				s += "  - app: " + d + "\n"
			}
		}
		return &fstest.MapFile{Data: []byte(s)}
	}
	fsys := fstest.MapFS{
		"a.yaml":      app("a", "b"),
		"b.yaml":      app("b", "a"),
		"c.yaml":      app("c", "d"),
		"d.yaml":      app("d", "e"),
		"e.yaml":      app("e", "c"),
		"self.yaml":   app("self", "self"),
		"lost.yaml":   app("lost", "cert-manager"),
		"after.yaml":  app("after", "a", "base"),
		"base.yaml":   app("base"),
		"waits.yaml":  app("waits", "broken"),
		"broken.yaml": {Data: []byte("apiVersion: flotilla.dev/v1alpha1\nkind: Application\nmetadata: {name: broken}\nspec: {}\n")},
		"argo.yaml": {Data: []byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: argo}
spec:
  source: {repoURL: https://x/y.git}
  destination: {name: c}
  dependsOn: [{app: base}]
`)},
	}
	list, errs := LoadFS(fsys, ".")
	got := map[string][]string{}
	for _, a := range list {
		got[a.Name] = a.DependsOn
		if len(a.Warnings) > 0 {
			t.Errorf("%s: warnings %v", a.Name, a.Warnings)
		}
	}
	want := map[string][]string{"after": {"a", "base"}, "argo": {"base"}, "base": nil, "waits": {"broken"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("loaded %v, want %v", got, want)
	}
	var msgs []string
	for _, err := range errs {
		msgs = append(msgs, err.Error())
	}
	wantErrs := []string{
		`a.yaml: Application "a": spec.dependsOn: dependsOn cycle: a → b → a`,
		`b.yaml: Application "b": spec.dependsOn: dependsOn cycle: b → a → b`,
		`c.yaml: Application "c": spec.dependsOn: dependsOn cycle: c → d → e → c`,
		`d.yaml: Application "d": spec.dependsOn: dependsOn cycle: d → e → c → d`,
		`e.yaml: Application "e": spec.dependsOn: dependsOn cycle: e → c → d → e`,
		`lost.yaml: Application "lost": spec.dependsOn[0].app: "cert-manager": no Application of that name`,
		`self.yaml: Application "self": spec.dependsOn: dependsOn cycle: self → self`,
	}
	for _, w := range wantErrs {
		found := false
		for _, m := range msgs {
			found = found || m == w
		}
		if !found {
			t.Errorf("no error %q among:\n%s", w, strings.Join(msgs, "\n"))
		}
	}
	if len(msgs) != len(wantErrs)+2 { // and broken's own two
		t.Errorf("%d errors, want %d:\n%s", len(msgs), len(wantErrs)+2, strings.Join(msgs, "\n"))
	}
	cycles := 0
	for _, err := range errs {
		if errors.Is(err, ErrDependsOnCycle) {
			cycles++
		}
	}
	if cycles != 6 {
		t.Errorf("%d errors wrap ErrDependsOnCycle, want 6", cycles)
	}
}

func TestParseDependsOnErrors(t *testing.T) {
	for _, tt := range []struct{ deps, want string }{
		{"[{app: ''}]", `spec.dependsOn[0].app: required`},
		{"[{app: Cert_Manager}]", `spec.dependsOn[0].app: "Cert_Manager" is not an Application name`},
		{"[{app: db}, {app: db}]", `spec.dependsOn[1].app: "db" is listed twice`},
		{"[{name: db}]", `unknown field "spec.dependsOn[0].name"`},
	} {
		_, errs := Parse("apps/api.yaml", []byte(head+"spec:\n  source: {repoURL: r}\n  destination: {clusters: [a]}\n  dependsOn: "+tt.deps+"\n"))
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tt.want) {
			t.Errorf("dependsOn %s: errors %v, want one containing %q", tt.deps, errs, tt.want)
		}
	}
}
