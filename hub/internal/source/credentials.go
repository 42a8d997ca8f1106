package source

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh/knownhosts"
	"sigs.k8s.io/yaml"
)

// ErrNoCredentials is wrapped by the errors of fetches that need credentials and have none:
// ssh repositories are only fetched with a configured key and known_hosts.
var ErrNoCredentials = errors.New("no credentials")

// Credentials are the entries of a credentials file: per URL prefix, an HTTP password or
// token, a bearer token, or an SSH private key with the host keys it pins. The same entries
// serve Git repositories and, through RepoAuth, Helm repositories and OCI registries. The files holding secrets are
// read at each fetch, so a rotated Secret mounted as files is picked up; their content
// never appears in errors. A nil *Credentials has no entries.
type Credentials struct {
	file    string
	entries []credential
}

// credentialsFile is the YAML of a credentials file.
type credentialsFile struct {
	Repositories []credentialSpec `json:"repositories"`
}

type credentialSpec struct {
	URLPrefix         string `json:"urlPrefix"`
	Username          string `json:"username,omitempty"`
	PasswordFile      string `json:"passwordFile,omitempty"`
	BearerTokenFile   string `json:"bearerTokenFile,omitempty"`
	SSHPrivateKeyFile string `json:"sshPrivateKeyFile,omitempty"`
	KnownHostsFile    string `json:"knownHostsFile,omitempty"`
}

// credential is one checked entry; its file paths are absolute.
type credential struct {
	index          int
	prefix         endpoint
	username       string
	passwordFile   string // http, https and oci
	tokenFile      string // http, https and oci: a bearer token
	keyFile        string // ssh
	knownHostsFile string // ssh
}

// name is how messages refer to the entry.
func (c *credential) name() string { return fmt.Sprintf("repositories[%d]", c.index) }

// endpoint is a repository URL, or a prefix of one, taken apart for matching: scp-like
// "user@host:path" is ssh://user@host/path, scheme and host are lower case, default ports
// are dropped.
type endpoint struct {
	scheme string
	user   string
	host   string // with the port unless it is the scheme's default
	path   string
}

var defaultPorts = map[string]string{"http": "80", "https": "443", "ssh": "22", "git": "9418", "oci": "443"}

// parseEndpoint takes apart a URL or an scp-like address; ok is false for anything else
// (local paths). hasPassword reports userinfo with a password.
func parseEndpoint(raw string) (e endpoint, hasPassword, ok bool) {
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return endpoint{}, false, false
		}
		e = endpoint{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), path: u.Path}
		if port := u.Port(); port != "" && port != defaultPorts[e.scheme] {
			e.host = net.JoinHostPort(e.host, port)
		} else if strings.Contains(e.host, ":") {
			e.host = "[" + e.host + "]"
		}
		if u.User != nil {
			e.user = u.User.Username()
			_, hasPassword = u.User.Password()
		}
		return e, hasPassword, true
	}
	if helperSyntax.MatchString(raw) || !scpSyntax.MatchString(raw) {
		return endpoint{}, false, false
	}
	host, path, _ := strings.Cut(raw, ":")
	e = endpoint{scheme: "ssh"}
	if user, h, found := strings.Cut(host, "@"); found {
		e.user, host = user, h
	}
	e.host = strings.ToLower(host)
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	e.path = path
	return e, false, true
}

// matches reports whether the prefix p covers e: same scheme and host, the same user if
// both name one, and a path that starts with p's.
func (p endpoint) matches(e endpoint) bool {
	return p.scheme == e.scheme && p.host == e.host &&
		(p.user == "" || e.user == "" || p.user == e.user) &&
		strings.HasPrefix(e.path, p.path)
}

// specificity orders the prefixes that match one URL: the longest path wins, then the one
// that names the user.
func (p endpoint) specificity() int {
	n := 2 * len(p.path)
	if p.user != "" {
		n++
	}
	return n
}

func (p endpoint) String() string {
	s := p.scheme + "://"
	if p.user != "" {
		s += p.user + "@"
	}
	return s + p.host + p.path
}

// LoadCredentials reads a credentials file (YAML):
//
//	repositories:
//	- urlPrefix: https://github.com/org/
//	  username: x-access-token          # optional, default "git"
//	  passwordFile: /etc/flotilla/github-token
//	- urlPrefix: ssh://git@git.example.com/   # or git@git.example.com:
//	  sshPrivateKeyFile: /etc/flotilla/deploy-key
//	  knownHostsFile: /etc/flotilla/known_hosts
//	- urlPrefix: https://charts.example.com/  # a Helm repository
//	  bearerTokenFile: /etc/flotilla/charts-token
//	- urlPrefix: oci://registry.example.com/charts   # an OCI registry
//	  username: robot
//	  passwordFile: /etc/flotilla/registry-password
//
// Each entry has a urlPrefix (https, http, ssh, scp-like or oci) and exactly one of
// passwordFile (https, http and oci), bearerTokenFile (https, http and oci) or
// sshPrivateKeyFile (ssh, which also needs knownHostsFile). The entry
// whose prefix matches the most of a repository URL applies to it; the host must match
// exactly. Relative file paths are relative to the credentials file's directory. The files
// must exist; the secrets in them are read at each fetch, known_hosts is checked now and
// reread at each fetch.
func LoadCredentials(path string) (*Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	c, err := parseCredentials(data, path)
	if err != nil {
		return nil, err
	}
	for i := range c.entries {
		if err := c.entries[i].checkFiles(); err != nil {
			return nil, fmt.Errorf("credentials %s: %s: %w", path, c.entries[i].name(), err)
		}
	}
	return c, nil
}

