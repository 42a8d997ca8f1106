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
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

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
	secret  []byte
	onPush  func(Push) int
	log     *slog.Logger
	limiter *addrLimiter
}

var _ http.Handler = (*Handler)(nil)

// New returns a handler verifying events with secret; onPush is called for each verified push
// and returns how many applications use the repository. Each source address may send
// RatePerSecond requests a second (RateBurst at once); more get 429.
func New(secret []byte, onPush func(Push) int, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	return &Handler{secret: secret, onPush: onPush, log: log, limiter: newAddrLimiter(RatePerSecond, RateBurst, maxAddrs)}
}

var errUnauthorized = errors.New("signature or token missing or wrong")

// ServeHTTP verifies and dispatches one event, doing as little as it can for a request that
// cannot be one: an address over its rate gets 429, then a request whose headers cannot
// authenticate it (no provider's event header, a wrong GitLab token, a missing or malformed
// signature) gets 401 before a byte of its body is read, a body declared or found larger
// than MaxBodySize gets 413, and only then is the body read and its signature checked (401
// and no change when wrong).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return
	}
	if wait, ok := h.limiter.allow(sourceAddr(r.RemoteAddr)); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, wait.Round(time.Second)/time.Second))))
		http.Error(w, "too many requests from this address", http.StatusTooManyRequests)
		return
	}
	ev, err := h.authenticate(r.Header)
	if err != nil {
		h.log.Warn("webhook rejected", logging.Err(err), logging.KeyRemote, r.RemoteAddr)
		w.Header().Set("Connection", "close") // and do not read the body it may still send
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.ContentLength > MaxBodySize {
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxBodySize), http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("body larger than %d bytes", MaxBodySize), http.StatusRequestEntityTooLarge)
		} else {
			http.Error(w, "reading the body failed", http.StatusBadRequest)
		}
		return
	}
	if ev.verify != nil && !ev.verify(body) {
		h.log.Warn("webhook rejected", logging.Err(errUnauthorized), logging.KeyRemote, r.RemoteAddr)
		http.Error(w, errUnauthorized.Error(), http.StatusUnauthorized)
		return
	}
	if !ev.push {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("event ignored: not a push\n"))
		return
	}
	push, err := ev.parse(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n := h.onPush(push)
	h.log.Info("webhook push", logging.KeyProvider, push.Provider, logging.KeyRepo, strings.Join(push.URLs, " "), logging.KeyCount, n)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"provider": push.Provider, "applications": n})
}

// event is what a request's headers say it is, and how to check and read its body.
type event struct {
	push bool // a push event (others are acknowledged and ignored)
	// verify checks the body's signature; nil when the headers alone authenticated it.
	verify func(body []byte) bool
	parse  func(body []byte) (Push, error)
}

// authenticate checks what the headers alone can tell: the provider, GitLab's token (all of
// its authentication), and that an HMAC signature is present and well formed.
func (h *Handler) authenticate(hdr http.Header) (*event, error) {
	if len(h.secret) == 0 {
		return nil, errUnauthorized
	}
	switch {
	case hdr.Get("X-Gitea-Event") != "":
		verify, ok := h.signature(hdr.Get("X-Gitea-Signature"), "sha256")
		if !ok {
			return nil, errUnauthorized
		}
		return &event{push: hdr.Get("X-Gitea-Event") == "push", verify: verify,
			parse: func(b []byte) (Push, error) { return githubLike("gitea", b) }}, nil
	case hdr.Get("X-GitHub-Event") != "":
		verify, ok := h.prefixedSignature(hdr.Get("X-Hub-Signature-256"), hdr.Get("X-Hub-Signature"))
		if !ok {
			return nil, errUnauthorized
		}
		return &event{push: hdr.Get("X-GitHub-Event") == "push", verify: verify,
			parse: func(b []byte) (Push, error) { return githubLike("github", b) }}, nil
	case hdr.Get("X-Gitlab-Event") != "":
		if subtle.ConstantTimeCompare([]byte(hdr.Get("X-Gitlab-Token")), h.secret) != 1 {
			return nil, errUnauthorized
		}
		ev := hdr.Get("X-Gitlab-Event")
		return &event{push: ev == "Push Hook" || ev == "Tag Push Hook" || ev == "System Hook", parse: gitlab}, nil
	case hdr.Get("X-Event-Key") != "":
		verify, ok := h.prefixedSignature(hdr.Get("X-Hub-Signature"), "")
		if !ok {
			return nil, errUnauthorized
		}
		k := hdr.Get("X-Event-Key")
		return &event{push: k == "repo:push" || k == "repo:refs_changed", verify: verify, parse: bitbucket}, nil
	}
	return nil, errUnauthorized
}

// prefixedSignature reads "sha256=<hex>" (preferred) or "sha1=<hex>".
func (h *Handler) prefixedSignature(sig256, sigOther string) (func([]byte) bool, bool) {
	for _, sig := range []string{sig256, sigOther} {
		if algo, hexsig, ok := strings.Cut(sig, "="); ok && (algo == "sha256" || algo == "sha1") {
			return h.signature(hexsig, algo)
		}
	}
	return nil, false
}

// signature returns the check of a body against hexsig, an HMAC of algo with the secret, if
// hexsig is well formed.
func (h *Handler) signature(hexsig, algo string) (func([]byte) bool, bool) {
	newHash, size := sha256.New, sha256.Size
	if algo == "sha1" {
		newHash, size = sha1.New, sha1.Size
	}
	want, err := hex.DecodeString(hexsig)
	if err != nil || len(want) != size {
		return nil, false
	}
	return func(body []byte) bool {
		mac := hmac.New(newHash, h.secret)
		mac.Write(body)
		return hmac.Equal(mac.Sum(nil), want)
	}, true
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
