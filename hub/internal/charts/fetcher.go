package charts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"golang.org/x/sync/singleflight"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"

	"github.com/flotilla-dev/flotilla/hub/internal/source"
)

// Defaults of Config.
const (
	DefaultMaxCacheBytes    = 256 << 20
	DefaultMaxChartBytes    = 10 << 20
	DefaultMaxExpandedBytes = 50 << 20
	DefaultMaxIndexBytes    = 64 << 20
	DefaultFetchTimeout     = 60 * time.Second
	DefaultIndexTTL         = 30 * time.Second
)

// Config configures a Fetcher. Zero values take the defaults.
type Config struct {
	// Dir holds the chart archives, one file per digest; required. It is made on the first
	// write, so New has no side effects.
	Dir string
	// MaxCacheBytes bounds the archives kept in Dir; the least recently used go first.
	MaxCacheBytes int64
	// MaxChartBytes bounds a chart archive (compressed); MaxExpandedBytes what it expands to.
	MaxChartBytes    int64
	MaxExpandedBytes int64
	// MaxIndexBytes bounds a Helm repository's index.yaml.
	MaxIndexBytes int64
	// FetchTimeout bounds one Fetch.
	FetchTimeout time.Duration
	// IndexTTL is how long an index.yaml or an OCI tag list is reused before a Fetch asks the
	// repository again; shorter than the poll interval, so that every poll re-resolves
	// ranges. Negative reuses nothing.
	IndexTTL time.Duration
	// Credentials are matched to repository URLs by the longest prefix; nil has none.
	Credentials *source.Credentials
	// RootCAs verify the repositories' TLS certificates; nil uses the system's.
	RootCAs *x509.CertPool
}

