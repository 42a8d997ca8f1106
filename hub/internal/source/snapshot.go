package source

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// ErrRevisionNotFound is wrapped by the errors of revisions that name nothing in the
// repository.
var ErrRevisionNotFound = errors.New("revision not found")

// Snapshot is one commit of a fetched repository.
type Snapshot struct {
	RepoURL  string // as given to Fetch, without credentials
	Revision string // as given to Fetch ("HEAD" for "")
	Ref      string // the reference rev resolved through, e.g. "refs/heads/main"; empty for a SHA
	Commit   string // full SHA
	TreeHash string // SHA of the commit's root tree: equal trees render equally
	Author   string // "Name <email>"
	Message  string
	Time     time.Time // committer time

	repo    *repository
	display string
	opts    Options

	mu     sync.Mutex
	loaded *tree // the tree, once loaded: later FileSystem and FS calls reuse it
}

var hexSHA = regexp.MustCompile(`^[0-9a-fA-F]{4,40}$`)

// snapshot makes the Snapshot of commit hash, which rev named through ref; the caller holds
// r's lock.
func (r *repository) snapshot(rem remote, rev string, hash plumbing.Hash, ref string, opts Options) (*Snapshot, error) {
	c, err := r.repo.CommitObject(hash)
	if err != nil {
		return nil, fmt.Errorf("repository %q: revision %q: commit %s: %w", rem.display, rev, hash, err)
	}
	return &Snapshot{
		RepoURL:  rem.display,
		Revision: rev,
		Ref:      ref,
		Commit:   c.Hash.String(),
		TreeHash: c.TreeHash.String(),
		Author:   fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Message:  c.Message,
		Time:     c.Committer.When,
		repo:     r,
		display:  rem.display,
		opts:     opts,
	}, nil
}

// peel follows annotated tags to the commit they name.
func (r *repository) peel(h plumbing.Hash) (plumbing.Hash, error) {
	for range 10 {
		tag, err := r.repo.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			return h, nil
		}
		if err != nil {
			return h, err
		}
		if tag.TargetType != plumbing.CommitObject && tag.TargetType != plumbing.TagObject {
			return h, fmt.Errorf("tag %s points to a %s, not a commit", tag.Name, tag.TargetType)
		}
		h = tag.Target
	}
	return h, fmt.Errorf("tag chain too long")
}

// expandSHA finds the one commit whose SHA starts with prefix.
func (r *repository) expandSHA(prefix string) (plumbing.Hash, error) {
	if len(prefix) == 40 {
		h := plumbing.NewHash(prefix)
		if _, err := r.repo.CommitObject(h); err != nil {
			return h, fmt.Errorf("commit %s: %w", prefix, ErrRevisionNotFound)
		}
		return h, nil
	}
	type prefixSearcher interface {
		HashesWithPrefix(prefix []byte) ([]plumbing.Hash, error)
	}
	ps, ok := r.repo.Storer.(prefixSearcher)
	if !ok {
		return plumbing.ZeroHash, fmt.Errorf("abbreviated SHAs are not supported by this storage: %w", ErrRevisionNotFound)
	}
	raw, err := hex.DecodeString(prefix[:len(prefix)&^1])
	if err != nil {
		return plumbing.ZeroHash, err
	}
	hashes, err := ps.HashesWithPrefix(raw)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	var found []plumbing.Hash
	for _, h := range hashes {
		if !strings.HasPrefix(h.String(), prefix) {
			continue
		}
		if h, err := r.peel(h); err == nil {
			if _, err := r.repo.CommitObject(h); err == nil && !slices.Contains(found, h) {
				found = append(found, h)
			}
		}
	}
	switch len(found) {
	case 0:
		return plumbing.ZeroHash, ErrRevisionNotFound
	case 1:
		return found[0], nil
	default:
		return plumbing.ZeroHash, fmt.Errorf("abbreviated SHA is ambiguous (%d commits)", len(found))
	}
}

// FileSystem loads the commit's whole tree into a kustomize in-memory file system rooted at
// "/" (a file a/b.yaml is at /a/b.yaml), within the size limits, symlinks resolved. A file
// over the size limit, or a symlink leading out of the repository, exists but cannot be read:
// the error names it. Each call returns a new file system; the tree is read from the
// repository only once per Snapshot.
func (s *Snapshot) FileSystem() (filesys.FileSystem, error) {
	files, err := s.files()
	if err != nil {
		return nil, err
	}
	mem := filesys.MakeFsInMemory()
	for _, p := range files.paths {
		if err := mem.WriteFile("/"+p, files.data[p]); err != nil {
			return nil, fmt.Errorf("repository %q at %s: %s: %w", s.display, short(s.Commit), p, err)
		}
	}
	if len(files.rejected) == 0 {
		return mem, nil
	}
	rejected := make(map[string]error, len(files.rejected))
	for p, err := range files.rejected {
		rejected["/"+p] = fmt.Errorf("repository %q at %s: %w", s.display, short(s.Commit), err)
	}
	return rejectingFS{FileSystem: mem, rejected: rejected}, nil
}

// rejectingFS fails the reading of rejected paths.
type rejectingFS struct {
	filesys.FileSystem
	rejected map[string]error // absolute path → why
}

var _ filesys.FileSystem = rejectingFS{}

func (r rejectingFS) Open(p string) (filesys.File, error) {
	if err := r.rejected[path.Clean(p)]; err != nil {
		return nil, err
	}
	return r.FileSystem.Open(p)
}

func (r rejectingFS) ReadFile(p string) ([]byte, error) {
	if err := r.rejected[path.Clean(p)]; err != nil {
		return nil, err
	}
	return r.FileSystem.ReadFile(p)
}

// FS returns the commit's whole tree as an fs.FS (for reading Application manifests), within
// the size limits, symlinks resolved.
func (s *Snapshot) FS() (fs.FS, error) {
	files, err := s.files()
	if err != nil {
		return nil, err
	}
	rejected := make(map[string]error, len(files.rejected))
	for p, err := range files.rejected {
		rejected[p] = fmt.Errorf("repository %q at %s: %w", s.display, short(s.Commit), err)
	}
	return newMemFS(files.data, rejected), nil
}

// files loads the tree once; the repository's lock keeps it apart from fetches.
func (s *Snapshot) files() (*tree, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded != nil {
		return s.loaded, nil
	}
	s.repo.lock <- struct{}{}
	defer s.repo.release()
	t, err := loadTree(s.repo.repo, plumbing.NewHash(s.Commit), s.opts)
	if err != nil {
		return nil, fmt.Errorf("repository %q at %s: %w", s.display, short(s.Commit), err)
	}
	s.loaded = t
	return t, nil
}

func short(sha string) string { return sha[:min(len(sha), 12)] }
