// Package source keeps local copies of Git repositories (bare, one per URL, fetched with
// go-git) and resolves revisions to commits whose trees it loads, bounded and with symlinks
// contained, into in-memory file systems for rendering.
package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
)

// Defaults of Options.
const (
	DefaultFetchTimeout = 60 * time.Second
	DefaultMaxFileSize  = 4 << 20
	DefaultMaxRepoFiles = 20000
	DefaultMaxTotalSize = 256 << 20
)

// Options configure a Fetcher. Zero values take the defaults.
type Options struct {
	CacheDir     string // where the bare repositories are kept; required
	AllowLocal   bool   // allow local paths and file:// URLs (tests, demos)
	FetchTimeout time.Duration
	MaxFileSize  int64 // largest file in a tree
	MaxRepoFiles int   // most files in a tree, symlinked copies included
	MaxTotalSize int64 // most bytes in a tree, symlinked copies included
	// Credentials are matched to repository URLs by prefix; nil has none, and then ssh
	// repositories cannot be fetched.
	Credentials *Credentials
}

// withDefaults fills in the zero values.
func (o Options) withDefaults() Options {
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MaxRepoFiles <= 0 {
		o.MaxRepoFiles = DefaultMaxRepoFiles
	}
	if o.MaxTotalSize <= 0 {
		o.MaxTotalSize = DefaultMaxTotalSize
	}
	return o
}

// Fetcher fetches repositories into its cache directory. It is safe for concurrent use; it
// runs one fetch (or tree load) at a time per repository.
type Fetcher struct {
	opts  Options
	mu    sync.Mutex
	repos map[string]*repository // by display URL
}

// repository is one cached bare repository. lock (a one-slot semaphore, so waiting can be
// cancelled) guards repo and everything on disk: go-git's storage is not safe for concurrent
// use.
type repository struct {
	lock chan struct{}
	dir  string
	repo *git.Repository // nil until opened
}

// New makes a Fetcher, creating opts.CacheDir if needed.
func New(opts Options) (*Fetcher, error) {
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("source: cache directory is required")
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("source: cache directory: %w", err)
	}
	return &Fetcher{opts: opts.withDefaults(), repos: map[string]*repository{}}, nil
}

func (f *Fetcher) repository(r remote) *repository {
	f.mu.Lock()
	defer f.mu.Unlock()
	repo, ok := f.repos[r.display]
	if !ok {
		sum := sha256.Sum256([]byte(r.display))
		repo = &repository{
			lock: make(chan struct{}, 1),
			dir:  filepath.Join(f.opts.CacheDir, hex.EncodeToString(sum[:16])),
		}
		f.repos[r.display] = repo
	}
	return repo
}

func (r *repository) acquire(ctx context.Context) error {
	select {
	case r.lock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *repository) release() { <-r.lock }

// Fetch updates the local copy of repoURL and resolves rev (a branch, a tag, a full reference
// name, a full or short commit SHA, or "HEAD" or "" for the remote's default branch) to a
// commit. A branch, tag, reference or HEAD is fetched alone and shallow; a SHA fetches every
// branch and tag with their whole history. The credentials of Options.Credentials that
// match repoURL are read now; ssh repositories need them.
func (f *Fetcher) Fetch(ctx context.Context, repoURL, rev string) (*Snapshot, error) {
	r, err := parseRemote(repoURL, f.opts.AllowLocal)
	if err != nil {
		return nil, err
	}
	if rev == "" {
		rev = "HEAD"
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.FetchTimeout)
	defer cancel()
	repo := f.repository(r)
	if err := repo.acquire(ctx); err != nil {
		return nil, fmt.Errorf("fetch repository %q: waiting for another fetch: %w", r.display, err)
	}
	defer repo.release()
	deadline, _ := ctx.Deadline()
	auth, r, err := f.opts.Credentials.auth(r, deadline)
	if err != nil {
		return nil, fmt.Errorf("fetch repository %q: %w", r.display, r.scrub(err))
	}
	if err := repo.open(r); err != nil {
		return nil, fmt.Errorf("repository %q: cache %s: %w", r.display, repo.dir, r.scrub(err))
	}
	return repo.fetchRevision(ctx, r, auth, rev, f.opts)
}

// open opens the bare repository, making it on first use or when it is unreadable.
func (r *repository) open(rem remote) error {
	if r.repo != nil {
		return nil
	}
	repo, err := git.PlainOpen(r.dir)
	if err != nil {
		if err := os.RemoveAll(r.dir); err != nil {
			return err
		}
		if repo, err = git.PlainInit(r.dir, true); err != nil {
			return err
		}
	}
	// The remote's configured URL never holds credentials; Fetch passes the real one.
	_ = repo.DeleteRemote(git.DefaultRemoteName)
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: git.DefaultRemoteName, URLs: []string{rem.display}}); err != nil {
		return err
	}
	r.repo = repo
	return nil
}
