package source

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// headRef is where a fetch of the remote's HEAD is kept.
const headRef = "refs/flotilla/HEAD"

const (
	// shallowDepth is the depth of the fetch of a branch, tag or HEAD: the commit alone.
	shallowDepth = 1
	// unshallowDepth is git's infinite depth: a fetch with it completes a shallow history.
	unshallowDepth = 1<<31 - 1
)

// allRefSpecs fetch every branch and tag under its own name, to look for a commit SHA.
var allRefSpecs = []config.RefSpec{
	"+refs/heads/*:refs/heads/*",
	"+refs/tags/*:refs/tags/*",
}

var fullSHA = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)

// refCandidate is a remote reference a revision may name, and where it is kept.
type refCandidate struct {
	remote plumbing.ReferenceName
	local  plumbing.ReferenceName
	ref    string // for Snapshot.Ref
}

// refCandidates lists in order the references rev may name: the remote's HEAD (then main or
// master for a remote without one), a full reference name, or a branch then a tag. A full
// SHA, or what is no valid reference name, names none.
func refCandidates(rev string) []refCandidate {
	same := func(name plumbing.ReferenceName) refCandidate { return refCandidate{name, name, name.String()} }
	switch {
	case rev == "HEAD":
		return []refCandidate{{plumbing.HEAD, headRef, "HEAD"}, same(plumbing.Main), same(plumbing.Master)}
	case fullSHA.MatchString(rev):
		return nil
	case strings.HasPrefix(rev, "refs/"):
		if name := plumbing.ReferenceName(rev); name.Validate() == nil {
			return []refCandidate{same(name)}
		}
		return nil
	default:
		branch, tag := plumbing.NewBranchReferenceName(rev), plumbing.NewTagReferenceName(rev)
		if branch.Validate() != nil || tag.Validate() != nil {
			return nil
		}
		return []refCandidate{same(branch), same(tag)}
	}
}

// fetchRevision fetches what rev names and makes its Snapshot; the caller holds r's lock. A
// reference is fetched alone and shallow, the first of its candidates the remote has. A
// commit SHA, or an abbreviated one that names no reference, fetches every branch and tag,
// completing the history of a shallow repository, then looks for the commit.
func (r *repository) fetchRevision(ctx context.Context, rem remote, auth transport.AuthMethod, rev string, opts Options) (*Snapshot, error) {
	for _, c := range refCandidates(rev) {
		spec := config.RefSpec("+" + c.remote.String() + ":" + c.local.String())
		err := r.fetch(ctx, rem, auth, []config.RefSpec{spec}, shallowDepth, false)
		if errors.Is(err, git.NoMatchingRefSpecError{}) {
			// Not on the remote (any more): drop a stale copy.
			if err := r.repo.Storer.RemoveReference(c.local); err != nil {
				return nil, fmt.Errorf("repository %q: cache: %w", rem.display, err)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		ref, err := r.repo.Reference(c.local, true)
		if err != nil {
			return nil, fmt.Errorf("repository %q: revision %q: %w", rem.display, rev, err)
		}
		hash, err := r.peel(ref.Hash())
		if err != nil {
			return nil, fmt.Errorf("repository %q: revision %q: %w", rem.display, rev, err)
		}
		return r.snapshot(rem, rev, hash, c.ref, opts)
	}
	if !hexSHA.MatchString(rev) {
		return nil, fmt.Errorf("repository %q: revision %q: %w", rem.display, rev, ErrRevisionNotFound)
	}
	depth := 0
	if shallow, err := r.repo.Storer.Shallow(); err != nil {
		return nil, fmt.Errorf("repository %q: cache: %w", rem.display, err)
	} else if len(shallow) > 0 {
		depth = unshallowDepth
	}
	if err := r.fetch(ctx, rem, auth, allRefSpecs, depth, true); err != nil {
		return nil, err
	}
	hash, err := r.expandSHA(strings.ToLower(rev))
	if err != nil {
		return nil, fmt.Errorf("repository %q: revision %q: %w", rem.display, rev, err)
	}
	return r.snapshot(rem, rev, hash, "", opts)
}

// fetch runs one fetch of specs; depth 0 is the whole history. An up-to-date fetch is not
// an error; a refspec the remote has nothing for is git.NoMatchingRefSpecError, unwrapped.
func (r *repository) fetch(ctx context.Context, rem remote, auth transport.AuthMethod, specs []config.RefSpec, depth int, prune bool) error {
	err := r.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteURL: rem.url,
		RefSpecs:  specs,
		Depth:     depth,
		Auth:      auth,
		Tags:      git.NoTags, // tags come with the refspecs
		Force:     true,
		Prune:     prune,
	})
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
	case errors.Is(err, git.NoMatchingRefSpecError{}):
		return err
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("fetch repository %q: repository is empty: %w", rem.display, err)
	case ctx.Err() != nil:
		return fmt.Errorf("fetch repository %q: %w: %w", rem.display, ctx.Err(), rem.scrub(err))
	default:
		return fmt.Errorf("fetch repository %q: %w", rem.display, rem.scrub(err))
	}
	if depth == 0 {
		return nil
	}
	if err := r.trimShallow(); err != nil {
		return fmt.Errorf("repository %q: cache: %w", rem.display, err)
	}
	return nil
}

// trimShallow drops from the repository's shallow commits those whose parents it now has,
// as git does: go-git only adds to the list, and a fetch that completes a history, or a
// shallow fetch of a commit whose parent was already here, ends their shallowness.
func (r *repository) trimShallow() error {
	shallow, err := r.repo.Storer.Shallow()
	if err != nil || len(shallow) == 0 {
		return err
	}
	keep := make([]plumbing.Hash, 0, len(shallow))
	for _, h := range shallow {
		c, err := r.repo.CommitObject(h)
		if err != nil {
			continue // not here: nothing to be shallow about
		}
		for _, p := range c.ParentHashes {
			if r.repo.Storer.HasEncodedObject(p) != nil {
				keep = append(keep, h)
				break
			}
		}
	}
	if len(keep) == len(shallow) {
		return nil
	}
	return r.repo.Storer.SetShallow(keep)
}
