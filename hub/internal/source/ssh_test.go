package source

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshGitServer is an SSH server on loopback that lets one public key in and runs
// `git-upload-pack` on the repositories under root for "exec" requests.
type sshGitServer struct {
	t     *testing.T
	root  string
	addr  string
	cfg   *ssh.ServerConfig
	conns atomic.Int32 // connections accepted

	mu   sync.Mutex
	open []net.Conn
	wg   sync.WaitGroup
}

var uploadPackCommand = regexp.MustCompile(`^git-upload-pack '([^']+)'$`)

func newSSHGitServer(t *testing.T, root string, authorized ssh.PublicKey, hostKeys ...ssh.Signer) *sshGitServer {
	t.Helper()
	s := &sshGitServer{t: t, root: root}
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), authorized.Marshal()) {
				return &ssh.Permissions{}, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	for _, k := range hostKeys {
		s.cfg.AddHostKey(k)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			s.conns.Add(1)
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *sshGitServer) serve(c net.Conn) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		return // a refused client: the test looks at what the client saw
	}
	s.wg.Go(func() { ssh.DiscardRequests(reqs) })
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, requests, err := nc.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() { s.session(ch, requests) })
	}
}

// session runs the one exec request of a session.
func (s *sshGitServer) session(ch ssh.Channel, requests <-chan *ssh.Request) {
	defer ch.Close()
	for req := range requests {
		if req.Type != "exec" {
			_ = req.Reply(false, nil) // env, pty-req, shell: not offered
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			_ = req.Reply(false, nil)
			return
		}
		m := uploadPackCommand.FindStringSubmatch(payload.Command)
		if m == nil {
			_ = req.Reply(false, nil)
			return
		}
		_ = req.Reply(true, nil)
		status := s.uploadPack(ch, filepath.Join(s.root, filepath.Clean("/"+m[1])))
		_, _ = ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

// uploadPack runs git-upload-pack on dir with the channel as its stdin and stdout.
func (s *sshGitServer) uploadPack(ch ssh.Channel, dir string) uint32 {
	cmd := exec.Command("git-upload-pack", dir)
	cmd.Env = []string{"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "PATH=/usr/bin:/bin"}
	cmd.Stdout = ch
	cmd.Stderr = ch.Stderr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 1
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(ch.Stderr(), err)
		return 1
	}
	// Not waited for: it ends when the channel closes, after the process.
	go func() {
		_, _ = io.Copy(stdin, ch)
		stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return uint32(exit.ExitCode())
		}
		return 1
	}
	return 0
}

func ed25519Signer(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

func ecdsaSigner(t *testing.T) ssh.Signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func knownHostsLine(addr string, keys ...ssh.Signer) string {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(knownhosts.Line([]string{knownhosts.Normalize(addr)}, k.PublicKey()) + "\n")
	}
	return b.String()
}

func TestFetchSSH(t *testing.T) {
	root := t.TempDir()
	repo := &gitRepo{t: t, dir: filepath.Join(root, "org", "repo")}
	newGitRepoAt(t, repo.dir)
	repo.write(map[string]string{"app.yaml": "over ssh\n"})
	want := repo.commit("one")
	repo.git("tag", "v1")

	clientKey, clientPEM := ed25519Signer(t)
	_, otherPEM := ed25519Signer(t)
	// Two host keys: the client prefers ECDSA, known_hosts pins only the Ed25519 one, so the
	// fetch only passes if it asks for the pinned algorithm.
	hostEd25519, _ := ed25519Signer(t)
	hostECDSA := ecdsaSigner(t)
	strangerHost, _ := ed25519Signer(t)
	srv := newSSHGitServer(t, root, clientKey.PublicKey(), hostECDSA, hostEd25519)
	repoURL := "ssh://git@" + srv.addr + "/org/repo"

	// fetcher loads credentials for the server with the given key and known_hosts.
	fetcher := func(t *testing.T, keyPEM []byte, knownHosts string) *Fetcher {
		t.Helper()
		dir := t.TempDir()
		writeFile(t, dir, "id_ed25519", string(keyPEM))
		writeFile(t, dir, "known_hosts", knownHosts)
		creds := credentialsFor(t, dir, `
repositories:
- urlPrefix: ssh://git@`+srv.addr+`/org/
  sshPrivateKeyFile: id_ed25519
  knownHostsFile: known_hosts
`)
		return newFetcher(t, Options{Credentials: creds})
	}
	ctx := context.Background()

	t.Run("pinned host key", func(t *testing.T) {
		f := fetcher(t, clientPEM, "# pinned\n"+knownHostsLine(srv.addr, hostEd25519))
		for _, rev := range []string{"HEAD", "main", "v1", want} {
			s, err := f.Fetch(ctx, repoURL, rev)
			if err != nil {
				t.Fatalf("Fetch(%q): %v", rev, err)
			}
			if s.Commit != want || s.RepoURL != "ssh://"+srv.addr+"/org/repo" {
				t.Errorf("Fetch(%q) = %s from %s, want %s", rev, s.Commit, s.RepoURL, want)
			}
		}
		s, _ := f.Fetch(ctx, repoURL, "main")
		if got := readFile(t, s, "/app.yaml"); got != "over ssh\n" {
			t.Errorf("app.yaml = %q", got)
		}
	})

	t.Run("changed host key", func(t *testing.T) {
		f := fetcher(t, clientPEM, knownHostsLine(srv.addr, strangerHost))
		_, err := f.Fetch(ctx, repoURL, "main")
		if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "changed") {
			t.Errorf("error = %v, want a changed host key", err)
		}
	})

	t.Run("unknown host", func(t *testing.T) {
		f := fetcher(t, clientPEM, knownHostsLine("git.example.com:22", hostEd25519))
		_, err := f.Fetch(ctx, repoURL, "main")
		if !errors.Is(err, ErrHostKey) || !strings.Contains(err.Error(), "not in known_hosts") {
			t.Errorf("error = %v, want an unknown host", err)
		}
	})

	t.Run("key not authorized", func(t *testing.T) {
		f := fetcher(t, otherPEM, knownHostsLine(srv.addr, hostEd25519))
		_, err := f.Fetch(ctx, repoURL, "main")
		if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
			t.Fatalf("error = %v, want an authentication failure", err)
		}
		body := strings.Join(strings.Split(string(otherPEM), "\n")[1:3], "")
		if strings.Contains(err.Error(), body) || strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("error %q holds the key", err)
		}
	})

	t.Run("no credentials", func(t *testing.T) {
		before := srv.conns.Load()
		for _, tc := range []struct {
			name  string
			creds *Credentials
		}{
			{"none at all", nil},
			{"none for the URL", credentialsFor(t, t.TempDir(), "repositories: []\n")},
		} {
			f := newFetcher(t, Options{Credentials: tc.creds})
			_, err := f.Fetch(ctx, repoURL, "main")
			if !errors.Is(err, ErrNoCredentials) {
				t.Errorf("%s: error = %v, want ErrNoCredentials", tc.name, err)
			}
		}
		if n := srv.conns.Load(); n != before {
			t.Errorf("fetches without credentials connected to the server %d times, want none", n-before)
		}
	})

	t.Run("missing known_hosts", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, dir, "id_ed25519", string(clientPEM))
		_, err := LoadCredentials(writeFile(t, dir, "credentials.yaml", `
repositories:
- urlPrefix: ssh://git@`+srv.addr+`/
  sshPrivateKeyFile: id_ed25519
  knownHostsFile: known_hosts
`))
		if err == nil || !strings.Contains(err.Error(), "repositories[0]") || !strings.Contains(err.Error(), filepath.Join(dir, "known_hosts")) {
			t.Errorf("error = %v, want one naming the entry and the missing file", err)
		}
	})
}
