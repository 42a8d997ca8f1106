package apps

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// argoDoc is the part of an argoproj.io/v1alpha1 Application that Flotilla honours. It is
// decoded leniently: every other field becomes a warning (see argoKnown).
type argoDoc struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Project     string      `json:"project"`
		Source      *sourceDoc  `json:"source"`
		Sources     []sourceDoc `json:"sources"`
		Destination struct {
			Server    string `json:"server"`
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"destination"`
		SyncPolicy        *syncPolicyDoc `json:"syncPolicy"`
		IgnoreDifferences []ignore.Rule  `json:"ignoreDifferences"`
		// Policy is Flotilla's spec.policy, also read on Argo CD Applications (not an Argo CD
		// field: Flotilla has no AppProjects, its policy lives on the Application).
		Policy json.RawMessage `json:"policy"`
		// DependsOn is Flotilla's spec.dependsOn, also read on Argo CD Applications (Argo CD
		// orders apps with sync waves of an app of apps; Flotilla has no such parent app).
		DependsOn []dependsOnDoc `json:"dependsOn"`
	} `json:"spec"`
}

// known is a tree of field names; a nil subtree accepts anything below it.
type known map[string]known

// argoKnown lists the Argo CD fields Flotilla reads or may ignore without a word.
var argoKnown = known{
	"apiVersion": nil, "kind": nil, "metadata": nil, "status": nil, "operation": nil,
	"spec": {
		"project":           nil,
		"ignoreDifferences": nil,
		"policy":            nil, // decoded strictly on its own
		"dependsOn":         nil, // each entry's app is checked
		"source":            sourceKnown,
		"sources":           nil, // each entry checked against sourceKnown
		"destination":       {"server": nil, "name": nil, "namespace": nil},
		"syncPolicy": {
			"automated":                   {"prune": nil, "selfHeal": nil, "allowEmpty": nil, "enabled": nil},
			"syncOptions":                 nil,
			"preserveResourcesOnDeletion": nil,
			"retry": {
				"limit":   nil,
				"backoff": {"duration": nil, "factor": nil, "maxDuration": nil},
			},
		},
	},
}

func parseArgoCD(file string, doc []byte, h header, errAt errorf) (*Application, []error) {
	var d argoDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, []error{errAt("", fmt.Errorf("decode: %w", err))}
	}
	var generic map[string]any
	if err := json.Unmarshal(doc, &generic); err != nil {
		return nil, []error{errAt("", fmt.Errorf("decode: %w", err))}
	}
	a := &Application{
		Name:        d.Metadata.Name,
		SourceFile:  file,
		Destination: Destination{Namespace: d.Spec.Destination.Namespace},
		Health:      HealthPolicy{ProgressDeadline: DefaultProgressDeadline},
		Warnings:    unknownFields(generic, argoKnown, ""),
	}
	if p := d.Spec.Project; p != "" && p != "default" {
		a.Warnings = append(a.Warnings, fmt.Sprintf("spec.project %q is ignored: Flotilla has no projects", p))
	}
	var errs []error
	var srcErrs []error
	a.Source, a.Sources, srcErrs = sources(d.Spec.Source, d.Spec.Sources, errAt)
	errs = append(errs, srcErrs...)
	if list, ok := generic["spec"].(map[string]any)["sources"].([]any); ok {
		for i, s := range list {
			if m, ok := s.(map[string]any); ok {
				a.Warnings = append(a.Warnings, unknownFields(m, sourceKnown, fmt.Sprintf("spec.sources[%d]", i))...)
			}
		}
	}
	dst := d.Spec.Destination
	if dst.Server != "" {
		a.Warnings = append(a.Warnings, "destination.server is not supported, use destination.name")
	}
	switch {
	case dst.Name == "" && dst.Server != "":
		errs = append(errs, errAt("spec.destination.name", fmt.Errorf("%w (destination.server is not supported)", ErrRequired)))
	case dst.Name == "":
		errs = append(errs, errAt("spec.destination.name", ErrRequired))
	default:
		a.Destination.Clusters = []string{dst.Name}
	}
	sp, spErrs := syncPolicy(d.Spec.SyncPolicy, errAt, func(i int, opt string) {
		a.Warnings = append(a.Warnings, fmt.Sprintf("spec.syncPolicy.syncOptions %q is not supported and is ignored", opt))
	})
	a.SyncPolicy = sp
	errs = append(errs, spErrs...)
	pd, policyErrs := decodePolicy(d.Spec.Policy, errAt)
	errs = append(errs, policyErrs...)
	access, accessErrs := accessPolicy(pd, a.Destination.Namespace, errAt)
	a.Access = access
	errs = append(errs, accessErrs...)
	deps, depErrs := dependsOn(d.Spec.DependsOn, errAt)
	a.DependsOn = deps
	errs = append(errs, depErrs...)
	a.IgnoreDifferences = d.Spec.IgnoreDifferences
	errs = append(errs, checkIgnoreDifferences(a.IgnoreDifferences, errAt)...)
	errs = append(errs, validate(a, errAt)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return a, nil
}

// unknownFields warns about every field of obj that k does not list, in sorted order.
func unknownFields(obj map[string]any, k known, prefix string) []string {
	keys := make([]string, 0, len(obj))
	for key := range obj {
		keys = append(keys, key)
	}
	slices.Sort(keys)
	var warnings []string
	for _, key := range keys {
		field := strings.TrimPrefix(prefix+"."+key, ".")
		sub, ok := k[key]
		if !ok {
			warnings = append(warnings, field+" is not supported and is ignored")
			continue
		}
		if child, isMap := obj[key].(map[string]any); isMap && sub != nil {
			warnings = append(warnings, unknownFields(child, sub, field)...)
		}
	}
	return warnings
}
