package app

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestUIRefusesWithoutOIDC: --ui without every OpenID Connect flag, or without --http-listen,
// refuses to start, naming what is missing; --oidc-* without --ui is refused too.
func TestUIRefusesWithoutOIDC(t *testing.T) {
	for _, tc := range []struct {
		name string
		ui   UIOptions
		http string
		want string
	}{
		{"no OIDC", UIOptions{Enabled: true}, "127.0.0.1:0",
			"--ui serves the dashboard behind an OpenID Connect login and refuses to start without one: set --oidc-client-id, --oidc-client-secret-file, --oidc-issuer, --oidc-redirect-url"},
		{"no secret", UIOptions{Enabled: true, Issuer: "https://id.example.com", ClientID: "flotilla", RedirectURL: "https://hub/auth/callback"}, "127.0.0.1:0",
			"set --oidc-client-secret-file"},
		{"no http", UIOptions{Enabled: true, Issuer: "https://id.example.com", ClientID: "flotilla", ClientSecretFile: "s", RedirectURL: "https://hub/auth/callback"}, "",
			"--ui serves the dashboard on --http-listen"},
		{"no --ui", UIOptions{Issuer: "https://id.example.com"}, "127.0.0.1:0", "add --ui"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			o.AppsDir, o.HTTPListen, o.UI = t.TempDir(), tc.http, tc.ui
			err := o.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestHubServesDashboardBehindLogin runs `flotilla hub --ui` against an in-process OpenID
// Connect provider: the dashboard on --http-listen sends a browser to sign in, then shows the
// fleet and who signed in; health and metrics stay open.
func TestHubServesDashboardBehindLogin(t *testing.T) {
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	cfg := m.Config()
	dir := t.TempDir()
	secret := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secret, []byte(cfg.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := freeAddr(t)
	cli, hubLog := startHub(t, "--data-dir", filepath.Join(dir, "data"), "--apps-dir", t.TempDir(), "--http-listen", httpAddr,
		"--ui", "--oidc-issuer", cfg.Issuer, "--oidc-client-id", cfg.ClientID, "--oidc-client-secret-file", secret,
		"--oidc-redirect-url", "http://"+httpAddr+"/auth/callback")
	testwait.For(t, time.Minute, "the hub's CLI port", func(context.Context) (bool, error) {
		_, err := cli("cluster", "add", "edge-1")
		return err == nil, nil
	})
	resp, err := http.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz behind --ui: %d", resp.StatusCode)
	}
	m.QueueUser(&mockoidc.MockUser{Subject: "u-2", Email: "grace@example.com", EmailVerified: true})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err = browser.Get("http://" + httpAddr + "/?selector=")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<b id="identity">grace@example.com</b>`) || !strings.Contains(string(body), ">edge-1<") {
		t.Errorf("the dashboard after signing in: %d\n%s\nhub log:\n%s", resp.StatusCode, body, hubLog)
	}
	if strings.Contains(hubLog.String(), cfg.ClientSecret) {
		t.Errorf("the hub's log shows the OIDC client secret")
	}
}