// parseCredentials checks the YAML of the credentials file named file, without looking at
// the files it names.
func parseCredentials(data []byte, file string) (*Credentials, error) {
	var f credentialsFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("credentials %s: %w", file, err)
	}
	dir := filepath.Dir(file)
	c := &Credentials{file: file}
	for i, spec := range f.Repositories {
		e, err := spec.check(i, dir)
		if err != nil {
			return nil, fmt.Errorf("credentials %s: repositories[%d]: %w", file, i, err)
		}
		for _, other := range c.entries {
			if other.prefix == e.prefix {
				return nil, fmt.Errorf("credentials %s: repositories[%d]: urlPrefix %q is also the urlPrefix of %s", file, i, e.prefix, other.name())
			}
		}
		c.entries = append(c.entries, e)
	}
	return c, nil
}

func (s credentialSpec) check(index int, dir string) (credential, error) {
	if strings.TrimSpace(s.URLPrefix) == "" {
		return credential{}, fmt.Errorf("urlPrefix is required")
	}
	prefix, hasPassword, ok := parseEndpoint(strings.TrimSpace(s.URLPrefix))
	switch {
	case !ok:
		return credential{}, fmt.Errorf("urlPrefix %q is not an https, http, ssh or oci URL", redactText(s.URLPrefix))
	case hasPassword:
		return credential{}, fmt.Errorf("urlPrefix must not hold a password: put it in passwordFile")
	case !slices.Contains([]string{"https", "http", "ssh", "oci"}, prefix.scheme):
		return credential{}, fmt.Errorf("urlPrefix %q: credentials are for https, http, ssh and oci URLs, not %s", prefix, prefix.scheme)
	}
	c := credential{
		index:          index,
		prefix:         prefix,
		username:       s.Username,
		passwordFile:   abs(dir, s.PasswordFile),
		tokenFile:      abs(dir, s.BearerTokenFile),
		keyFile:        abs(dir, s.SSHPrivateKeyFile),
		knownHostsFile: abs(dir, s.KnownHostsFile),
	}
	secrets := 0
	for _, f := range []string{c.passwordFile, c.tokenFile, c.keyFile} {
		if f != "" {
			secrets++
		}
	}
	switch {
	case secrets > 1:
		return credential{}, fmt.Errorf("passwordFile, bearerTokenFile and sshPrivateKeyFile are exclusive: give one")
	case secrets == 0:
		return credential{}, fmt.Errorf("one of passwordFile, bearerTokenFile or sshPrivateKeyFile is required")
	case c.passwordFile != "" && prefix.scheme == "ssh":
		return credential{}, fmt.Errorf("passwordFile is for https, http and oci, urlPrefix %q is ssh: use sshPrivateKeyFile", prefix)
	case c.tokenFile != "" && prefix.scheme == "ssh":
		return credential{}, fmt.Errorf("bearerTokenFile is for https, http and oci, urlPrefix %q is ssh: use sshPrivateKeyFile", prefix)
	case c.tokenFile != "" && c.username != "":
		return credential{}, fmt.Errorf("username goes with passwordFile, not bearerTokenFile")
	case c.keyFile != "" && prefix.scheme != "ssh":
		return credential{}, fmt.Errorf("sshPrivateKeyFile is for ssh, urlPrefix %q is %s: use passwordFile or bearerTokenFile", prefix, prefix.scheme)
	case c.keyFile != "" && c.knownHostsFile == "":
		return credential{}, fmt.Errorf("knownHostsFile is required with sshPrivateKeyFile: host keys are pinned, never trusted on first use")
	case c.knownHostsFile != "" && c.keyFile == "":
		return credential{}, fmt.Errorf("knownHostsFile is only for ssh")
	}
	return c, nil
}

func abs(dir, p string) string {
	p = strings.TrimSpace(p)
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// checkFiles checks that the entry's files are there and known_hosts parses.
func (c *credential) checkFiles() error {
	for _, p := range []string{c.passwordFile, c.tokenFile, c.keyFile, c.knownHostsFile} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
	}
	if c.knownHostsFile != "" {
		if _, err := knownhosts.New(c.knownHostsFile); err != nil {
			return err
		}
	}
	return nil
}

// lookup finds the entry for a repository URL: among those whose prefix matches, the most
// specific, the first of equals. It returns nil for none.
func (c *Credentials) lookup(rawURL string) *credential {
	if c == nil {
		return nil
	}
	e, _, ok := parseEndpoint(rawURL)
	if !ok {
		return nil
	}
	var best *credential
	for i := range c.entries {
		cand := &c.entries[i]
		if cand.prefix.matches(e) && (best == nil || cand.prefix.specificity() > best.prefix.specificity()) {
			best = cand
		}
	}
	return best
}
