package charts

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// The kinds of fetch errors; an *Error wraps one.
var (
	// ErrUnavailable: the repository could not be reached, timed out or answered 5xx or 429.
	// The caller keeps the last good render and shows the repository Stale.
	ErrUnavailable = errors.New("repository unavailable")
	// ErrUnauthorized: the repository refused the credentials (or their absence), or they
	// could not be read.
	ErrUnauthorized = errors.New("not authorized")
	// ErrNotFound: no such chart, or no version matching the one asked for.
	ErrNotFound = errors.New("not found")
	// ErrTooLarge: an index, a chart archive or its expanded content is over its bound.
	ErrTooLarge = errors.New("too large")
	// ErrInvalidChart: the archive is not a chart, is another chart or version than the
	// repository said, or its digest is not the one the repository published.
	ErrInvalidChart = errors.New("invalid chart")
	// ErrInvalidRef: the reference itself is wrong (URL, chart name, version syntax).
	ErrInvalidRef = errors.New("invalid chart reference")
)

// Error is a failed fetch: it names the repository and the chart, never a credential.
type Error struct {
	Ref    Ref
	Kind   error  // one of the sentinels above
	Detail string // what happened, with every secret scrubbed
}

func (e *Error) Error() string {
	s := fmt.Sprintf("chart %q", e.Ref.Chart)
	if e.Ref.Version != "" {
		s += fmt.Sprintf(" version %q", e.Ref.Version)
	}
	if e.Ref.RepoURL != "" {
		s += fmt.Sprintf(" from repository %q", e.Ref.RepoURL)
	}
	return s + ": " + e.Kind.Error() + ": " + e.Detail
}

func (e *Error) Unwrap() error { return e.Kind }

// failure makes the *Error of err, classified by what it is, its text without secrets. An
// *Error passes through, given ref if it has none.
func failure(ref Ref, err error, what string, secrets []string) error {
	var fe *Error
	if errors.As(err, &fe) {
		if fe.Ref == (Ref{}) {
			return &Error{Ref: ref, Kind: fe.Kind, Detail: fe.Detail}
		}
		return fe
	}
	return &Error{Ref: ref, Kind: classify(err), Detail: what + ": " + scrub(err.Error(), secrets)}
}

// classify tells the kind of a transport error: a response by its status code, a body over
// its bound ErrTooLarge; anything else (a network failure, a TLS failure, a timeout) is
// ErrUnavailable.
func classify(err error) error {
	var status *statusError
	if errors.As(err, &status) {
		return status.kind()
	}
	if errors.Is(err, ErrTooLarge) {
		return ErrTooLarge
	}
	if kind, ok := ociKind(err); ok {
		return kind
	}
	return ErrUnavailable
}

// statusError is an HTTP response that was not the one expected.
type statusError struct {
	code int
	url  string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.url, e.code, http.StatusText(e.code))
}

func (e *statusError) kind() error { return kindOfStatus(e.code) }

func kindOfStatus(code int) error {
	switch {
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return ErrUnauthorized
	case code == http.StatusNotFound:
		return ErrNotFound
	default: // 5xx, 429, and whatever else a repository should not answer
		return ErrUnavailable
	}
}

// scrub replaces every secret in s.
func scrub(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "***")
		}
	}
	return s
}
