package source

import (
	"context"
	"fmt"
	kwait "k8s.io/apimachinery/pkg/util/wait"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestFetchGitDaemon fetches over the network from `git daemon`, following the remote HEAD
// to a branch that is not main.
func TestFetchGitDaemon(t *testing.T) {
	base := t.TempDir()
	repo := &gitRepo{t: t, dir: filepath.Join(base, "repo")}
	newGitRepoAt(t, repo.dir)
	repo.write(map[string]string{"env/prod/app.yaml": "prod\n"})
	repo.commit("one")
	repo.git("checkout", "--quiet", "-b", "trunk")
	repo.write(map[string]string{"env/prod/app.yaml": "trunk\n"})
	want := repo.commit("on trunk")

	port := freePort(t)
	cmd := exec.Command("git", "daemon", "--export-all", "--base-path="+base,
		fmt.Sprintf("--port=%d", port), "--listen=127.0.0.1", "--reuseaddr", "--informative-errors", base)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start git daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := kwait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	}); err != nil {
		t.Fatalf("git daemon did not listen on %s: %v", addr, err)
	}

	f := newFetcher(t, Options{}) // no local access needed
	url := "git://" + addr + "/repo"
	s, err := f.Fetch(context.Background(), url, "HEAD")
	if err != nil {
		t.Fatal(err)
	}
	if s.Commit != want {
		t.Errorf("HEAD = %s, want trunk's %s", s.Commit, want)
	}
	if got := readFile(t, s, "/env/prod/app.yaml"); got != "trunk\n" {
		t.Errorf("app.yaml = %q", got)
	}
	if s, err := f.Fetch(context.Background(), url, "main"); err != nil || s.Commit == want {
		t.Errorf("main: %v, %v", s, err)
	}
	if _, err := f.Fetch(context.Background(), "git://"+addr+"/missing", "HEAD"); err == nil {
		t.Errorf("fetching a repository the daemon does not have succeeded")
	}
}

func newGitRepoAt(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("git", "init", "--quiet", "--initial-branch=main", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
