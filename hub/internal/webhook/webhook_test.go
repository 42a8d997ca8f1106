package webhook

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/shared/httpserve"
)

const secret = "s3cret"

func sign(body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	return hex.EncodeToString(mac.Sum(nil))
}

const githubBody = `{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/org/manifests.git","html_url":"https://github.com/org/manifests","ssh_url":"git@github.com:org/manifests.git"}}`
const gitlabBody = `{"ref":"refs/heads/main","project":{"git_http_url":"https://gitlab.com/org/manifests.git","git_ssh_url":"git@gitlab.com:org/manifests.git"}}`
const bitbucketBody = `{"repository":{"full_name":"org/manifests","links":{"html":{"href":"https://bitbucket.org/org/manifests"}}}}`

func TestWebhook(t *testing.T) {
	tests := []struct {
		name     string
		headers  map[string]string
		body     string
		want     int
		wantRepo string
	}{
		{"github signed", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign(githubBody)}, githubBody, 200, "github.com/org/manifests"},
		{"github wrong signature", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("other")}, githubBody, 401, ""},
		{"github unsigned", map[string]string{"X-GitHub-Event": "push"}, githubBody, 401, ""},
		{"github ping is ignored", map[string]string{"X-GitHub-Event": "ping", "X-Hub-Signature-256": "sha256=" + sign(githubBody)}, githubBody, 200, ""},
		{"gitea signed", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign(githubBody)}, githubBody, 200, "github.com/org/manifests"},
		{"gitea wrong", map[string]string{"X-Gitea-Event": "push", "X-Gitea-Signature": sign("x")}, githubBody, 401, ""},
		{"gitlab token", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}, gitlabBody, 200, "gitlab.com/org/manifests"},
		{"gitlab wrong token", map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}, gitlabBody, 401, ""},
		{"bitbucket signed", map[string]string{"X-Event-Key": "repo:push", "X-Hub-Signature": "sha256=" + sign(bitbucketBody)}, bitbucketBody, 200, "bitbucket.org/org/manifests"},
		{"bitbucket unsigned", map[string]string{"X-Event-Key": "repo:push"}, bitbucketBody, 401, ""},
		{"unknown provider", map[string]string{}, githubBody, 401, ""},
		{"signed garbage", map[string]string{"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + sign("{")}, "{", 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Push
			h := New([]byte(secret), func(p Push) int { got = append(got, p); return 1 }, nil)
			req := httptest.NewRequest(http.MethodPost, "/api/webhook", strings.NewReader(tt.body))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.wantRepo == "" {
				if len(got) != 0 {
					t.Fatalf("push dispatched: %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d pushes, want 1", len(got))
			}
			found := false
			for _, u := range got[0].URLs {
				found = found || Normalize(u) == tt.wantRepo
			}
			if !found {
				t.Fatalf("push URLs %v do not name %s", got[0].URLs, tt.wantRepo)
			}
		})
	}
}

func TestWebhookBodyIsBounded(t *testing.T) {
	called := false
	h := New([]byte(secret), func(Push) int { called = true; return 0 }, nil)
	body := bytes.Repeat([]byte("x"), MaxBodySize+1)
	for _, chunked := range []bool{false, true} {
		var r io.Reader = bytes.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // no length known in advance: found while reading
		}
		req := httptest.NewRequest(http.MethodPost, "/api/webhook", r)
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+sign("x"))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge || called {
			t.Fatalf("chunked %v: status %d, called %v", chunked, rec.Code, called)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/Org/Repo.git":           "github.com/org/repo",
		"https://user:token@github.com/org/repo/":   "github.com/org/repo",
		"git@github.com:org/repo.git":               "github.com/org/repo",
		"ssh://git@github.com:22/org/repo.git":      "github.com/org/repo",
		"git://127.0.0.1:9418/manifests":            "127.0.0.1/manifests",
		"https://bitbucket.org/org/manifests":       "bitbucket.org/org/manifests",
		"https://gitlab.example.com/group/sub/repo": "gitlab.example.com/group/sub/repo",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

// serve runs h on a real loopback server, as the hub does.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httpserve.New(h, httpserve.Timeouts{Read: time.Minute})
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().String()
}

// TestWebhookRefusedBeforeTheBody: a request whose headers cannot authenticate it, or that
// declares a body over the limit, is answered at once, without waiting for (or reading) the
// body it announces.
func TestWebhookRefusedBeforeTheBody(t *testing.T) {
	called := false
	addr := serve(t, New([]byte(secret), func(Push) int { called = true; return 1 }, nil))
	tests := []struct {
		name    string
		headers string
		length  int
		want    string
	}{
		{"github unsigned", "X-GitHub-Event: push\r\n", 1 << 20, "401"},
		{"github malformed signature", "X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=zz\r\n", 1 << 20, "401"},
		{"github short signature", "X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=abcd\r\n", 1 << 20, "401"},
		{"gitea unsigned", "X-Gitea-Event: push\r\n", 1 << 20, "401"},
		{"gitlab wrong token", "X-Gitlab-Event: Push Hook\r\nX-Gitlab-Token: nope\r\n", 1 << 20, "401"},
		{"bitbucket unsigned", "X-Event-Key: repo:push\r\n", 1 << 20, "401"},
		{"no provider", "", 1 << 20, "401"},
		{"declared too large", "X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=" + sign("x") + "\r\n", MaxBodySize + 1, "413"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The headers and a 10-byte prefix of the announced body; the rest never comes.
			req := fmt.Sprintf("POST /api/webhook HTTP/1.1\r\nHost: hub\r\n%sContent-Length: %d\r\n\r\n{\"ref\":\"x\"", tt.headers, tt.length)
			if _, err := conn.Write([]byte(req)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				t.Fatalf("no answer before the body was sent: %v", err)
			}
			if !strings.HasPrefix(line, "HTTP/1.1 "+tt.want) {
				t.Fatalf("status line %q, want %s", line, tt.want)
			}
		})
	}
	if called {
		t.Error("a refused request was dispatched")
	}
}

