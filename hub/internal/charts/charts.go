// Package charts fetches Helm charts from Helm repositories (HTTPS) and OCI registries for the
// hub's renderer: a chart reference and a version (exact, a semver range, or empty for the
// newest) resolve to the packaged chart, cached by digest under the data dir.
//
// This file is the contract between the fetcher and its users (the reconciler and the Helm
// renderer); the fetcher itself lives beside it.
package charts

import "context"

// Ref names a chart in a repository.
type Ref struct {
	// RepoURL is https://... (a Helm repository with an index.yaml) or oci://host/path.
	RepoURL string
	// Chart is the chart's name in the repository.
	Chart string
	// Version is an exact version, a semver constraint ("1.16.*", ">=1.0 <2"), or empty for
	// the newest release.
	Version string
}

// Artifact is a resolved, fetched chart.
type Artifact struct {
	Ref Ref
	// Version is the version Ref.Version resolved to.
	Version string
	// Digest is "sha256:<hex>" of Archive.
	Digest string
	// Archive is the packaged chart (.tgz). Callers must not modify it.
	Archive []byte
	// Stale is nil for an artifact the repository just resolved. When the repository could
	// not be reached and an exact version came from the cache instead, it is the fetch's
	// error (wrapping ErrUnavailable): the caller renders the artifact and shows the
	// repository Stale, as for a Git repository that is down.
	Stale error
}

// Source fetches charts. A failed fetch returns an error naming the repository and chart
// and never a credential.
type Source interface {
	Fetch(ctx context.Context, ref Ref) (*Artifact, error)
}