func (c Config) withDefaults() Config {
	defaults := []struct {
		v   *int64
		def int64
	}{
		{&c.MaxCacheBytes, DefaultMaxCacheBytes},
		{&c.MaxChartBytes, DefaultMaxChartBytes},
		{&c.MaxExpandedBytes, DefaultMaxExpandedBytes},
		{&c.MaxIndexBytes, DefaultMaxIndexBytes},
	}
	for _, d := range defaults {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	if c.IndexTTL == 0 {
		c.IndexTTL = DefaultIndexTTL
	}
	return c
}

// Fetcher fetches charts from Helm repositories over HTTPS and from OCI registries, and
// keeps the archives by digest in Config.Dir. It is safe for concurrent use; concurrent
// fetches of one index, tag list or archive share one request.
type Fetcher struct {
	cfg    Config
	client *http.Client
	cache  *diskCache
	// flight merges concurrent requests for one index, tag list or archive.
	flight singleflight.Group
	// ociAuth remembers each registry's auth scheme (and the tokens of a token service), so
	// that requests carry credentials without a 401 first; the credentials themselves are
	// read at each fetch.
	ociAuth orasauth.Cache

	mu      sync.Mutex
	indexes map[string]*cachedIndex // by repository URL
	tags    map[string]*cachedTags  // by OCI repository
	// checked are the archives found to hold a chart at a version: "digest chart version".
	checked map[string]struct{}
}

var _ Source = (*Fetcher)(nil)

// New makes a Fetcher. It reads what Config.Dir already holds (a cache that outlived a
// restart) and writes nothing.
func New(cfg Config) (*Fetcher, error) {
	if cfg.Dir == "" {
		return nil, errors.New("charts: cache directory is required")
	}
	cfg = cfg.withDefaults()
	if cfg.MaxChartBytes > cfg.MaxCacheBytes {
		return nil, fmt.Errorf("charts: the largest chart (%d bytes) does not fit in the cache (%d bytes)", cfg.MaxChartBytes, cfg.MaxCacheBytes)
	}
	cache, err := openCache(cfg.Dir, cfg.MaxCacheBytes)
	if err != nil {
		return nil, err
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	return &Fetcher{
		cfg:     cfg,
		client:  &http.Client{Transport: transport, CheckRedirect: sameHostAuth},
		cache:   cache,
		ociAuth: orasauth.NewCache(),
		indexes: map[string]*cachedIndex{},
		tags:    map[string]*cachedTags{},
		checked: map[string]struct{}{},
	}, nil
}

// Fetch resolves ref.Version in ref's repository (an exact version, a semver constraint,
// or empty for the newest stable release), and returns the chart archive, from the cache
// when it holds the resolved digest. The index or tag list is asked again once it is older
// than Config.IndexTTL, so a range follows new releases. When the repository cannot be
// reached the error wraps ErrUnavailable; an exact version already in the cache is then
// served from it, with Artifact.Stale set to that error. Credentials come from
// Config.Credentials at each call.
func (f *Fetcher) Fetch(ctx context.Context, ref Ref) (*Artifact, error) {
	kind, err := checkRef(ref)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.FetchTimeout)
	defer cancel()
	var a *Artifact
	switch kind {
	case "oci":
		a, err = f.fetchOCI(ctx, ref)
	default:
		a, err = f.fetchHTTP(ctx, ref)
	}
	if err == nil {
		f.cache.remember(ref, a.Version, a.Digest)
		return a, nil
	}
	if errors.Is(err, ErrUnavailable) && isExact(ref.Version) {
		if cached := f.cache.recall(ref); cached != nil {
			cached.Stale = err
			return cached, nil
		}
	}
	return nil, err
}

// sameHostAuth follows at most 10 redirects and drops the credentials of a request
// redirected to another host (Go's client would keep them for a subdomain).
func sameHostAuth(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host {
		req.Header.Del("Authorization")
	}
	return nil
}

// checkRef checks ref's fields and returns the kind of repository, "https" or "oci".
func checkRef(ref Ref) (string, error) {
	if ref.Chart == "" || strings.ContainsAny(ref.Chart, "/\\") || ref.Chart == "." || ref.Chart == ".." {
		return "", &Error{Ref: ref, Kind: ErrInvalidRef, Detail: "chart name is empty or not a name"}
	}
	u, err := url.Parse(ref.RepoURL)
	if err != nil || u.Host == "" {
		return "", &Error{Ref: Ref{Chart: ref.Chart}, Kind: ErrInvalidRef, Detail: "repository URL is not an https:// or oci:// URL"}
	}
	if u.User != nil {
		return "", &Error{Ref: Ref{RepoURL: u.Redacted(), Chart: ref.Chart}, Kind: ErrInvalidRef, Detail: "credentials never go in a repository URL: use --repo-credentials"}
	}
	if ref.Version != "" && !isExact(ref.Version) {
		if _, err := semver.NewConstraint(ref.Version); err != nil {
			return "", &Error{Ref: ref, Kind: ErrInvalidRef, Detail: fmt.Sprintf("version %q is neither a version nor a semver constraint", ref.Version)}
		}
	}
	switch u.Scheme {
	case "https", "oci":
		return u.Scheme, nil
	default:
		return "", &Error{Ref: ref, Kind: ErrInvalidRef, Detail: fmt.Sprintf("scheme %q: chart repositories are https:// or oci://", u.Scheme)}
	}
}

// isExact reports whether v names one version rather than a range.
func isExact(v string) bool {
	_, err := semver.StrictNewVersion(strings.TrimPrefix(v, "v"))
	return err == nil
}

// auth returns the credentials for rawURL, read now.
func (f *Fetcher) auth(ref Ref, rawURL string) (*source.RepoAuth, error) {
	a, err := f.cfg.Credentials.RepoAuth(rawURL)
	if err != nil {
		return nil, &Error{Ref: ref, Kind: ErrUnauthorized, Detail: err.Error()}
	}
	return a, nil
}

// shared runs fn once for concurrent callers with the same key, under a context of its own
// bounded by the fetch timeout, so that one caller giving up does not fail the others.
func (f *Fetcher) shared(ctx context.Context, key string, fn func(context.Context) (any, error)) (any, error) {
	ch := f.flight.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.cfg.FetchTimeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case r := <-ch:
		return r.Val, r.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
