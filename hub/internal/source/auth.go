package source

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// ErrHostKey is wrapped by the errors of ssh fetches from a host whose key known_hosts does
// not pin: an unknown host, a changed key or a revoked one.
var ErrHostKey = errors.New("host key not trusted")

// defaultUsername is the HTTP user of entries without one (hosts that take a token as the
// password accept any user) and the ssh user of URLs and entries without one.
const defaultUsername = "git"

// maxSecretSize bounds what is read from a secret file.
const maxSecretSize = 1 << 20

// auth returns the go-git auth for the remote r, its secrets read now from their files, and
// r with those secrets added to what its errors scrub. An ssh URL without an ssh entry is an
// error (wrapping ErrNoCredentials): host keys are only ever checked against a configured
// known_hosts. Other URLs without an entry, and http URLs that carry their own password,
// fetch without auth from the file. deadline bounds the ssh connections.
func (c *Credentials) auth(r remote, deadline time.Time) (transport.AuthMethod, remote, error) {
	e, hasPassword, ok := parseEndpoint(r.url)
	if !ok {
		return nil, r, nil // a local path
	}
	cred := c.lookup(r.url)
	var auth transport.AuthMethod
	var err error
	switch e.scheme {
	case "ssh":
		if cred == nil {
			return nil, r, fmt.Errorf("ssh repositories need an entry with sshPrivateKeyFile and knownHostsFile in the credentials file: %w", ErrNoCredentials)
		}
		auth, r, err = cred.sshAuth(r, e, deadline)
	case "https", "http":
		if cred == nil || hasPassword {
			return nil, r, nil
		}
		if cred.tokenFile != "" {
			auth, r, err = cred.tokenAuth(r)
		} else {
			auth, r, err = cred.basicAuth(r)
		}
	default:
		return nil, r, nil
	}
	if err != nil {
		return nil, r, fmt.Errorf("credentials %s: %s: %w", c.file, cred.name(), err)
	}
	return auth, r, nil
}

func (c *credential) basicAuth(r remote) (transport.AuthMethod, remote, error) {
	user, password, err := c.password()
	if err != nil {
		return nil, r, err
	}
	r = r.withSecrets(password, url.QueryEscape(password), url.PathEscape(password),
		base64.StdEncoding.EncodeToString([]byte(user+":"+password)))
	return &githttp.BasicAuth{Username: user, Password: password}, r, nil
}

func (c *credential) tokenAuth(r remote) (transport.AuthMethod, remote, error) {
	token, err := c.token()
	if err != nil {
		return nil, r, err
	}
	r = r.withSecrets(token, url.QueryEscape(token))
	return &githttp.TokenAuth{Token: token}, r, nil
}

// password reads the entry's passwordFile; the user is the entry's or defaultUsername.
func (c *credential) password() (user, password string, err error) {
	password, err = readSecretLine(c.passwordFile, "passwordFile")
	if err != nil {
		return "", "", err
	}
	return cmp.Or(c.username, defaultUsername), password, nil
}

// token reads the entry's bearerTokenFile.
func (c *credential) token() (string, error) {
	return readSecretLine(c.tokenFile, "bearerTokenFile")
}

// readSecretLine reads a secret file holding one line, the field that names it for errors;
// an empty one is an error.
func readSecretLine(path, field string) (string, error) {
	secret, err := readSecret(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", field, err)
	}
	s := strings.TrimRight(string(secret), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s %s is empty", field, path)
	}
	return s, nil
}

