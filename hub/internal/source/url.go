package source

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ErrNotAllowed is wrapped by the errors of repository URLs whose transport is refused.
var ErrNotAllowed = errors.New("not allowed")

var (
	// helperSyntax is git's "<transport>::<address>", which runs a remote helper (ext:: runs
	// any command).
	helperSyntax = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+.-]*::`)
	// userinfo is the credentials part of any URL in a message.
	userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s"']+@`)
	// scpSyntax is git's "[user@]host:path", which means ssh.
	scpSyntax = regexp.MustCompile(`^(?:[^@/]+@)?[^@/:]+:`)
)

// remote is a checked repository URL.
type remote struct {
	url     string // what go-git fetches from; local paths made absolute
	display string // for messages, keys and config: without userinfo
	secrets []string
}

// parseRemote checks raw against the transports Flotilla allows: https, http, ssh and git,
// and local paths or file:// only with allowLocal.
func parseRemote(raw string, allowLocal bool) (remote, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return remote{}, fmt.Errorf("repository URL is empty")
	}
	if m := helperSyntax.FindString(raw); m != "" {
		return remote{}, fmt.Errorf("repository %q: transport %q is %w", redactText(raw), strings.TrimSuffix(m, "::"), ErrNotAllowed)
	}
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return remote{}, fmt.Errorf("repository %q: malformed URL", redactText(raw))
		}
		r := remote{url: raw, display: redact(u)}
		if u.User != nil {
			r.secrets = append(r.secrets, u.User.String())
			if p, ok := u.User.Password(); ok {
				r.secrets = append(r.secrets, p)
			}
		}
		switch strings.ToLower(u.Scheme) {
		case "https", "http", "ssh", "git":
			if u.Host == "" {
				return remote{}, fmt.Errorf("repository %q: no host", r.display)
			}
			return r, nil
		case "file":
			if !allowLocal {
				return remote{}, fmt.Errorf("repository %q: local repositories need --allow-local-repos: %w", r.display, ErrNotAllowed)
			}
			return r, nil
		default:
			return remote{}, fmt.Errorf("repository %q: transport %q is %w", r.display, u.Scheme, ErrNotAllowed)
		}
	}
	if scpSyntax.MatchString(raw) {
		return remote{url: raw, display: raw}, nil
	}
	if !allowLocal {
		return remote{}, fmt.Errorf("repository %q: local repositories need --allow-local-repos: %w", raw, ErrNotAllowed)
	}
	abs, err := filepath.Abs(raw)
	if err != nil {
		return remote{}, fmt.Errorf("repository %q: %w", raw, err)
	}
	return remote{url: abs, display: abs}, nil
}

// withSecrets returns r with more secrets for scrub to remove.
func (r remote) withSecrets(secrets ...string) remote {
	r.secrets = append(slices.Clip(r.secrets), secrets...)
	return r
}

// redact drops the userinfo of u.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// redactText drops what looks like userinfo from a string that did not parse as a URL.
func redactText(s string) string { return userinfo.ReplaceAllString(s, "$1") }

// scrubbed is an error whose message has had credentials removed; it still unwraps to the
// original.
type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// scrub removes r's credentials and raw URL from err's message.
func (r remote) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := strings.ReplaceAll(err.Error(), r.url, r.display)
	// Longest first, so that no part of a secret that holds another is left.
	secrets := slices.Clone(r.secrets)
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	msg = userinfo.ReplaceAllString(msg, "$1")
	if msg == err.Error() {
		return err
	}
	return &scrubbed{msg: msg, err: err}
}
