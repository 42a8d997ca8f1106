// Package webhook receives Git push events (GitHub, GitLab, Gitea, Bitbucket) on
// POST /api/webhook, verifies them with the shared secret, and names the pushed repository so
// the hub fetches it at once instead of waiting for the next poll.
package webhook

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Bitbucket Server and old GitHub signatures; sha256 preferred when present
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/flotilla-dev/flotilla/shared/logging"
)

// MaxBodySize bounds a webhook body.
const MaxBodySize = 5 << 20

// Push is a verified push event.
type Push struct {
	Provider string
	// URLs are the repository's URLs as the event names them (clone, ssh, web).
	URLs []string
	Ref  string
}

// Handler serves POST /api/webhook.
type Handler struct {
	secret []byte
	onPush func(Push) int
	log    *slog.Logger
}

// New returns a handler verifying events with secret; onPush is called for each verified push
// and returns how many applications use the repository.
func New(secret []byte, onPush func(Push) int, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{secret: secret, onPush: onPush, log: log}
}

var errUnauthorized = errors.New("signature or token missing or wrong")

// ServeHTTP verifies and dispatches one event. A wrong or missing signature is 401 and changes
// nothing; a body over MaxBodySize is 413.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxBodySize), http.StatusRequestEntityTooLarge)
		return
	}
	push, err := h.parse(r.Header, body)
	switch {
	case errors.Is(err, errUnauthorized):
		h.log.Warn("webhook rejected", logging.Err(err), "remote", r.RemoteAddr)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	case errors.Is(err, errIgnored):
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("event ignored: not a push\n"))
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n := h.onPush(push)
	h.log.Info("webhook push", "provider", push.Provider, logging.KeyRepo, strings.Join(push.URLs, " "), logging.KeyCount, n)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"provider": push.Provider, "applications": n})
}

var errIgnored = errors.New("not a push event")

func (h *Handler) parse(hdr http.Header, body []byte) (Push, error) {
	switch {
	case hdr.Get("X-Gitea-Event") != "":
		if !validHMAC(sha256.New, h.secret, body, hdr.Get("X-Gitea-Signature")) {
			return Push{}, errUnauthorized
		}
		if hdr.Get("X-Gitea-Event") != "push" {
			return Push{}, errIgnored
		}
		return githubLike("gitea", body)
	case hdr.Get("X-GitHub-Event") != "":
		if !validPrefixedHMAC(h.secret, body, hdr.Get("X-Hub-Signature-256"), hdr.Get("X-Hub-Signature")) {
			return Push{}, errUnauthorized
		}
		if hdr.Get("X-GitHub-Event") != "push" {
			return Push{}, errIgnored
		}
		return githubLike("github", body)
	case hdr.Get("X-Gitlab-Event") != "":
		tok := hdr.Get("X-Gitlab-Token")
		if len(h.secret) == 0 || subtle.ConstantTimeCompare([]byte(tok), h.secret) != 1 {
			return Push{}, errUnauthorized
		}
		if ev := hdr.Get("X-Gitlab-Event"); ev != "Push Hook" && ev != "Tag Push Hook" && ev != "System Hook" {
			return Push{}, errIgnored
		}
		return gitlab(body)
	case hdr.Get("X-Event-Key") != "":
		if !validPrefixedHMAC(h.secret, body, hdr.Get("X-Hub-Signature"), "") {
			return Push{}, errUnauthorized
		}
		if k := hdr.Get("X-Event-Key"); k != "repo:push" && k != "repo:refs_changed" {
			return Push{}, errIgnored
		}
		return bitbucket(body)
	}
	return Push{}, errUnauthorized
}

// validPrefixedHMAC checks "sha256=<hex>" (preferred) or "sha1=<hex>" signatures.
func validPrefixedHMAC(secret, body []byte, sig256, sigOther string) bool {
	for _, sig := range []string{sig256, sigOther} {
		algo, hexsig, ok := strings.Cut(sig, "=")
		if !ok {
			continue
		}
		switch algo {
		case "sha256":
			return validHMAC(sha256.New, secret, body, hexsig)
		case "sha1":
			return validHMAC(sha1.New, secret, body, hexsig)
		}
	}
	return false
}

func validHMAC(h func() hash.Hash, secret, body []byte, hexsig string) bool {
	if len(secret) == 0 || hexsig == "" {
		return false
	}
	want, err := hex.DecodeString(hexsig)
	if err != nil {
		return false
	}
	mac := hmac.New(h, secret)
	mac.Write(body)
	return hmac.Equal(mac.Sum(nil), want)
}

func githubLike(provider string, body []byte) (Push, error) {
	var ev struct {
		Ref        string `json:"ref"`
		Repository struct {
			CloneURL string `json:"clone_url"`
			HTMLURL  string `json:"html_url"`
			SSHURL   string `json:"ssh_url"`
			GitURL   string `json:"git_url"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return Push{}, fmt.Errorf("%s push: %w", provider, err)
	}
	r := ev.Repository
	return push(provider, ev.Ref, r.CloneURL, r.HTMLURL, r.SSHURL, r.GitURL)
}

func gitlab(body []byte) (Push, error) {
	var ev struct {
		Ref     string `json:"ref"`
		Project struct {
			HTTPURL string `json:"git_http_url"`
			SSHURL  string `json:"git_ssh_url"`
			WebURL  string `json:"web_url"`
		} `json:"project"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return Push{}, fmt.Errorf("gitlab push: %w", err)
	}
	p := ev.Project
	return push("gitlab", ev.Ref, p.HTTPURL, p.SSHURL, p.WebURL)
}

func bitbucket(body []byte) (Push, error) {
	var ev struct {
		Repository struct {
			FullName string `json:"full_name"`
			Links    struct {
				HTML  struct{ Href string } `json:"html"`
				Clone []struct {
					Href string `json:"href"`
				} `json:"clone"`
			} `json:"links"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return Push{}, fmt.Errorf("bitbucket push: %w", err)
	}
	urls := []string{ev.Repository.Links.HTML.Href}
	for _, c := range ev.Repository.Links.Clone {
		urls = append(urls, c.Href)
	}
	if ev.Repository.FullName != "" && ev.Repository.Links.HTML.Href == "" {
		urls = append(urls, "https://bitbucket.org/"+ev.Repository.FullName)
	}
	return push("bitbucket", "", urls...)
}

func push(provider, ref string, urls ...string) (Push, error) {
	p := Push{Provider: provider, Ref: ref}
	for _, u := range urls {
		if u != "" {
			p.URLs = append(p.URLs, u)
		}
	}
	if len(p.URLs) == 0 {
		return Push{}, fmt.Errorf("%s push names no repository", provider)
	}
	return p, nil
}

// Normalize reduces a repository URL to host/path, lower case, without scheme, user, port,
// ".git" or trailing slash, so the clone, SSH and web URLs of one repository compare equal:
// "git@github.com:Org/Repo.git" and "https://github.com/org/repo" both give "github.com/org/repo".
func Normalize(raw string) string {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		if user, rest, ok := strings.Cut(s, "@"); ok && !strings.Contains(user, "/") {
			s = "ssh://" + strings.Replace(rest, ":", "/", 1)
		}
	}
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		s = u.Hostname() + u.Path
	}
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git")
	return strings.ToLower(s)
}
