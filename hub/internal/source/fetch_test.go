package source

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"time"
)

func newFetcher(t *testing.T, opts Options) *Fetcher {
	t.Helper()
	opts.CacheDir = t.TempDir()
	f, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readFile(t *testing.T, s *Snapshot, p string) string {
	t.Helper()
	fsys, err := s.FileSystem()
	if err != nil {
		t.Fatalf("FileSystem: %v", err)
	}
	data, err := fsys.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(data)
}

func TestFetchLocal(t *testing.T) {
	repo := newGitRepo(t)
	repo.write(map[string]string{"apps/api.yaml": "kind: Application\n", "base/deploy.yaml": "v1\n"})
	first := repo.commit("first\n\nwith a body")
	f := newFetcher(t, Options{AllowLocal: true})
	ctx := context.Background()

	s, err := f.Fetch(ctx, repo.dir, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if s.Commit != first || s.Ref != "HEAD" || s.Author != "Ada <ada@example.com>" ||
		s.Message != "first\n\nwith a body\n" || s.TreeHash != repo.git("rev-parse", "HEAD^{tree}") || s.Time.IsZero() {
		t.Errorf("snapshot = %+v, want commit %s", s, first)
	}
	if got := readFile(t, s, "/base/deploy.yaml"); got != "v1\n" {
		t.Errorf("/base/deploy.yaml = %q", got)
	}
	fsys, err := s.FS()
	if err != nil {
		t.Fatal(err)
	}
	if data, err := fs.ReadFile(fsys, "apps/api.yaml"); err != nil || string(data) != "kind: Application\n" {
		t.Errorf("FS apps/api.yaml = %q, %v", data, err)
	}

	// A new commit is picked up by the next fetch; an unchanged remote is not an error.
	repo.write(map[string]string{"base/deploy.yaml": "v2\n"})
	second := repo.commit("second")
	for range 2 {
		s2, err := f.Fetch(ctx, repo.dir, "main")
		if err != nil {
			t.Fatal(err)
		}
		if s2.Commit != second || s2.Ref != "refs/heads/main" {
			t.Errorf("second fetch: commit %s ref %s, want %s refs/heads/main", s2.Commit, s2.Ref, second)
		}
		if got := readFile(t, s2, "/base/deploy.yaml"); got != "v2\n" {
			t.Errorf("/base/deploy.yaml = %q, want v2", got)
		}
	}
	// file:// is the same repository when local repositories are allowed.
	if s3, err := f.Fetch(ctx, "file://"+repo.dir, "HEAD"); err != nil || s3.Commit != second {
		t.Errorf("file:// fetch = %v, %v; want %s", s3, err, second)
	}
	// The older snapshot still reads its own tree.
	if got := readFile(t, s, "/base/deploy.yaml"); got != "v1\n" {
		t.Errorf("old snapshot /base/deploy.yaml = %q, want v1", got)
	}
}

func TestResolveRevisions(t *testing.T) {
	repo := newGitRepo(t)
	repo.write(map[string]string{"f": "1"})
	c1 := repo.commit("one")
	repo.git("tag", "v1")
	repo.git("tag", "-a", "-m", "annotated", "v1-annotated")
	repo.git("checkout", "--quiet", "-b", "feature")
	repo.write(map[string]string{"f": "2"})
	c2 := repo.commit("two")
	repo.git("checkout", "--quiet", "main")
	repo.write(map[string]string{"f": "3"})
	c3 := repo.commit("three")
	f := newFetcher(t, Options{AllowLocal: true})

	tests := []struct {
		rev, want, ref string
		wantErr        error
	}{
		{"", c3, "HEAD", nil},
		{"HEAD", c3, "HEAD", nil},
		{"main", c3, "refs/heads/main", nil},
		{"feature", c2, "refs/heads/feature", nil},
		{"refs/heads/feature", c2, "refs/heads/feature", nil},
		{"v1", c1, "refs/tags/v1", nil},
		{"v1-annotated", c1, "refs/tags/v1-annotated", nil},
		{c2, c2, "", nil},
		{c1[:7], c1, "", nil},
		{strings.ToUpper(c2[:9]), c2, "", nil},
		{"nope", "", "", ErrRevisionNotFound},
		{"0000000", "", "", ErrRevisionNotFound},
		{strings.Repeat("0", 40), "", "", ErrRevisionNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.rev, func(t *testing.T) {
			s, err := f.Fetch(context.Background(), repo.dir, tt.rev)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), repo.dir) {
					t.Fatalf("Fetch(%q) error = %v, want %v naming the repository", tt.rev, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Commit != tt.want || s.Ref != tt.ref {
				t.Errorf("Fetch(%q) = %s (%s), want %s (%s)", tt.rev, s.Commit, s.Ref, tt.want, tt.ref)
			}
		})
	}
}

func TestFetchDeletedBranchIsPruned(t *testing.T) {
	repo := newGitRepo(t)
	repo.commit("one")
	repo.git("branch", "gone")
	f := newFetcher(t, Options{AllowLocal: true})
	if _, err := f.Fetch(context.Background(), repo.dir, "gone"); err != nil {
		t.Fatal(err)
	}
	repo.git("branch", "-D", "gone")
	if _, err := f.Fetch(context.Background(), repo.dir, "gone"); !errors.Is(err, ErrRevisionNotFound) {
		t.Errorf("deleted branch: error = %v, want ErrRevisionNotFound", err)
	}
}

func TestFetchConcurrent(t *testing.T) {
	repo := newGitRepo(t)
	repo.write(map[string]string{"a.yaml": "a: 1\n"})
	want := repo.commit("one")
	f := newFetcher(t, Options{AllowLocal: true})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 8 {
		wg.Go(func() {
			s, err := f.Fetch(context.Background(), repo.dir, "main")
			if err == nil && s.Commit != want {
				err = errors.New("wrong commit " + s.Commit)
			}
			if err == nil {
				_, err = s.FileSystem()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestFetchRefused(t *testing.T) {
	repo := newGitRepo(t)
	repo.commit("one")
	tests := []struct {
		url, want string
	}{
		{"file://" + repo.dir, "local repositories need --allow-local-repos"},
		{repo.dir, "local repositories need --allow-local-repos"},
		{"ext::sh -c touch% /tmp/pwned", `transport "ext" is not allowed`},
		{"fd::3", `transport "fd" is not allowed`},
		{"ftp://example.com/repo.git", `transport "ftp" is not allowed`},
		{"", "repository URL is empty"},
	}
	f := newFetcher(t, Options{})
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			_, err := f.Fetch(context.Background(), tt.url, "HEAD")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
			if tt.url != "" && !errors.Is(err, ErrNotAllowed) {
				t.Errorf("error %v does not wrap ErrNotAllowed", err)
			}
		})
	}
}

func TestFetchErrorsHideCredentials(t *testing.T) {
	f := newFetcher(t, Options{FetchTimeout: 5 * time.Second})
	// Nothing listens on port 1: the fetch fails fast.
	_, err := f.Fetch(context.Background(), "http://flotilla:s3cr3t@127.0.0.1:1/org/repo.git", "main")
	if err == nil {
		t.Fatal("fetch from a closed port succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "flotilla:") ||
		!strings.Contains(msg, "http://127.0.0.1:1/org/repo.git") {
		t.Errorf("error %q leaks credentials or does not name the repository", msg)
	}
}

func TestParseRemote(t *testing.T) {
	tests := []struct {
		url, display string
		local        bool
		wantErr      bool
	}{
		{"https://github.com/org/repo.git", "https://github.com/org/repo.git", false, false},
		{"https://user:pw@github.com/org/repo.git", "https://github.com/org/repo.git", false, false},
		{"ssh://git@github.com/org/repo.git", "ssh://github.com/org/repo.git", false, false},
		{"git@github.com:org/repo.git", "git@github.com:org/repo.git", false, false},
		{"git://127.0.0.1:9418/repo", "git://127.0.0.1:9418/repo", false, false},
		{"http:///nohost", "", false, true},
		{"file:///srv/repo", "file:///srv/repo", true, false},
		{"/srv/repo", "/srv/repo", true, false},
		{"ext::sh", "", true, true},
		{"gopher://x/y", "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			r, err := parseRemote(tt.url, tt.local)
			if (err != nil) != tt.wantErr || (err == nil && r.display != tt.display) {
				t.Errorf("parseRemote(%q) = %q, %v; want %q, error %v", tt.url, r.display, err, tt.display, tt.wantErr)
			}
		})
	}
}
