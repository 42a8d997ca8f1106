package apps

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
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
	if len(a.Sources) == 0 {
		errs = append(errs, checkSource(&a.Source, "spec.source", errAt)...)
	}
	for i := range a.Sources {
		errs = append(errs, checkSource(&a.Sources[i], fmt.Sprintf("spec.sources[%d]", i), errAt)...)
	}
	if i := slices.IndexFunc(a.Sources, Source.Renders); i >= 0 {
		a.Source = a.Sources[i] // with its defaults filled in
	}
	errs = append(errs, checkRefs(a, errAt)...)
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

// checkSource checks one source and fills in its default revision (HEAD in Git; a chart's
// empty version means its newest).
func checkSource(s *Source, field string, errAt errorf) []error {
	var errs []error
	if strings.TrimSpace(s.RepoURL) == "" {
		errs = append(errs, errAt(field+".repoURL", ErrRequired))
	} else if err := CheckRepoURL(s.RepoURL); err != nil {
		errs = append(errs, errAt(field+".repoURL", err))
	}
	if s.TargetRevision == "" && !s.IsChart() {
		s.TargetRevision = DefaultTargetRevision
	}
	return errs
}

// checkRefs refuses a value file "$REF/..." whose REF no source of the app has.
func checkRefs(a *Application, errAt errorf) []error {
	refs := map[string]bool{}
	for _, s := range a.Sources {
		if s.Ref != "" {
			refs[s.Ref] = true
		}
	}
	var errs []error
	all := a.Sources
	if len(all) == 0 {
		all = []Source{a.Source}
	}
	for i, s := range all {
		for j, f := range s.Helm.valueFiles() {
			if ref, _, ok := SplitRef(f); ok && !refs[ref] {
				field := fmt.Sprintf("spec.sources[%d].helm.valueFiles[%d]", i, j)
				if len(a.Sources) == 0 {
					field = fmt.Sprintf("spec.source.helm.valueFiles[%d]", j)
				}
				errs = append(errs, errAt(field, fmt.Errorf("%q: no source has ref %q", f, ref)))
			}
		}
	}
	return errs
}

// ErrCredentialsInURL is wrapped by the errors of repository URLs that carry credentials.
var ErrCredentialsInURL = errors.New("credentials in a repository URL are not allowed")

// CheckRepoURL refuses a repository URL with credentials in it (https://user:token@host/...):
// they would show in `flotilla apps`, the hub's log and status. Only an ssh user name without
// a password (ssh://git@host/..., git@host:path) is allowed. The error names the URL without
// them and says where credentials go instead.
func CheckRepoURL(raw string) error {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil // scp-like git@host:path (a user name, no password) or a local path
	}
	authority, path, slash := strings.Cut(rest, "/")
	u, err := url.Parse(raw)
	var user *url.Userinfo
	if err == nil {
		user = u.User
	} else if strings.Contains(authority, "@") {
		user = url.UserPassword("", "") // unparsable, but with userinfo: refuse it, unrepeated
	}
	if user == nil {
		return nil
	}
	if _, hasPassword := user.Password(); !hasPassword && strings.EqualFold(scheme, "ssh") {
		return nil
	}
	shown := scheme + "://" + authority[strings.LastIndex(authority, "@")+1:]
	if slash {
		shown += "/" + path
	}
	return fmt.Errorf("%q: %w: put them in a --repo-credentials file (a token or password read from a file, by URL prefix)", shown, ErrCredentialsInURL)
}