// TestWebhookFloodFromOneAddress: one address sending far more than RateBurst requests gets
// 429 for the excess, even for a correctly signed push, while another address is served.
func TestWebhookFloodFromOneAddress(t *testing.T) {
	var mu sync.Mutex
	pushes := 0
	addr := serve(t, New([]byte(secret), func(Push) int { mu.Lock(); pushes++; mu.Unlock(); return 1 }, nil))
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	post := func(c *http.Client, signature string) int {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/webhook", strings.NewReader(githubBody))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+signature)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		return resp.StatusCode
	}
	flooder := from("127.0.0.1")
	codes := map[int]int{}
	for range 10 * RateBurst {
		codes[post(flooder, sign("wrong"))]++
	}
	if codes[http.StatusTooManyRequests] < 5*RateBurst || codes[http.StatusUnauthorized] < RateBurst {
		t.Fatalf("flood of %d requests from one address: %v, want the first %d answered (401), most of the rest 429", 10*RateBurst, codes, RateBurst)
	}
	if got := post(flooder, sign(githubBody)); got != http.StatusTooManyRequests {
		t.Errorf("signed push from the flooding address: %d, want 429", got)
	}
	if got := post(from("127.0.0.2"), sign(githubBody)); got != http.StatusOK {
		t.Errorf("signed push from another address during the flood: %d, want 200", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if pushes != 1 {
		t.Errorf("%d pushes dispatched, want the one from the other address", pushes)
	}
}

func TestAddrLimiterIsBounded(t *testing.T) {
	l := newAddrLimiter(1, 1, 3)
	for i := range 10 {
		if _, ok := l.allow(fmt.Sprintf("10.0.0.%d", i)); i < 4 && !ok {
			t.Errorf("address %d refused its first request", i)
		}
	}
	if n := len(l.byAddr); n > 3 {
		t.Errorf("%d addresses tracked, want at most 3", n)
	}
	for _, tt := range []struct{ remote, want string }{
		{"192.0.2.1:443", "192.0.2.1"}, {"[::ffff:192.0.2.1]:1", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"}, {"[2001:db8:1:2:ffff::1]:443", "2001:db8:1:2::/64"},
	} {
		if got := sourceAddr(tt.remote); got != tt.want {
			t.Errorf("sourceAddr(%q) = %q, want %q", tt.remote, got, tt.want)
		}
	}
}
