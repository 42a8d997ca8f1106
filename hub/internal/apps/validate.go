package apps

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// validate checks what both kinds have in common once converted, fills in defaults, and
// parses the path template.
func validate(a *Application, errAt errorf) []error {
	var errs []error
	if a.Name == "" {
		errs = append(errs, errAt("metadata.name", ErrRequired))
	} else if msgs := validation.IsDNS1123Label(a.Name); len(msgs) > 0 {
		errs = append(errs, errAt("metadata.name", fmt.Errorf("%q: %s", a.Name, strings.Join(msgs, "; "))))
	}
	if strings.TrimSpace(a.Source.RepoURL) == "" {
		errs = append(errs, errAt("spec.source.repoURL", ErrRequired))
	}
	if a.Source.TargetRevision == "" {
		a.Source.TargetRevision = DefaultTargetRevision
	}
	if t, err := parsePath(a.Source.Path); err != nil {
		errs = append(errs, errAt("spec.source.path", err))
	} else {
		a.pathTmpl = t
		if !strings.Contains(a.Source.Path, "{{") {
			if _, err := cleanPath(a.Source.Path); err != nil {
				errs = append(errs, errAt("spec.source.path", err))
			}
		}
	}
	d := a.Destination
	for i, c := range d.Clusters {
		if strings.TrimSpace(c) == "" {
			errs = append(errs, errAt(fmt.Sprintf("spec.destination.clusters[%d]", i), fmt.Errorf("empty cluster name")))
		}
	}
	if d.Namespace != "" {
		if msgs := validation.IsDNS1123Label(d.Namespace); len(msgs) > 0 {
			errs = append(errs, errAt("spec.destination.namespace", fmt.Errorf("%q: %s", d.Namespace, strings.Join(msgs, "; "))))
		}
	}
	return errs
}
