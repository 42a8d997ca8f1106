package source

import (
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrTooLarge is wrapped by the errors of trees beyond the size limits.
var ErrTooLarge = errors.New("too large")

// maxSymlinkHops bounds symlink chains, as the kernel does.
const maxSymlinkHops = 40

// tree is a loaded commit tree: every file's content by slash-separated path, symlinks
// replaced by copies of what they point to. A file over the size limit, or a symlink that
// leads out of the repository or nowhere, is rejected: it is kept as a path whose reading
// fails, so it fails only the renders that use it, not every app of the repository.
type tree struct {
	data     map[string][]byte
	rejected map[string]error
	paths    []string // sorted, rejected paths included
	total    int64
	opts     Options
}

// listing is the raw tree before symlinks are resolved.
type listing struct {
	files    map[string]plumbing.Hash
	links    map[string]string   // path → target
	children map[string][]string // directory ("." for the root) → entry names
}

// loadTree reads the tree of commit within opts' limits.
func loadTree(repo *git.Repository, commit plumbing.Hash, opts Options) (*tree, error) {
	c, err := repo.CommitObject(commit)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	root, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("tree: %w", err)
	}
	l := listing{files: map[string]plumbing.Hash{}, links: map[string]string{}, children: map[string][]string{}}
	w := object.NewTreeWalker(root, true, nil)
	defer w.Close()
	for {
		name, entry, err := w.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("walk tree: %w", err)
		}
		switch entry.Mode {
		case filemode.Dir:
		case filemode.Submodule:
			continue // not part of this repository's content
		case filemode.Symlink:
			target, err := readBlob(repo, entry.Hash, 4096)
			if err != nil {
				return nil, fmt.Errorf("symlink %q: %w", name, err)
			}
			l.links[name] = string(target)
		default:
			l.files[name] = entry.Hash
		}
		if len(l.files)+len(l.links) > opts.MaxRepoFiles {
			return nil, fmt.Errorf("more than %d files (at %q): %w", opts.MaxRepoFiles, name, ErrTooLarge)
		}
		dir := path.Dir(name)
		l.children[dir] = append(l.children[dir], path.Base(name))
	}
	t := &tree{data: map[string][]byte{}, rejected: map[string]error{}, opts: opts}
	for _, p := range sortedKeys(l.files) {
		if err := t.addBlob(repo, p, l.files[p]); err != nil {
			return nil, err
		}
	}
	for _, p := range sortedKeys(l.links) {
		if err := t.expand(repo, &l, p, p, 0); err != nil {
			return nil, err
		}
	}
	t.paths = slices.Concat(sortedKeys(t.data), sortedKeys(t.rejected))
	slices.Sort(t.paths)
	return t, nil
}

// reject records that p cannot be read, and why.
func (t *tree) reject(p string, err error) {
	if _, ok := t.data[p]; !ok {
		t.rejected[p] = err
	}
}

func (t *tree) addBlob(repo *git.Repository, p string, h plumbing.Hash) error {
	blob, err := repo.BlobObject(h)
	if err != nil {
		return fmt.Errorf("file %q: %w", p, err)
	}
	if blob.Size > t.opts.MaxFileSize {
		t.reject(p, fmt.Errorf("file %q: %d bytes, more than %d: %w", p, blob.Size, t.opts.MaxFileSize, ErrTooLarge))
		return nil
	}
	data, err := readBlob(repo, h, t.opts.MaxFileSize)
	if errors.Is(err, ErrTooLarge) {
		t.reject(p, fmt.Errorf("file %q: %w", p, err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("file %q: %w", p, err)
	}
	return t.add(p, data)
}

// add stores a file, enforcing the count and total size limits.
func (t *tree) add(p string, data []byte) error {
	if _, ok := t.data[p]; ok {
		return nil
	}
	if len(t.data) >= t.opts.MaxRepoFiles {
		return fmt.Errorf("more than %d files (at %q): %w", t.opts.MaxRepoFiles, p, ErrTooLarge)
	}
	t.total += int64(len(data))
	if t.total > t.opts.MaxTotalSize {
		return fmt.Errorf("more than %d bytes in all (at %q): %w", t.opts.MaxTotalSize, p, ErrTooLarge)
	}
	t.data[p] = data
	return nil
}

// expand puts at out a copy of what src resolves to: a file, or every file of a directory.
// A src that resolves to nothing (a dangling symlink inside the repository) adds nothing; one
// that leads out of the repository, loops or nests too deep is rejected at out.
func (t *tree) expand(repo *git.Repository, l *listing, out, src string, depth int) error {
	if depth > maxSymlinkHops {
		t.reject(out, fmt.Errorf("symlink %q: too many levels of symbolic links", out))
		return nil
	}
	resolved, err := l.resolve(src)
	if err != nil {
		t.reject(out, err)
		return nil
	}
	if h, ok := l.files[resolved]; ok {
		if data, ok := t.data[resolved]; ok {
			return t.add(out, data)
		}
		if err, ok := t.rejected[resolved]; ok {
			t.reject(out, fmt.Errorf("symlink %q: %w", out, err))
			return nil
		}
		return t.addBlob(repo, out, h)
	}
	kids, isDir := l.children[resolved]
	if !isDir {
		return nil
	}
	if resolved == "." || out == resolved || strings.HasPrefix(out, resolved+"/") {
		t.reject(out, fmt.Errorf("symlink %q: points to a directory containing it", out))
		return nil
	}
	for _, k := range kids {
		if err := t.expand(repo, l, out+"/"+k, resolved+"/"+k, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// resolve follows the symlinks along p (any component may be one) and returns the path it
// finally names. A link that is absolute or leads out of the repository is an error.
func (l *listing) resolve(p string) (string, error) {
	for hops := 0; ; hops++ {
		if hops > maxSymlinkHops {
			return "", fmt.Errorf("symlink %q: too many levels of symbolic links", p)
		}
		parts := strings.Split(p, "/")
		linked := false
		for i := range parts {
			prefix := strings.Join(parts[:i+1], "/")
			target, ok := l.links[prefix]
			if !ok {
				continue
			}
			if path.IsAbs(target) {
				return "", fmt.Errorf("symlink %q: absolute target %q is not allowed", prefix, target)
			}
			next := path.Join(append([]string{path.Dir(prefix), target}, parts[i+1:]...)...)
			if next == ".." || strings.HasPrefix(next, "../") {
				return "", fmt.Errorf("symlink %q: target %q is outside the repository", prefix, target)
			}
			p, linked = next, true
			break
		}
		if !linked {
			return p, nil
		}
	}
}

func readBlob(repo *git.Repository, h plumbing.Hash, limit int64) ([]byte, error) {
	blob, err := repo.BlobObject(h)
	if err != nil {
		return nil, err
	}
	r, err := blob.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
	}
	return data, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
