package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
	req := httptest.NewRequest(http.MethodPost, "/api/webhook", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || called {
		t.Fatalf("status %d, called %v", rec.Code, called)
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
