package apps

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	sigsjson "sigs.k8s.io/json"

	"github.com/flotilla-dev/flotilla/shared/policy"
)

// AccessPolicy is an Application's spec.policy (shared/policy: the agent checks the same).
type AccessPolicy = policy.Access

// policyDoc is spec.policy as written.
type policyDoc struct {
	Namespaces       []string       `json:"namespaces,omitempty"`
	ClusterResources []groupKindDoc `json:"clusterResources,omitempty"`
	Deny             []groupKindDoc `json:"deny,omitempty"`
}

type groupKindDoc struct {
	Group string `json:"group"`
	Kind  string `json:"kind"`
}

// decodePolicy strictly decodes a spec.policy given as raw JSON (Argo CD Applications, which are
// otherwise decoded leniently: a misspelt field of a policy must not pass unnoticed).
func decodePolicy(raw json.RawMessage, errAt errorf) (*policyDoc, []error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var d policyDoc
	strict, err := sigsjson.UnmarshalStrict(raw, &d, sigsjson.DisallowUnknownFields)
	if err != nil {
		return nil, []error{errAt("spec.policy", trimJSONPrefix(err))}
	}
	var errs []error
	for _, e := range strict {
		errs = append(errs, errAt("spec.policy", trimJSONPrefix(e)))
	}
	return &d, errs
}

// accessPolicy converts and checks spec.policy: namespaces are valid globs or names and allow
// the destination namespace; every kind is named (group may be "" for the core group) and
// every glob is well-formed.
func accessPolicy(d *policyDoc, dest string, errAt errorf) (AccessPolicy, []error) {
	var p AccessPolicy
	if d == nil {
		return p, nil
	}
	var errs []error
	for i, ns := range d.Namespaces {
		field := fmt.Sprintf("spec.policy.namespaces[%d]", i)
		ns = strings.TrimSpace(ns)
		switch {
		case ns == "":
			errs = append(errs, errAt(field, ErrRequired))
			continue
		case strings.Contains(ns, "/"):
			errs = append(errs, errAt(field, fmt.Errorf("%q: a namespace glob has no /", ns)))
			continue
		case !strings.ContainsAny(ns, `*?[\`):
			if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
				errs = append(errs, errAt(field, fmt.Errorf("%q: %s", ns, strings.Join(msgs, "; "))))
				continue
			}
		}
		if _, err := path.Match(ns, ""); err != nil {
			errs = append(errs, errAt(field, fmt.Errorf("%q: %w", ns, err)))
			continue
		}
		p.Namespaces = append(p.Namespaces, ns)
	}
	var kindErrs []error
	p.ClusterResources, kindErrs = groupKinds(d.ClusterResources, "spec.policy.clusterResources", errAt)
	errs = append(errs, kindErrs...)
	p.Deny, kindErrs = groupKinds(d.Deny, "spec.policy.deny", errAt)
	errs = append(errs, kindErrs...)
	if len(errs) == 0 && len(p.Namespaces) > 0 && dest != "" && !p.AllowsNamespace(dest, dest) {
		errs = append(errs, errAt("spec.policy.namespaces", fmt.Errorf("the destination namespace %q is not among %q", dest, p.Namespaces)))
	}
	return p, errs
}

func groupKinds(docs []groupKindDoc, field string, errAt errorf) ([]schema.GroupKind, []error) {
	var out []schema.GroupKind
	var errs []error
	for i, d := range docs {
		f := fmt.Sprintf("%s[%d]", field, i)
		gk := schema.GroupKind{Group: strings.TrimSpace(d.Group), Kind: strings.TrimSpace(d.Kind)}
		if gk.Kind == "" {
			errs = append(errs, errAt(f+".kind", ErrRequired))
			continue
		}
		bad := false
		for _, g := range []string{gk.Group, gk.Kind} {
			if _, err := path.Match(g, ""); err != nil {
				errs = append(errs, errAt(f, fmt.Errorf("%q: %w", g, err)))
				bad = true
			}
		}
		if !bad {
			out = append(out, gk)
		}
	}
	return out, errs
}
