package source

import (
	"context"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// gitHTTPServer serves the repositories under a directory with `git http-backend`, behind
// HTTP basic auth. A request with wrong credentials gets a 401 whose body echoes the
// password it sent, as a careless server might, so that tests see it scrubbed.
type gitHTTPServer struct {
	*httptest.Server
	mu             sync.Mutex
	user, password string
}

func newGitHTTPServer(t *testing.T, root, user, password string) *gitHTTPServer {
	t.Helper()
	backend := filepath.Join(newGitRepo(t).git("--exec-path"), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("git http-backend: %v", err)
	}
	cgiHandler := &cgi.Handler{
		Path: backend,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
			"GIT_CONFIG_NOSYSTEM=1",
		},
	}
	s := &gitHTTPServer{user: user, password: password}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		wantUser, wantPassword := s.user, s.password
		s.mu.Unlock()
		u, p, ok := r.BasicAuth()
		switch {
		case !ok:
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "credentials required", http.StatusUnauthorized)
		case u != wantUser || p != wantPassword:
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "bad credentials "+u+":"+p, http.StatusUnauthorized)
		default:
			cgiHandler.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *gitHTTPServer) setPassword(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.password = p
}

// writeFile writes a file under dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// credentialsFor writes a credentials file and loads it.
func credentialsFor(t *testing.T, dir, yaml string) *Credentials {
	t.Helper()
	c, err := LoadCredentials(writeFile(t, dir, "credentials.yaml", yaml))
	if err != nil {
		t.Fatalf("LoadCredentials: %v", err)
	}
	return c
}

func TestFetchHTTPBasicAuth(t *testing.T) {
	const canary = "canary-p4ss-7Hq2"
	root := t.TempDir()
	repo := &gitRepo{t: t, dir: filepath.Join(root, "repo")}
	newGitRepoAt(t, repo.dir)
	repo.write(map[string]string{"app.yaml": "v1\n"})
	want := repo.commit("one")
	srv := newGitHTTPServer(t, root, "x-access-token", "right-token")
	repoURL := srv.URL + "/repo"

	secrets := t.TempDir()
	writeFile(t, secrets, "token", "right-token\n") // a trailing newline, as `echo` writes
	creds := credentialsFor(t, secrets, `
repositories:
- urlPrefix: `+srv.URL+`/
  username: x-access-token
  passwordFile: token
`)
	ctx := context.Background()

	t.Run("right password", func(t *testing.T) {
		f := newFetcher(t, Options{Credentials: creds})
		s, err := f.Fetch(ctx, repoURL, "main")
		if err != nil {
			t.Fatal(err)
		}
		if s.Commit != want || readFile(t, s, "/app.yaml") != "v1\n" {
			t.Errorf("snapshot %s, want %s", s.Commit, want)
		}
		// The secret is read at each fetch: a rotated one is picked up.
		srv.setPassword("rotated-token")
		writeFile(t, secrets, "token", "rotated-token")
		if _, err := f.Fetch(ctx, repoURL, "HEAD"); err != nil {
			t.Errorf("after rotation: %v", err)
		}
		srv.setPassword("right-token")
		writeFile(t, secrets, "token", "right-token\n")
	})

	t.Run("wrong password", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "token", canary+"\n")
		wrong := credentialsFor(t, dir, "repositories:\n- urlPrefix: "+srv.URL+"/\n  passwordFile: token\n")
		f := newFetcher(t, Options{Credentials: wrong})
		_, err := f.Fetch(ctx, repoURL, "main")
		if !errors.Is(err, transport.ErrAuthenticationRequired) {
			t.Fatalf("error = %v, want authentication required", err)
		}
		// The server echoed the password into the error; it must be scrubbed there.
		if msg := err.Error(); strings.Contains(msg, canary) || !strings.Contains(msg, "bad credentials git:***") ||
			!strings.Contains(msg, repoURL) {
			t.Errorf("error %q leaks the password or does not name the repository", msg)
		}
	})

	t.Run("password in the URL", func(t *testing.T) {
		// A URL's own credentials come before the file's; they are scrubbed as well.
		f := newFetcher(t, Options{Credentials: creds})
		u := strings.Replace(repoURL, "http://", "http://x-access-token:"+canary+"@", 1)
		_, err := f.Fetch(ctx, u, "main")
		if !errors.Is(err, transport.ErrAuthenticationRequired) || strings.Contains(err.Error(), canary) {
			t.Errorf("error = %v, want authentication required without the password", err)
		}
		u = strings.Replace(repoURL, "http://", "http://x-access-token:right-token@", 1)
		if s, err := f.Fetch(ctx, u, "main"); err != nil || s.Commit != want || strings.Contains(s.RepoURL, "right-token") {
			t.Errorf("Fetch with the URL's credentials = %+v, %v", s, err)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		f := newFetcher(t, Options{})
		if _, err := f.Fetch(ctx, repoURL, "main"); !errors.Is(err, transport.ErrAuthenticationRequired) {
			t.Errorf("error = %v, want authentication required", err)
		}
	})

	t.Run("unreadable password file", func(t *testing.T) {
		dir := t.TempDir()
		tf := writeFile(t, dir, "token", "x")
		c := credentialsFor(t, dir, "repositories:\n- urlPrefix: "+srv.URL+"/\n  passwordFile: token\n")
		if err := os.Remove(tf); err != nil {
			t.Fatal(err)
		}
		f := newFetcher(t, Options{Credentials: c})
		_, err := f.Fetch(ctx, repoURL, "main")
		if err == nil || !strings.Contains(err.Error(), "repositories[0]: passwordFile") || !strings.Contains(err.Error(), tf) {
			t.Errorf("error = %v, want one naming the entry and the file", err)
		}
	})
}
