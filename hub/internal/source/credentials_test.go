package source

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

func TestParseCredentials(t *testing.T) {
	const file = "/etc/flotilla/credentials.yaml"
	tests := []struct {
		name, yaml string
		wantErr    string // "" for none
		notInErr   string
	}{
		{name: "empty", yaml: ""},
		{name: "no entries", yaml: "repositories: []"},
		{name: "valid", yaml: `
repositories:
- urlPrefix: https://github.com/org/
  username: x-access-token
  passwordFile: /etc/flotilla/github-token
- urlPrefix: http://git.internal:8080/
  passwordFile: token
- urlPrefix: ssh://git@git.example.com/
  sshPrivateKeyFile: /etc/flotilla/deploy-key
  knownHostsFile: /etc/flotilla/known_hosts
- urlPrefix: git@github.com:org/
  sshPrivateKeyFile: deploy-key
  knownHostsFile: known_hosts
- urlPrefix: https://charts.example.com/
  bearerTokenFile: charts-token
- urlPrefix: oci://registry.example.com/charts
  username: robot
  passwordFile: registry-password
- urlPrefix: oci://ghcr.io/org/
  bearerTokenFile: ghcr-token
`},
		{name: "no urlPrefix", yaml: `
repositories:
- urlPrefix: https://github.com/
  passwordFile: token
- passwordFile: token
`, wantErr: "credentials /etc/flotilla/credentials.yaml: repositories[1]: urlPrefix is required"},
		{name: "both secrets", yaml: `
repositories:
- urlPrefix: https://github.com/
  passwordFile: token
  sshPrivateKeyFile: key
`, wantErr: "repositories[0]: passwordFile, bearerTokenFile and sshPrivateKeyFile are exclusive"},
		{name: "password and token", yaml: `
repositories:
- urlPrefix: https://charts.example.com/
  passwordFile: password
  bearerTokenFile: token
`, wantErr: "repositories[0]: passwordFile, bearerTokenFile and sshPrivateKeyFile are exclusive"},
		{name: "token for ssh", yaml: `
repositories:
- urlPrefix: ssh://git@git.example.com/
  bearerTokenFile: token
`, wantErr: `repositories[0]: bearerTokenFile is for https, http and oci, urlPrefix "ssh://git@git.example.com/" is ssh`},
		{name: "username with token", yaml: `
repositories:
- urlPrefix: oci://registry.example.com/
  username: robot
  bearerTokenFile: token
`, wantErr: "repositories[0]: username goes with passwordFile, not bearerTokenFile"},
		{name: "key for oci", yaml: `
repositories:
- urlPrefix: oci://registry.example.com/
  sshPrivateKeyFile: key
  knownHostsFile: known_hosts
`, wantErr: `repositories[0]: sshPrivateKeyFile is for ssh, urlPrefix "oci://registry.example.com/" is oci`},
		{name: "no secret", yaml: `
repositories:
- urlPrefix: https://github.com/
  username: bot
`, wantErr: "repositories[0]: one of passwordFile, bearerTokenFile or sshPrivateKeyFile is required"},
		{name: "ssh without known_hosts", yaml: `
repositories:
- urlPrefix: ssh://git@git.example.com/
  sshPrivateKeyFile: key
`, wantErr: "repositories[0]: knownHostsFile is required with sshPrivateKeyFile"},
		{name: "scp-like without known_hosts", yaml: `
repositories:
- urlPrefix: git@github.com:org/
  sshPrivateKeyFile: key
`, wantErr: "repositories[0]: knownHostsFile is required"},
		{name: "password for ssh", yaml: `
repositories:
- urlPrefix: git@github.com:org/
  passwordFile: token
`, wantErr: `repositories[0]: passwordFile is for https, http and oci, urlPrefix "ssh://git@github.com/org/" is ssh`},
		{name: "key for https", yaml: `
repositories:
- urlPrefix: https://github.com/
  sshPrivateKeyFile: key
  knownHostsFile: known_hosts
`, wantErr: "repositories[0]: sshPrivateKeyFile is for ssh"},
		{name: "known_hosts for https", yaml: `
repositories:
- urlPrefix: https://github.com/
  passwordFile: token
  knownHostsFile: known_hosts
`, wantErr: "repositories[0]: knownHostsFile is only for ssh"},
		{name: "git transport", yaml: `
repositories:
- urlPrefix: git://github.com/
  passwordFile: token
`, wantErr: "credentials are for https, http, ssh and oci URLs, not git"},
		{name: "not a URL", yaml: `
repositories:
- urlPrefix: github.com/org
  passwordFile: token
`, wantErr: `repositories[0]: urlPrefix "github.com/org" is not an https, http, ssh or oci URL`},
		{name: "password in urlPrefix", yaml: `
repositories:
- urlPrefix: https://bot:hunter2@github.com/
  passwordFile: token
`, wantErr: "repositories[0]: urlPrefix must not hold a password", notInErr: "hunter2"},
		{name: "inline secret", yaml: `
repositories:
- urlPrefix: https://github.com/
  password: hunter2
`, wantErr: `credentials /etc/flotilla/credentials.yaml: error unmarshaling JSON: while decoding JSON: json: unknown field "password"`, notInErr: "hunter2"},
		{name: "same prefix twice", yaml: `
repositories:
- urlPrefix: ssh://git@github.com/org/
  sshPrivateKeyFile: a
  knownHostsFile: known_hosts
- urlPrefix: git@GitHub.com:org/
  sshPrivateKeyFile: b
  knownHostsFile: known_hosts
`, wantErr: `repositories[1]: urlPrefix "ssh://git@github.com/org/" is also the urlPrefix of repositories[0]`},
		{name: "not YAML", yaml: "repositories: [", wantErr: "credentials /etc/flotilla/credentials.yaml: error converting YAML to JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseCredentials([]byte(tt.yaml), file)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c == nil {
					t.Fatal("nil credentials")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
			if tt.notInErr != "" && strings.Contains(err.Error(), tt.notInErr) {
				t.Errorf("error %q holds %q", err, tt.notInErr)
			}
		})
	}
}

