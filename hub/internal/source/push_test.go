package source

import (
	"context"
	"errors"
	"fmt"
	kwait "k8s.io/apimachinery/pkg/util/wait"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// servePush serves the repositories under base with `git daemon`, pushes allowed, and
// returns the address.
func servePush(t *testing.T, base string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command("git", "daemon", "--export-all", "--enable=receive-pack", "--base-path="+base,
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
	return addr
}

// TestPush: a commit on top of a shallow fetch of main changes one file, keeps the others,
// and is pushed to a new branch, then fast-forwards main; a push that would not
// fast-forward is rejected and changes nothing.
func TestPush(t *testing.T) {
	base := t.TempDir()
	work := &gitRepo{t: t, dir: filepath.Join(base, "work")}
	newGitRepoAt(t, work.dir)
	work.write(map[string]string{
		"env/prod/kustomization.yaml": "resources: [../../base]\n",
		"env/prod/other.yaml":         "kept\n",
		"base/kustomization.yaml":     "resources: []\n",
		"a-file":                      "x\n",
	})
	work.commit("one")
	work.write(map[string]string{"base/kustomization.yaml": "resources: [a.yaml]\n"})
	main := work.commit("two")
	bare := &gitRepo{t: t, dir: filepath.Join(base, "fleet.git")}
	cmd := exec.Command("git", "clone", "--quiet", "--bare", work.dir, bare.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git clone --bare: %v\n%s", err, out)
	}
	url := "git://" + servePush(t, base) + "/fleet.git"

	f := newFetcher(t, Options{})
	ctx := context.Background()
	snap, err := f.Fetch(ctx, url, "main")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Commit != main {
		t.Fatalf("fetched %s, want %s", snap.Commit, main)
	}
	c := Commit{
		Parent:      snap.Commit,
		Files:       map[string][]byte{"env/prod/kustomization.yaml": []byte("resources: [../../base]\nimages: []\n")},
		Message:     "promote\n\nbody\n",
		AuthorName:  "Flotilla",
		AuthorEmail: "flotilla@example.com",
		Branch:      "flotilla/promote-api-0123456",
	}
	sha, err := f.Push(ctx, url, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := bare.git("rev-parse", "refs/heads/"+c.Branch); got != sha {
		t.Fatalf("branch at %s, want %s", got, sha)
	}
	if got := bare.git("rev-parse", sha+"^"); got != main {
		t.Errorf("parent %s, want main %s", got, main)
	}
	if got := bare.git("show", sha+":env/prod/kustomization.yaml"); got != "resources: [../../base]\nimages: []" {
		t.Errorf("pushed file %q", got)
	}
	if got := bare.git("diff", "--name-only", main, sha); got != "env/prod/kustomization.yaml" {
		t.Errorf("the commit changes %q, want only the kustomization", got)
	}
	if got := bare.git("log", "-1", "--format=%an <%ae>|%s", sha); got != "Flotilla <flotilla@example.com>|promote" {
		t.Errorf("commit %q", got)
	}
	bare.git("fsck", "--strict")

	// Straight to main: a fast-forward.
	c.Branch = "main"
	if sha2, err := f.Push(ctx, url, c); err != nil {
		t.Fatal(err)
	} else if got := bare.git("rev-parse", "main"); got != sha2 {
		t.Errorf("main at %s, want %s", got, sha2)
	}
	// From the old parent again: main has moved on, so this is no fast-forward.
	c.Files = map[string][]byte{"a-file": []byte("y\n")}
	before := bare.git("rev-parse", "main")
	if _, err := f.Push(ctx, url, c); !errors.Is(err, ErrPushRejected) {
		t.Errorf("push that does not fast-forward: %v, want ErrPushRejected", err)
	}
	if got := bare.git("rev-parse", "main"); got != before {
		t.Errorf("a rejected push moved main to %s", got)
	}
}

func TestPushRefusesBadCommits(t *testing.T) {
	dir := t.TempDir()
	work := &gitRepo{t: t, dir: dir}
	newGitRepoAt(t, dir)
	work.write(map[string]string{"dir/file": "x\n"})
	work.symlink("link", "dir/file")
	head := work.commit("one")
	f := newFetcher(t, Options{AllowLocal: true})
	if _, err := f.Fetch(context.Background(), dir, "main"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    Commit
		want string
	}{
		{Commit{Parent: head, Branch: "x", Files: map[string][]byte{"../x": nil}}, "not a clean path"},
		{Commit{Parent: head, Branch: "x", Files: map[string][]byte{".git/config": nil}}, "not a clean path"},
		{Commit{Parent: head, Branch: "x", Files: map[string][]byte{"link": nil}}, `"link": is a symlink`},
		{Commit{Parent: head, Branch: "x", Files: map[string][]byte{"dir": nil}}, `"dir": is a directory`},
		{Commit{Parent: head, Branch: "x", Files: map[string][]byte{"dir/file/y": nil}}, `"dir/file": is a file`},
		{Commit{Parent: head, Branch: "bad..name", Files: map[string][]byte{"a": nil}}, "not a valid branch name"},
		{Commit{Parent: "abc", Branch: "x", Files: map[string][]byte{"a": nil}}, "not a full commit SHA"},
		{Commit{Parent: head, Branch: "x"}, "a commit changes 1 to"},
	} {
		_, err := f.Push(context.Background(), dir, tc.c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Push(%+v) = %v, want an error with %q", tc.c, err, tc.want)
		}
	}
}
