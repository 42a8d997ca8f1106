package localfleet

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

// Repo is a Git working repository the tests commit to.
type Repo struct {
	Dir string
}

// NewRepo initialises a repository at dir with files (path → content) as its first commit on
// branch main.
func NewRepo(dir string, files map[string]string) (*Repo, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &Repo{Dir: dir}
	if err := r.git("init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	if _, err := r.Commit("initial layout", files); err != nil {
		return nil, err
	}
	return r, nil
}

// Commit writes files (an empty content deletes the file) and commits them; it returns the
// commit SHA.
func (r *Repo) Commit(message string, files map[string]string) (string, error) {
	for path, content := range files {
		full := filepath.Join(r.Dir, filepath.FromSlash(path))
		if content == "" {
			if err := os.Remove(full); err != nil && !os.IsNotExist(err) {
				return "", err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	if err := r.git("add", "-A"); err != nil {
		return "", err
	}
	if err := r.git("commit", "-q", "--allow-empty", "-m", message); err != nil {
		return "", err
	}
	return r.Head()
}

// Head returns the SHA of HEAD.
func (r *Repo) Head() (string, error) {
	out, err := exec.Command("git", "-C", r.Dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return "", fmt.Errorf("git rev-parse: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (r *Repo) git(args ...string) error {
	cmd := exec.Command("git", append([]string{"-C", r.Dir}, args...)...)
	cmd.Env = append(os.Environ(),
		"GIT_AUTHOR_NAME=Flotilla Demo", "GIT_AUTHOR_EMAIL=demo@flotilla.dev",
		"GIT_COMMITTER_NAME=Flotilla Demo", "GIT_COMMITTER_EMAIL=demo@flotilla.dev",
		"GIT_CONFIG_NOSYSTEM=1", "HOME="+r.Dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// GitDaemon serves the repositories under a directory over the git protocol on loopback,
// pushes allowed (the hub pushes promotions).
type GitDaemon struct {
	Base string
	Port int
	proc *localkube.Process
}

// ServeGit starts `git daemon` for every repository under base.
func ServeGit(ctx context.Context, base, logDir string) (*GitDaemon, error) {
	ports, err := localkube.FreePorts(1)
	if err != nil {
		return nil, err
	}
	d := &GitDaemon{Base: base, Port: ports[0]}
	return d, d.Start(ctx, logDir)
}

// Start (re)starts the daemon on its port and waits until it accepts connections.
func (d *GitDaemon) Start(ctx context.Context, logDir string) error {
	p, err := localkube.StartProcess("git-daemon", "git", []string{"daemon", "--export-all", "--enable=receive-pack", "--reuseaddr",
		"--base-path=" + d.Base, "--listen=127.0.0.1", "--port=" + strconv.Itoa(d.Port), d.Base}, nil, logDir)
	if err != nil {
		return err
	}
	d.proc = p
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		if done, err := p.Exited(); done {
			return false, fmt.Errorf("git daemon exited: %v: %s", err, p.Tail(2048))
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(d.Port)), time.Second)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
}

// Stop stops the daemon (a "Git server down" for tests).
func (d *GitDaemon) Stop() {
	if d.proc != nil {
		d.proc.Stop(5 * time.Second)
	}
}

// URL is the git:// URL of a repository directory under the base.
func (d *GitDaemon) URL(repoDir string) string {
	rel, _ := filepath.Rel(d.Base, repoDir)
	return fmt.Sprintf("git://127.0.0.1:%d/%s", d.Port, filepath.ToSlash(rel))
}

// ServeDemo creates the demo manifests repository (the api image at apiTag) in dir/git and
// serves dir/git over git:// (logs in dir/logs). Stop the daemon when done.
func ServeDemo(ctx context.Context, dir, apiTag string) (*Repo, *GitDaemon, error) {
	repo, err := NewRepo(filepath.Join(dir, "git", "manifests"), DemoManifests(apiTag))
	if err != nil {
		return nil, nil, err
	}
	git, err := ServeGit(ctx, filepath.Join(dir, "git"), filepath.Join(dir, "logs"))
	if err != nil {
		return nil, nil, err
	}
	return repo, git, nil
}
