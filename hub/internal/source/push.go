package source

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// ErrPushRejected is wrapped by the errors of pushes the remote refused or that would not
// fast-forward the branch (it moved, or exists with other commits).
var ErrPushRejected = errors.New("push rejected")

// maxCommitFiles bounds the files one Commit may change.
const maxCommitFiles = 100

// Commit is a commit for Push to make on top of a fetched one and push to a branch.
type Commit struct {
	// Parent is the full SHA of a commit of a Snapshot this Fetcher returned.
	Parent string
	// Files are the new contents by slash-separated repository path; only regular files are
	// written (a path that is a directory, a symlink or a submodule in Parent is an error).
	Files   map[string][]byte
	Message string
	// AuthorName and AuthorEmail sign the commit, as author and committer.
	AuthorName  string
	AuthorEmail string
	// Branch is the branch to push to: created when missing, else fast-forwarded.
	Branch string
}

// Push makes c on top of its parent in the local copy of repoURL and pushes it to the branch,
// with the same credentials and time bound as Fetch. It returns the new commit's SHA. It never
// forces: a branch that has moved on is left as it is (ErrPushRejected).
func (f *Fetcher) Push(ctx context.Context, repoURL string, c Commit) (string, error) {
	r, err := parseRemote(repoURL, f.opts.AllowLocal)
	if err != nil {
		return "", err
	}
	branch := plumbing.NewBranchReferenceName(c.Branch)
	if c.Branch == "" || branch.Validate() != nil || strings.HasPrefix(c.Branch, "refs/") {
		return "", fmt.Errorf("push to repository %q: branch %q is not a valid branch name", r.display, c.Branch)
	}
	if !fullSHA.MatchString(c.Parent) {
		return "", fmt.Errorf("push to repository %q: parent %q is not a full commit SHA", r.display, c.Parent)
	}
	if len(c.Files) == 0 || len(c.Files) > maxCommitFiles {
		return "", fmt.Errorf("push to repository %q: a commit changes 1 to %d files, not %d", r.display, maxCommitFiles, len(c.Files))
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.FetchTimeout)
	defer cancel()
	repo := f.repository(r)
	if err := repo.acquire(ctx); err != nil {
		return "", fmt.Errorf("push to repository %q: waiting for a fetch: %w", r.display, err)
	}
	defer repo.release()
	deadline, _ := ctx.Deadline()
	auth, r, err := f.opts.Credentials.auth(r, deadline)
	if err != nil {
		return "", fmt.Errorf("push to repository %q: %w", r.display, r.scrub(err))
	}
	if err := repo.open(r); err != nil {
		return "", fmt.Errorf("repository %q: cache %s: %w", r.display, repo.dir, r.scrub(err))
	}
	hash, err := repo.commit(c)
	if err != nil {
		return "", fmt.Errorf("push to repository %q: %w", r.display, err)
	}
	spec := config.RefSpec(hash.String() + ":" + branch.String())
	err = repo.repo.PushContext(ctx, &git.PushOptions{
		RemoteName: git.DefaultRemoteName,
		RemoteURL:  r.url,
		RefSpecs:   []config.RefSpec{spec},
		Auth:       auth,
	})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
		return hash.String(), nil
	case errors.Is(err, git.ErrNonFastForwardUpdate), strings.Contains(err.Error(), "non-fast-forward"):
		return "", fmt.Errorf("push to repository %q: branch %s has other commits: %w", r.display, c.Branch, ErrPushRejected)
	case ctx.Err() != nil:
		return "", fmt.Errorf("push to repository %q: %w: %w", r.display, ctx.Err(), r.scrub(err))
	default:
		return "", fmt.Errorf("push to repository %q: %w: %w", r.display, ErrPushRejected, r.scrub(err))
	}
}

// commit writes c's blobs, trees and commit object into the repository and returns the
// commit's hash; the caller holds r's lock.
func (r *repository) commit(c Commit) (plumbing.Hash, error) {
	parent, err := r.repo.CommitObject(plumbing.NewHash(c.Parent))
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("parent %s: %w", short(c.Parent), err)
	}
	root, err := parent.Tree()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("parent %s: tree: %w", short(c.Parent), err)
	}
	files := make(map[string][]byte, len(c.Files))
	for p, data := range c.Files {
		clean := path.Clean(p)
		if clean != p || path.IsAbs(p) || clean == "." || strings.HasPrefix(clean, "../") || slices.Contains(strings.Split(clean, "/"), ".git") {
			return plumbing.ZeroHash, fmt.Errorf("path %q: not a clean path inside the repository", p)
		}
		files[clean] = data
	}
	s := r.repo.Storer
	treeHash, err := writeTree(s, root, files, "")
	if err != nil {
		return plumbing.ZeroHash, err
	}
	sig := object.Signature{Name: c.AuthorName, Email: c.AuthorEmail, When: time.Now()}
	commit := &object.Commit{
		Author: sig, Committer: sig, Message: c.Message, TreeHash: treeHash,
		ParentHashes: []plumbing.Hash{parent.Hash},
	}
	obj := s.NewEncodedObject()
	if err := commit.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode commit: %w", err)
	}
	return s.SetEncodedObject(obj)
}

// writeTree stores the tree that is base (nil for none) with files (paths relative to it)
// written, and the trees below it that changed, and returns its hash. dir is base's path in
// the repository, for errors.
func writeTree(s storer.EncodedObjectStorer, base *object.Tree, files map[string][]byte, dir string) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if base != nil {
		for _, e := range base.Entries {
			entries[e.Name] = e
		}
	}
	subdirs := map[string]map[string][]byte{}
	for p, data := range files {
		if sub, rest, ok := strings.Cut(p, "/"); ok {
			if subdirs[sub] == nil {
				subdirs[sub] = map[string][]byte{}
			}
			subdirs[sub][rest] = data
			continue
		}
		mode := filemode.Regular
		if old, ok := entries[p]; ok {
			if old.Mode != filemode.Regular && old.Mode != filemode.Executable {
				return plumbing.ZeroHash, fmt.Errorf("path %q: is a %s, not a regular file", path.Join(dir, p), modeName(old.Mode))
			}
			mode = old.Mode
		}
		h, err := writeBlob(s, data)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[p] = object.TreeEntry{Name: p, Mode: mode, Hash: h}
	}
	for name, sub := range subdirs {
		full := path.Join(dir, name)
		var subBase *object.Tree
		if old, ok := entries[name]; ok {
			if old.Mode != filemode.Dir {
				return plumbing.ZeroHash, fmt.Errorf("path %q: is a %s, not a directory", full, modeName(old.Mode))
			}
			t, err := object.GetTree(s, old.Hash)
			if err != nil {
				return plumbing.ZeroHash, fmt.Errorf("tree %q: %w", full, err)
			}
			subBase = t
		}
		h, err := writeTree(s, subBase, sub, full)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	}
	t := &object.Tree{}
	for _, e := range entries {
		t.Entries = append(t.Entries, e)
	}
	// Git's order: by name, a directory's name compared as if it ended in "/".
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	slices.SortFunc(t.Entries, func(a, b object.TreeEntry) int { return strings.Compare(key(a), key(b)) })
	obj := s.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("encode tree: %w", err)
	}
	return s.SetEncodedObject(obj)
}

func writeBlob(s storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

func modeName(m filemode.FileMode) string {
	switch m {
	case filemode.Dir:
		return "directory"
	case filemode.Symlink:
		return "symlink"
	case filemode.Submodule:
		return "submodule"
	default:
		return "file"
	}
}