func (c *credential) sshAuth(r remote, e endpoint, deadline time.Time) (transport.AuthMethod, remote, error) {
	key, err := readSecret(c.keyFile)
	if err != nil {
		return nil, r, fmt.Errorf("sshPrivateKeyFile: %w", err)
	}
	r = r.withSecrets(strings.TrimSpace(string(key)))
	user := e.user
	if user == "" {
		user = c.username
	}
	if user == "" {
		user = defaultUsername
	}
	keys, err := gitssh.NewPublicKeys(user, key, "")
	if err != nil {
		return nil, r, fmt.Errorf("sshPrivateKeyFile %s: %w", c.keyFile, err)
	}
	check, err := knownhosts.New(c.knownHostsFile)
	if err != nil {
		return nil, r, fmt.Errorf("knownHostsFile: %w", err)
	}
	ep, err := transport.NewEndpoint(r.url)
	if err != nil {
		return nil, r, err
	}
	addr := net.JoinHostPort(ep.Host, strconv.Itoa(cmp.Or(ep.Port, gitssh.DefaultPort)))
	keys.HostKeyCallback = pinned(check, c.knownHostsFile)
	keys.HostKeyAlgorithms = hostKeyAlgorithms(check, addr)
	return &sshKeyAuth{PublicKeys: keys, deadline: deadline}, r, nil
}

// sshKeyAuth is public key auth whose connection attempts end by the fetch's deadline:
// go-git dials ssh without the fetch's context.
type sshKeyAuth struct {
	*gitssh.PublicKeys
	deadline time.Time
}

var _ gitssh.AuthMethod = (*sshKeyAuth)(nil)

func (a *sshKeyAuth) ClientConfig() (*ssh.ClientConfig, error) {
	cfg, err := a.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	if !a.deadline.IsZero() {
		if cfg.Timeout = time.Until(a.deadline); cfg.Timeout <= 0 {
			return nil, context.DeadlineExceeded
		}
	}
	return cfg, nil
}

// pinned wraps a known_hosts check so that its failures say what happened and wrap
// ErrHostKey.
func pinned(check ssh.HostKeyCallback, file string) ssh.HostKeyCallback {
	return func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := check(host, remote, key)
		if err == nil {
			return nil
		}
		got := key.Type() + " " + ssh.FingerprintSHA256(key)
		var keyErr *knownhosts.KeyError
		var revoked *knownhosts.RevokedError
		switch {
		case errors.As(err, &keyErr) && len(keyErr.Want) == 0:
			return fmt.Errorf("host %s is not in known_hosts %s (it offered %s): %w", knownhosts.Normalize(host), file, got, ErrHostKey)
		case errors.As(err, &keyErr):
			return fmt.Errorf("host key of %s changed: it offered %s, known_hosts %s pins another (line %d): %w",
				knownhosts.Normalize(host), got, file, keyErr.Want[0].Line, ErrHostKey)
		case errors.As(err, &revoked):
			return fmt.Errorf("host key of %s (%s) is revoked in known_hosts %s: %w", knownhosts.Normalize(host), got, file, ErrHostKey)
		default:
			return fmt.Errorf("host key of %s (%s): %w: %w", knownhosts.Normalize(host), got, ErrHostKey, err)
		}
	}
}

// hostKeyAlgorithms lists the algorithms of the keys known_hosts pins for addr, so that a
// server with several host keys offers one that can be checked rather than the one it
// prefers. It returns nil (the defaults) for a host known_hosts does not name, which then
// fails the check.
func hostKeyAlgorithms(check ssh.HostKeyCallback, addr string) []string {
	var keyErr *knownhosts.KeyError
	if err := check(addr, &net.TCPAddr{IP: net.IPv4zero}, probeKey{}); !errors.As(err, &keyErr) {
		return nil
	}
	var algos []string
	add := func(a ...string) {
		for _, s := range a {
			if !slices.Contains(algos, s) {
				algos = append(algos, s)
			}
		}
	}
	for _, k := range keyErr.Want {
		if t := k.Key.Type(); t == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(t)
		}
	}
	return algos
}

// probeKey matches no known_hosts line: checking it lists the keys pinned for a host.
type probeKey struct{}

func (probeKey) Type() string                        { return "flotilla-probe" }
func (probeKey) Marshal() []byte                     { return []byte("flotilla-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// readSecret reads a file holding a secret. Its errors name the file, never the content.
func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxSecretSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSecretSize)
	}
	return data, nil
}
