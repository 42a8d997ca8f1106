package ui

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/flotilla-dev/flotilla/hub/internal/hubtest"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// TestLoginAndAuditedActions puts the dashboard over a real hub's in-process Operator service
// behind an OpenID Connect login (an in-process provider, mockoidc) as `flotilla hub --ui`
// does: a browser that has not signed in is sent to the provider and can neither post a form
// nor listen to events; once signed in, the page names who, and the hub audits an action under
// that identity.
func TestLoginAndAuditedActions(t *testing.T) {
	h := hubtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.Operator(t).AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "edge-1", TokenTtlSeconds: 600}); err != nil {
		t.Fatal(err)
	}
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	user := &mockoidc.MockUser{Subject: "u-1", Email: "ada@example.com", EmailVerified: true, PreferredUsername: "ada"}

	var protected http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { protected.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	cfg := m.Config()
	login, err := NewLogin(ctx, OIDC{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: srv.URL + "/auth/callback"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, protected, err = Behind(login, Config{Backend: h.Server.Local()}, server.AsOperator)
	if err != nil {
		t.Fatal(err)
	}

	// Not signed in.
	stranger := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := stranger.Get(srv.URL + "/clusters/edge-1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, m.AuthorizationEndpoint()) ||
		!strings.Contains(loc, "code_challenge=") || !strings.Contains(loc, "nonce=") {
		t.Errorf("a page without a sign-in: %d to %q, want a redirect to the provider with PKCE and a nonce", resp.StatusCode, loc)
	}
	for _, try := range []func() (*http.Response, error){
		func() (*http.Response, error) { return stranger.Get(srv.URL + "/events") },
		func() (*http.Response, error) {
			return stranger.PostForm(srv.URL+"/actions/revoke", url.Values{"cluster": {"edge-1"}, "name": {"edge-1"}})
		},
		func() (*http.Response, error) { return stranger.Get(srv.URL + "/auth/callback?state=x&code=y") },
	} {
		resp, err := try()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s %s without a sign-in: %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode)
		}
	}

	// Signing in: the provider, the callback, then the page asked for.
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	m.QueueUser(user)
	get := func(path string) string {
		t.Helper()
		resp, err := browser.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != strings.Split(path, "?")[0] {
			t.Fatalf("GET %s: %d at %s\n%s", path, resp.StatusCode, resp.Request.URL, body)
		}
		return string(body)
	}
	if page := get("/clusters/edge-1"); !strings.Contains(page, `<b id="identity">ada@example.com</b>`) {
		t.Errorf("the page does not name who signed in:\n%s", page)
	}

	// An action, audited under the identity.
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(get("/confirm/revoke?cluster=edge-1"))
	if csrf == nil {
		t.Fatal("no CSRF token on the confirmation page")
	}
	resp, err = browser.PostForm(srv.URL+"/actions/revoke", url.Values{"cluster": {"edge-1"}, "name": {"edge-1"}, "csrf": {csrf[1]}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "cluster edge-1 revoked") {
		t.Fatalf("revoke: %d\n%s", resp.StatusCode, body)
	}
	recs, err := h.Store.ListAudit(10)
	if err != nil {
		t.Fatal(err)
	}
	var actor string
	for _, r := range recs {
		if r.Action == "cluster.revoke" && r.Target == "edge-1" {
			actor = r.Actor
		}
	}
	if actor != "oidc:ada@example.com" {
		t.Errorf("the revoke was audited under %q, want oidc:ada@example.com (%+v)", actor, recs)
	}

	// A forged identity cookie signs nobody in.
	forged := &http.Client{Timeout: 30 * time.Second, CheckRedirect: stranger.CheckRedirect}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: identityCookie, Value: "eyJuIjoibWFsbG9yeSIsImUiOjk5OTk5OTk5OTl9.forged"})
	resp, err = forged.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("a forged identity cookie: %d, want the redirect to sign in", resp.StatusCode)
	}
}

// TestCookiesSecureBehindATLSProxy: with an https redirect URL (browsers reach the dashboard
// over https, through a proxy that terminates TLS and talks plain HTTP to the hub), every
// cookie the dashboard sets is Secure although the request came without TLS; with an http
// redirect URL (a dashboard on loopback) they are not.
func TestCookiesSecureBehindATLSProxy(t *testing.T) {
	h := hubtest.Start(t)
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := m.Config()
	for _, tc := range []struct {
		redirect string
		secure   bool
	}{
		{"https://dashboard.example.com/auth/callback", true},
		{"http://127.0.0.1:8080/auth/callback", false},
	} {
		login, err := NewLogin(ctx, OIDC{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: tc.redirect}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ui, protected, err := Behind(login, Config{Backend: h.Server.Local()}, server.AsOperator)
		if err != nil {
			t.Fatal(err)
		}
		// The proxy's plain-HTTP request for a page: the login's cookie, on its way to the provider.
		rec := httptest.NewRecorder()
		protected.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://hub.internal:8080/", nil))
		// A signed-in page: the session cookie of the CSRF tokens.
		page := httptest.NewRecorder()
		ui.ServeHTTP(page, httptest.NewRequest(http.MethodGet, "http://hub.internal:8080/confirm/sync?app=api", nil))
		cookies := append(rec.Result().Cookies(), page.Result().Cookies()...)
		names := map[string]bool{}
		for _, c := range cookies {
			names[c.Name] = true
			if c.Secure != tc.secure {
				t.Errorf("redirect %s: cookie %s Secure=%v, want %v", tc.redirect, c.Name, c.Secure, tc.secure)
			}
		}
		if !names[loginCookie] || !names[sessionCookie] {
			t.Errorf("redirect %s: cookies %v, want %s and %s", tc.redirect, names, loginCookie, sessionCookie)
		}
	}
}