func TestParseCredentialsRelativePaths(t *testing.T) {
	c, err := parseCredentials([]byte(`
repositories:
- urlPrefix: git@github.com:org/
  sshPrivateKeyFile: keys/deploy
  knownHostsFile: /etc/ssh/known_hosts
`), "/etc/flotilla/credentials.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if e := c.entries[0]; e.keyFile != "/etc/flotilla/keys/deploy" || e.knownHostsFile != "/etc/ssh/known_hosts" {
		t.Errorf("files = %q, %q", e.keyFile, e.knownHostsFile)
	}
}

func TestCredentialsLookup(t *testing.T) {
	c, err := parseCredentials([]byte(`
repositories:
- urlPrefix: https://github.com/
  passwordFile: any
- urlPrefix: https://github.com/org/
  passwordFile: org
- urlPrefix: https://github.com/org/team
  passwordFile: team
- urlPrefix: ssh://git@git.example.com/
  sshPrivateKeyFile: git
  knownHostsFile: known_hosts
- urlPrefix: git@git.example.com:special/
  sshPrivateKeyFile: special
  knownHostsFile: known_hosts
- urlPrefix: http://insecure.example.com:8080/
  passwordFile: insecure
- urlPrefix: ssh://alice@git.example.com/
  sshPrivateKeyFile: alice
  knownHostsFile: known_hosts
- urlPrefix: oci://registry.example.com/charts
  bearerTokenFile: registry
- urlPrefix: https://registry.example.com/
  passwordFile: registry-https
`), "/c/credentials.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url, want string // the entry's secret file, "" for none
	}{
		{"https://github.com/org/repo.git", "org"},
		{"https://github.com/other/repo", "any"},
		{"https://github.com/org/team-infra/repo", "team"}, // a prefix is a prefix of the string
		{"https://github.com/org", "any"},
		{"https://bot:pw@github.com/org/repo", "org"},
		{"HTTPS://GitHub.com:443/org/repo", "org"},
		{"http://github.com/org/repo", ""},                   // another scheme: never downgraded to http
		{"https://github.com.evil.example/org/repo", ""},     // the host must match exactly
		{"https://github.com:8443/org/repo", ""},             // and so must the port
		{"git@git.example.com:org/repo.git", "git"},          // scp-like
		{"ssh://git@git.example.com:22/org/repo.git", "git"}, // default port
		{"ssh://git@git.example.com/special/repo", "special"},
		{"git@git.example.com:special/repo", "special"},
		{"ssh://alice@git.example.com/org/repo", "alice"}, // the user must match when both name one
		{"ssh://git.example.com/org/repo", "git"},         // equals: the first
		{"ssh://bob@git.example.com/org/repo", ""},
		{"http://insecure.example.com:8080/repo", "insecure"},
		{"http://insecure.example.com/repo", ""},
		{"git://github.com/org/repo", ""},
		{"/srv/git/org/repo", ""},
		{"file:///srv/git/repo", ""},
		{"oci://registry.example.com/charts/cert-manager", "registry"},
		{"oci://REGISTRY.example.com:443/charts", "registry"},
		{"oci://registry.example.com/other", ""}, // an https entry is not an oci one
		{"https://registry.example.com/charts/index.yaml", "registry-https"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got := ""
			if e := c.lookup(tt.url); e != nil {
				got = filepath.Base(e.passwordFile + e.tokenFile + e.keyFile)
			}
			if got != tt.want {
				t.Errorf("lookup(%q) = %q, want %q", tt.url, got, tt.want)
			}
		})
	}
	if (*Credentials)(nil).lookup("https://github.com/org/repo") != nil {
		t.Error("nil credentials matched")
	}
}

func TestLoadCredentialsChecksFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "token", "t")
	writeFile(t, dir, "key", "not read until a fetch")
	writeFile(t, dir, "known_hosts", "git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n")
	writeFile(t, dir, "bad_known_hosts", "git.example.com ssh-ed25519 !!!\n")
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"present", "- urlPrefix: https://h/\n  passwordFile: token\n- urlPrefix: ssh://git@h/\n  sshPrivateKeyFile: key\n  knownHostsFile: known_hosts\n", ""},
		{"missing password file", "- urlPrefix: https://h/\n  passwordFile: token\n- urlPrefix: https://h/x/\n  passwordFile: nope\n",
			"repositories[1]: stat " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"missing known_hosts", "- urlPrefix: ssh://git@h/\n  sshPrivateKeyFile: key\n  knownHostsFile: nope\n",
			"repositories[0]: stat " + filepath.Join(dir, "nope")},
		{"bad known_hosts", "- urlPrefix: ssh://git@h/\n  sshPrivateKeyFile: key\n  knownHostsFile: bad_known_hosts\n",
			"repositories[0]: knownhosts: " + filepath.Join(dir, "bad_known_hosts") + ":1"},
		{"directory", "- urlPrefix: https://h/\n  passwordFile: adir\n", "repositories[0]: " + filepath.Join(dir, "adir") + " is not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, dir, "credentials.yaml", "repositories:\n"+tt.yaml)
			_, err := LoadCredentials(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "credentials "+path) {
				t.Errorf("error = %v, want %q naming %s", err, tt.wantErr, path)
			}
		})
	}
	if _, err := LoadCredentials(filepath.Join(dir, "absent.yaml")); err == nil || !strings.Contains(err.Error(), "absent.yaml") {
		t.Errorf("absent file: error = %v", err)
	}
}

