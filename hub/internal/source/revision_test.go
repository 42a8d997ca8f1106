package source

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// cached is the Fetcher's bare copy of a local repository.
func cached(t *testing.T, f *Fetcher, dir string) *git.Repository {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.repos[dir]
	if !ok || r.repo == nil {
		t.Fatalf("no cached repository for %s", dir)
	}
	return r.repo
}

func refNames(t *testing.T, repo *git.Repository) []string {
	t.Helper()
	iter, err := repo.References()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	_ = iter.ForEach(func(r *plumbing.Reference) error {
		if r.Name() != plumbing.HEAD { // the bare repository's own
			names = append(names, r.Name().String())
		}
		return nil
	})
	slices.Sort(names)
	return names
}

func shallowCommits(t *testing.T, repo *git.Repository) []string {
	t.Helper()
	hashes, err := repo.Storer.Shallow()
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, h := range hashes {
		s = append(s, h.String())
	}
	slices.Sort(s)
	return s
}

func hasCommit(repo *git.Repository, sha string) bool {
	_, err := repo.CommitObject(plumbing.NewHash(sha))
	return err == nil
}

// TestFetchShallowSingleBranch follows one branch of a repository through shallow fetches,
// then asks for older commits by SHA, which completes the history.
func TestFetchShallowSingleBranch(t *testing.T) {
	repo := newGitRepo(t)
	repo.write(map[string]string{"f": "1"})
	c1 := repo.commit("one")
	repo.git("tag", "v1")
	repo.write(map[string]string{"f": "2"})
	c2 := repo.commit("two")
	repo.git("branch", "feature")
	repo.write(map[string]string{"f": "3"})
	c3 := repo.commit("three")
	f := newFetcher(t, Options{AllowLocal: true})
	ctx := context.Background()
	fetch := func(rev, want string) {
		t.Helper()
		s, err := f.Fetch(ctx, repo.dir, rev)
		if err != nil {
			t.Fatalf("Fetch(%q): %v", rev, err)
		}
		if s.Commit != want {
			t.Fatalf("Fetch(%q) = %s, want %s", rev, s.Commit, want)
		}
	}

	// One branch, one commit.
	fetch("main", c3)
	cache := cached(t, f, repo.dir)
	if got := refNames(t, cache); !slices.Equal(got, []string{"refs/heads/main"}) {
		t.Errorf("refs after fetching main = %v, want main alone", got)
	}
	if got := shallowCommits(t, cache); !slices.Equal(got, []string{c3}) || hasCommit(cache, c2) {
		t.Errorf("shallow = %v (has %s: %v), want %s alone", got, c2, hasCommit(cache, c2), c3)
	}

	// A commit on top of one we have is not shallow.
	repo.write(map[string]string{"f": "4"})
	c4 := repo.commit("four")
	fetch("main", c4)
	if got := shallowCommits(t, cache); !slices.Equal(got, []string{c3}) {
		t.Errorf("shallow after c4 = %v, want %s", got, c3)
	}

	// Several new commits: only the last comes.
	repo.write(map[string]string{"f": "5"})
	c5 := repo.commit("five")
	repo.write(map[string]string{"f": "6"})
	c6 := repo.commit("six")
	fetch("main", c6)
	if hasCommit(cache, c5) {
		t.Errorf("shallow fetch brought %s too", c5)
	}

	// An older commit by abbreviated SHA: every branch and tag with their whole history.
	fetch(c5[:10], c5)
	fetch(c1, c1)
	if got := shallowCommits(t, cache); len(got) != 0 {
		t.Errorf("shallow after a SHA = %v, want none", got)
	}
	for _, c := range []string{c1, c2, c3, c4, c5, c6} {
		if !hasCommit(cache, c) {
			t.Errorf("commit %s missing after a SHA fetch", c)
		}
	}
	if got := refNames(t, cache); !slices.Equal(got, []string{"refs/heads/feature", "refs/heads/main", "refs/tags/v1"}) {
		t.Errorf("refs after a SHA = %v", got)
	}
	// Shallow again after, and the snapshots of the complete history still read.
	repo.write(map[string]string{"f": "7"})
	repo.commit("seven")
	repo.write(map[string]string{"f": "8"})
	c8 := repo.commit("eight")
	fetch("HEAD", c8)
	fetch("v1", c1)
	fetch("feature", c2)
	s, err := f.Fetch(ctx, repo.dir, c2)
	if err != nil || readFile(t, s, "/f") != "2" {
		t.Errorf("Fetch(c2) = %v, %v", s, err)
	}
}

// TestFetchBranchThenTag asks for a name that is a branch, then only a tag: the stale branch
// must not answer.
func TestFetchBranchThenTag(t *testing.T) {
	repo := newGitRepo(t)
	c1 := repo.commit("one")
	repo.git("tag", "release")
	c2 := repo.commit("two")
	repo.git("branch", "release")
	f := newFetcher(t, Options{AllowLocal: true})
	ctx := context.Background()

	s, err := f.Fetch(ctx, repo.dir, "release")
	if err != nil || s.Commit != c2 || s.Ref != "refs/heads/release" {
		t.Fatalf("Fetch(release) = %+v, %v; want the branch at %s", s, err, c2)
	}
	repo.git("branch", "-D", "release")
	s, err = f.Fetch(ctx, repo.dir, "release")
	if err != nil || s.Commit != c1 || s.Ref != "refs/tags/release" {
		t.Fatalf("Fetch(release) = %+v, %v; want the tag at %s", s, err, c1)
	}
	if slices.Contains(refNames(t, cached(t, f, repo.dir)), "refs/heads/release") {
		t.Error("the deleted branch is still in the cache")
	}
}

// TestFetchHeadWithoutRemoteHead falls back to main when the remote's HEAD names a branch
// that does not exist.
func TestFetchHeadWithoutRemoteHead(t *testing.T) {
	repo := newGitRepo(t)
	c1 := repo.commit("one")
	repo.git("symbolic-ref", "HEAD", "refs/heads/unborn")
	f := newFetcher(t, Options{AllowLocal: true})
	s, err := f.Fetch(context.Background(), repo.dir, "HEAD")
	if err != nil || s.Commit != c1 || s.Ref != "refs/heads/main" {
		t.Fatalf("Fetch(HEAD) = %+v, %v; want main at %s", s, err, c1)
	}
}

// TestFetchRevisionNotAReference never fetches with a revision that is no reference name:
// in a refspec a "*" would fetch every branch and a ":" would name the destination.
func TestFetchRevisionNotAReference(t *testing.T) {
	repo := newGitRepo(t)
	repo.commit("one")
	repo.git("branch", "other")
	f := newFetcher(t, Options{AllowLocal: true})
	for _, rev := range []string{"*", "main:refs/heads/x", "refs/heads/*", "ma in", "main..other", "-x"} {
		if _, err := f.Fetch(context.Background(), repo.dir, rev); !errors.Is(err, ErrRevisionNotFound) {
			t.Errorf("Fetch(%q) error = %v, want ErrRevisionNotFound", rev, err)
		}
	}
	if f.repos[repo.dir].repo != nil {
		if got := refNames(t, cached(t, f, repo.dir)); len(got) != 0 {
			t.Errorf("refs fetched: %v", got)
		}
	}
}
