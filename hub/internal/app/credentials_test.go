package app

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// lockedBuffer is the hub's log, written by its goroutines and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startHub runs `flotilla hub` in this process with args (and its own listen addresses) until
// the test ends; it returns a way to run the CLI against it and the hub's log.
func startHub(t *testing.T, args ...string) (func(args ...string) (string, error), *lockedBuffer) {
	t.Helper()
	var dataDir string
	for i, a := range args {
		if a == "--data-dir" && i+1 < len(args) {
			dataDir = args[i+1]
		}
	}
	hubLog := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	root := NewRootCommand()
	root.SetErr(hubLog)
	root.SetArgs(append([]string{"hub", "--listen", freeAddr(t), "--http-listen", freeAddr(t), "--poll-interval", "1s",
		"--log-level", "debug"}, args...))
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	cli := func(args ...string) (string, error) {
		root := NewRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append(args, "--config", filepath.Join(dataDir, "admin.yaml")))
		err := root.Execute()
		return out.String(), err
	}
	return cli, hubLog
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestCredentialsInRepoURLNeverShown: an Application whose repoURL carries a token is refused
// at load with an error naming its file and field and pointing to --repo-credentials, and the
// token appears in none of `flotilla apps` (table and JSON), `status`, `clusters`, the hub's
// log or its data dir; a hub given such an --apps-repo refuses to start, without repeating it either.
func TestCredentialsInRepoURLNeverShown(t *testing.T) {
	canary := fmt.Sprintf("repo-token-canary-%d", time.Now().UnixNano())
	dir := t.TempDir()
	appsDir, dataDir := filepath.Join(dir, "apps"), filepath.Join(dir, "data")
	if err := os.MkdirAll(appsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	leaky := "apiVersion: flotilla.dev/v1alpha1\nkind: Application\nmetadata: {name: leaky}\nspec:\n" +
		"  source: {repoURL: 'https://bot:" + canary + "@127.0.0.1:1/org/k8s.git', path: api}\n" +
		"  destination: {clusters: [edge-1], namespace: api}\n"
	if err := os.WriteFile(filepath.Join(appsDir, "leaky.yaml"), []byte(leaky), 0o600); err != nil {
		t.Fatal(err)
	}
	cli, hubLog := startHub(t, "--data-dir", dataDir, "--apps-dir", appsDir)
	ctx := context.Background()
	var appsJSON string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		out, err := cli("apps", "-o", "json")
		appsJSON = out
		return err == nil && strings.Contains(out, "spec.source.repoURL"), nil
	})
	if err != nil {
		t.Fatalf("flotilla apps never showed the refused app: %v\n%s\nhub log:\n%s", err, appsJSON, hubLog)
	}
	for _, want := range []string{"leaky.yaml", `\"leaky\"`, "spec.source.repoURL", "https://127.0.0.1:1/org/k8s.git", "--repo-credentials"} {
		if !strings.Contains(appsJSON, want) {
			t.Errorf("flotilla apps -o json does not name %s:\n%s", want, appsJSON)
		}
	}
	if _, err := cli("cluster", "add", "edge-1"); err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{"flotilla apps -o json": appsJSON}
	for _, args := range [][]string{{"apps"}, {"apps", "-o", "yaml"}, {"status", "-o", "json"}, {"status", "-o", "wide"}, {"clusters", "-o", "json"}} {
		out, err := cli(args...)
		if err != nil {
			t.Fatalf("flotilla %s: %v", strings.Join(args, " "), err)
		}
		outputs["flotilla "+strings.Join(args, " ")] = out
	}
	outputs["the hub's log"] = hubLog.String()
	// The data dir: the store, the git cache, the certificates, byte for byte.
	err = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		outputs[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for where, out := range outputs {
		if strings.Contains(out, canary) {
			t.Errorf("%s holds the repository token:\n%s", where, out)
		}
	}

	root := NewRootCommand()
	root.SetErr(&bytes.Buffer{})
	root.SetArgs([]string{"hub", "--data-dir", filepath.Join(dir, "other"), "--apps-repo", "https://bot:" + canary + "@git.example.com/org/apps.git"})
	err = root.Execute()
	if err == nil || !strings.Contains(err.Error(), "--apps-repo") || strings.Contains(err.Error(), canary) {
		t.Errorf("hub with credentials in --apps-repo: %v, want refused without them", err)
	}
}

// TestHistoryShowsRetention: `flotilla history` says what history the hub keeps.
func TestHistoryShowsRetention(t *testing.T) {
	dir := t.TempDir()
	cli, _ := startHub(t, "--data-dir", filepath.Join(dir, "data"), "--apps-dir", dir, "--history-keep", "7", "--history-max-age", "720h")
	var out string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		var err error
		out, err = cli("history", "api")
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("flotilla history: %v\n%s", err, out)
	}
	if want := "history kept by the hub: the newest 7 entries per app and cluster, none older than 30d"; !strings.Contains(out, want) {
		t.Errorf("flotilla history prints %q, want it to say %q", out, want)
	}
}