func TestCredentialsAuth(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "token", "s3cr3t\r\n")
	writeFile(t, dir, "empty", "\n")
	c := credentialsFor(t, dir, `
repositories:
- urlPrefix: https://github.com/org/
  passwordFile: token
- urlPrefix: https://github.com/bot/
  username: x-access-token
  passwordFile: token
- urlPrefix: https://github.com/empty/
  passwordFile: empty
- urlPrefix: https://git.example.com/
  bearerTokenFile: token
`)
	tests := []struct {
		url, user, password string
		wantErr             error
		wantErrText         string
	}{
		{url: "https://github.com/org/repo", user: "git", password: "s3cr3t"},
		{url: "https://github.com/bot/repo", user: "x-access-token", password: "s3cr3t"},
		{url: "https://x:own@github.com/org/repo"}, // the URL's own credentials
		{url: "https://github.com/public/repo"},
		{url: "git://github.com/org/repo"},
		{url: "https://github.com/empty/repo", wantErrText: "repositories[2]: passwordFile " + filepath.Join(dir, "empty") + " is empty"},
		{url: "ssh://git@github.com/org/repo", wantErr: ErrNoCredentials},
		{url: "git@github.com:org/repo", wantErr: ErrNoCredentials},
		{url: "https://git.example.com/repo", user: "(bearer)", password: "s3cr3t"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			r, err := parseRemote(tt.url, false)
			if err != nil {
				t.Fatal(err)
			}
			auth, r, err := c.auth(r, time.Time{})
			switch {
			case tt.wantErr != nil || tt.wantErrText != "":
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantErrText) {
					t.Errorf("error = %v, want %v %q", err, tt.wantErr, tt.wantErrText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if tt.user == "" {
				if auth != nil {
					t.Errorf("auth = %v, want none", auth)
				}
				return
			}
			if token, ok := auth.(*githttp.TokenAuth); ok {
				if tt.user != "(bearer)" || token.Token != tt.password {
					t.Fatalf("auth = token %q, want %s:%s", token.Token, tt.user, tt.password)
				}
				if msg := r.scrub(errors.New("server got Bearer " + tt.password)).Error(); msg != "server got Bearer ***" {
					t.Errorf("scrubbed error = %q", msg)
				}
				return
			}
			basic, ok := auth.(*githttp.BasicAuth)
			if !ok || basic.Username != tt.user || basic.Password != tt.password {
				t.Fatalf("auth = %#v, want %s:%s", auth, tt.user, tt.password)
			}
			header := base64.StdEncoding.EncodeToString([]byte(tt.user + ":" + tt.password))
			if msg := r.scrub(errors.New("server got " + tt.password + " in Basic " + header)).Error(); msg != "server got *** in Basic ***" {
				t.Errorf("scrubbed error = %q", msg)
			}
		})
	}
}

func TestRepoAuth(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "password", "hunter2\n")
	writeFile(t, dir, "token", "t0ken\n")
	writeFile(t, dir, "empty", "")
	c := credentialsFor(t, dir, `
repositories:
- urlPrefix: https://charts.example.com/private/
  username: reader
  passwordFile: password
- urlPrefix: oci://registry.example.com/charts
  bearerTokenFile: token
- urlPrefix: https://empty.example.com/
  passwordFile: empty
`)
	file := filepath.Join(dir, "credentials.yaml")
	tests := []struct {
		url                       string
		user, password, token     string
		entry, wantErr, notCovers string
	}{
		{url: "https://charts.example.com/private/index.yaml", user: "reader", password: "hunter2",
			entry: "credentials " + file + ": repositories[0]", notCovers: "https://cdn.example.com/private/a-1.0.0.tgz"},
		{url: "oci://registry.example.com/charts/cert-manager", token: "t0ken",
			entry: "credentials " + file + ": repositories[1]", notCovers: "oci://registry.example.com/other/chart"},
		{url: "https://charts.example.com/public/index.yaml"},
		{url: "https://empty.example.com/index.yaml", wantErr: "credentials " + file + ": repositories[2]: passwordFile " + filepath.Join(dir, "empty") + " is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			a, err := c.RepoAuth(tt.url)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.entry == "" {
				if a != nil {
					t.Fatalf("auth = %v, want none", a)
				}
				return
			}
			if a.Username != tt.user || a.Password != tt.password || a.BearerToken != tt.token {
				t.Errorf("auth = %q:%q bearer %q, want %q:%q bearer %q", a.Username, a.Password, a.BearerToken, tt.user, tt.password, tt.token)
			}
			for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v", a, a, a)} {
				if !strings.Contains(s, tt.entry) || strings.Contains(s, "hunter2") || strings.Contains(s, "t0ken") {
					t.Errorf("printed as %q: want the entry %q and no secret", s, tt.entry)
				}
			}
			if !a.Covers(tt.url) || a.Covers(tt.notCovers) {
				t.Errorf("Covers(%q) = %v, Covers(%q) = %v; want true, false", tt.url, a.Covers(tt.url), tt.notCovers, a.Covers(tt.notCovers))
			}
		})
	}
	if a, err := (*Credentials)(nil).RepoAuth("https://charts.example.com/private/"); a != nil || err != nil {
		t.Errorf("nil credentials: %v, %v", a, err)
	}
}
