package source

import "fmt"

// RepoAuth is what a credentials entry gives a Helm repository (https) or an OCI registry
// (oci://): basic auth or a bearer token, read from the entry's file at lookup. It is for
// one fetch: look it up again for the next, so that rotated files are picked up. Its
// String names the entry, never the secret.
type RepoAuth struct {
	// Username and Password are basic auth (passwordFile; the user defaults to "git").
	Username, Password string
	// BearerToken is the token of bearerTokenFile; set instead of Username and Password.
	BearerToken string

	entry  string // "credentials FILE: repositories[i]"
	prefix endpoint
}

// String names the entry the credentials come from.
func (a *RepoAuth) String() string { return a.entry }

// GoString keeps %#v from printing the secrets.
func (a *RepoAuth) GoString() string { return "source.RepoAuth(" + a.entry + ")" }

// Covers reports whether rawURL is under the urlPrefix of the entry: only URLs it covers
// get the credentials (a chart archive on another host than its repository's index gets
// none unless the caller passes them on purpose).
func (a *RepoAuth) Covers(rawURL string) bool {
	e, _, ok := parseEndpoint(rawURL)
	return ok && a.prefix.matches(e)
}

// Secrets are the strings that must never appear in a message: the password, the token.
// A nil *RepoAuth has none.
func (a *RepoAuth) Secrets() []string {
	if a == nil {
		return nil
	}
	var s []string
	for _, v := range []string{a.Password, a.BearerToken} {
		if v != "" {
			s = append(s, v)
		}
	}
	return s
}

// RepoAuth finds the entry for a Helm repository or OCI registry URL (the longest matching
// urlPrefix, as for Git) and reads its secret now. It returns nil and no error when no entry
// matches, and an error naming the file and entry (never the secret) when the entry is an
// ssh key or its file cannot be read or is empty. A nil *Credentials has no entries.
func (c *Credentials) RepoAuth(rawURL string) (*RepoAuth, error) {
	cred := c.lookup(rawURL)
	if cred == nil {
		return nil, nil
	}
	a := &RepoAuth{entry: fmt.Sprintf("credentials %s: %s", c.file, cred.name()), prefix: cred.prefix}
	var err error
	switch {
	case cred.tokenFile != "":
		a.BearerToken, err = cred.token()
	case cred.passwordFile != "":
		a.Username, a.Password, err = cred.password()
	default:
		err = fmt.Errorf("urlPrefix %q has an ssh key, not a password or bearer token", cred.prefix)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.entry, err)
	}
	return a, nil
}
