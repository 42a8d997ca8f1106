package apps

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Dependencies between apps (spec.dependsOn). The hub checks them over the whole set of
// Applications: an app that depends on an app no manifest defines, or that is part of a
// dependsOn cycle, is rejected with an error naming the missing app or the cycle, like any
// invalid manifest (it keeps its last good desired state). The agents judge them, per cluster:
// an app's new revision is applied once every app it depends on is Synced and Healthy there.

// dependsOnDoc is one entry of spec.dependsOn.
type dependsOnDoc struct {
	App string `json:"app"`
}

// ErrDependsOnCycle is wrapped by the errors of apps that are part of a dependsOn cycle.
var ErrDependsOnCycle = errors.New("dependsOn cycle")

// dependsOn reads spec.dependsOn: each entry names another app, once.
func dependsOn(docs []dependsOnDoc, errAt errorf) ([]string, []error) {
	var (
		out  []string
		errs []error
	)
	for i, d := range docs {
		field := fmt.Sprintf("spec.dependsOn[%d].app", i)
		switch {
		case d.App == "":
			errs = append(errs, errAt(field, ErrRequired))
		case len(validation.IsDNS1123Label(d.App)) > 0:
			errs = append(errs, errAt(field, fmt.Errorf("%q is not an Application name: %s", d.App, strings.Join(validation.IsDNS1123Label(d.App), "; "))))
		case slices.Contains(out, d.App):
			errs = append(errs, errAt(field, fmt.Errorf("%q is listed twice", d.App)))
		default:
			out = append(out, d.App)
		}
	}
	return out, errs
}

// checkDependencies drops every app that depends on an app of no manifest, or that is part of
// a dependsOn cycle, with an error each. Names of manifests that failed to load (errs) count as
// defined: an app depending on one of those waits for it, on the agents, instead of failing.
func checkDependencies(list []*Application, errs []error) ([]*Application, []error) {
	defined := map[string]bool{}
	graph := map[string][]string{}
	for _, a := range list {
		defined[a.Name] = true
		graph[a.Name] = a.DependsOn
	}
	for _, err := range errs {
		if ae := (*Error)(nil); errors.As(err, &ae) && ae.App != "" {
			defined[ae.App] = true
		}
	}
	var (
		kept   []*Application
		errOut []error
	)
	for _, a := range list {
		errAt := func(field string, err error) error {
			return &Error{File: a.SourceFile, App: a.Name, Field: field, Err: err}
		}
		var appErrs []error
		for i, dep := range a.DependsOn {
			if !defined[dep] {
				appErrs = append(appErrs, errAt(fmt.Sprintf("spec.dependsOn[%d].app", i),
					fmt.Errorf("%q: no Application of that name", dep)))
			}
		}
		if cycle := CycleThrough(graph, a.Name); cycle != nil {
			appErrs = append(appErrs, errAt("spec.dependsOn", fmt.Errorf("%w: %s", ErrDependsOnCycle, strings.Join(cycle, " → "))))
		}
		if len(appErrs) > 0 {
			errOut = append(errOut, appErrs...)
			continue
		}
		kept = append(kept, a)
	}
	return kept, errOut
}

// CycleThrough returns the shortest cycle of graph (app → the apps it depends on) through
// start, from start back to it ([a b a]; [a a] when a depends on itself), or nil when there
// is none. Among cycles of the same length it takes dependencies in the order listed.
func CycleThrough(graph map[string][]string, start string) []string {
	parent := map[string]string{}
	queue := []string{start}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, next := range graph[n] {
			if next == start {
				path := []string{start}
				for at := n; at != start; at = parent[at] {
					path = append(path, at)
				}
				path = append(path, start)
				slices.Reverse(path[1 : len(path)-1])
				return path
			}
			if _, seen := parent[next]; seen {
				continue
			}
			parent[next] = n
			queue = append(queue, next)
		}
	}
	return nil
}
