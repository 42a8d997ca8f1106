package ui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/flotilla-dev/flotilla/shared/logging"
)

// OIDC is how the hub's own dashboard (`flotilla hub --ui`) signs people in: an OpenID
// Connect provider and this client's registration with it.
type OIDC struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is this dashboard's callback, https://HOST/auth/callback, as registered.
	// When it is https, every cookie of the dashboard is Secure, also when the hub itself is
	// reached over plain HTTP behind a proxy that terminates TLS.
	RedirectURL string
}

// secureURL reports whether browsers reach the dashboard at u over https.
func secureURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && strings.EqualFold(p.Scheme, "https")
}

// Cookies of the login: the signed-in identity, and the state of a login under way.
const (
	identityCookie = "flotilla_identity"
	loginCookie    = "flotilla_login"
	// sessionTTL is how long a sign-in lasts.
	sessionTTL = 8 * time.Hour
	loginTTL   = 10 * time.Minute
)

// Login puts a handler behind OpenID Connect (authorization code flow with PKCE, state and
// nonce): a page without a signed-in identity sends the browser to the provider, whose ID
// token, once verified, becomes an HMAC-signed identity cookie.
type Login struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	key      []byte
	log      *slog.Logger
	// secure: the redirect URL is https, so every cookie is Secure (secureURL).
	secure bool
}

// NewLogin discovers the provider (within ctx) and returns the login for cfg. key signs the
// cookies; random when empty (sign-ins then end when the hub restarts).
func NewLogin(ctx context.Context, cfg OIDC, key []byte, log *slog.Logger) (*Login, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.RedirectURL == "" {
		return nil, errors.New("OpenID Connect needs an issuer, a client id, a client secret and a redirect URL")
	}
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("OpenID Connect provider %s: %w", cfg.Issuer, err)
	}
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Login{
		oauth: oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: p.Endpoint(), RedirectURL: cfg.RedirectURL,
			Scopes: []string{oidc.ScopeOpenID, "email", "profile"}},
		verifier: p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		key:      key, log: log, secure: secureURL(cfg.RedirectURL),
	}, nil
}

// Protect serves /auth/callback and /auth/logout, and next to signed-in browsers only: others
// are sent to sign in (a page), or refused (events, forms).
func (l *Login) Protect(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/auth/callback":
			l.callback(w, r)
			return
		case "/auth/logout":
			http.SetCookie(w, &http.Cookie{Name: identityCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: l.secureFor(r)})
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintln(w, "signed out")
			return
		}
		if l.Identity(r) != "" || strings.HasPrefix(r.URL.Path, "/assets/") {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path == "/events" {
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		}
		l.start(w, r)
	})
}

// loginState is what the browser carries from the redirect to the provider to the callback.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"p"`
	Expires  int64  `json:"e"`
}

func (l *Login) start(w http.ResponseWriter, r *http.Request) {
	st := loginState{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(), Next: r.URL.RequestURI(),
		Expires: time.Now().Add(loginTTL).Unix()}
	l.setCookie(w, r, loginCookie, st, loginTTL)
	http.Redirect(w, r, l.oauth.AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// identity is the signed-in person, as the identity cookie carries it.
type identity struct {
	Name    string `json:"n"`
	Expires int64  `json:"e"`
}

func (l *Login) callback(w http.ResponseWriter, r *http.Request) {
	var st loginState
	if !l.readCookie(r, loginCookie, &st) || time.Now().Unix() > st.Expires || r.URL.Query().Get("state") != st.State {
		http.Error(w, "sign-in failed: the login expired or did not start here; open the dashboard again", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: l.secureFor(r)})
	if e := r.URL.Query().Get("error"); e != "" {
		http.Error(w, "sign-in refused by the provider", http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	tok, err := l.oauth.Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		l.log.Warn("dashboard sign-in failed", logging.Err(err))
		http.Error(w, "sign-in failed: the provider did not accept the code", http.StatusForbidden)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := l.verifier.Verify(ctx, raw)
	if err != nil || idt.Nonce != st.Nonce {
		l.log.Warn("dashboard sign-in failed", logging.Err(fmt.Errorf("ID token: %v (nonce matches: %v)", err, err == nil && idt.Nonce == st.Nonce)))
		http.Error(w, "sign-in failed: the ID token did not verify", http.StatusForbidden)
		return
	}
	var claims struct {
		Email             string `json:"email"`
		PreferredUsername string `json:"preferred_username"`
	}
	_ = idt.Claims(&claims)
	name := claims.Email
	if name == "" {
		name = claims.PreferredUsername
	}
	if name == "" {
		name = idt.Subject
	}
	l.setCookie(w, r, identityCookie, identity{Name: name, Expires: time.Now().Add(sessionTTL).Unix()}, sessionTTL)
	l.log.Info("dashboard sign-in", logging.KeyActor, name)
	next := st.Next
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		next = "/"
	}
	http.Redirect(w, r, next, http.StatusFound)
}

// Identity is who r is signed in as ("" when nobody).
func (l *Login) Identity(r *http.Request) string {
	var id identity
	if !l.readCookie(r, identityCookie, &id) || time.Now().Unix() > id.Expires {
		return ""
	}
	return id.Name
}

func (l *Login) mac(payload string) string {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (l *Login) setCookie(w http.ResponseWriter, r *http.Request, name string, v any, ttl time.Duration) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	payload := name + "." + base64.RawURLEncoding.EncodeToString(data)
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: payload[len(name)+1:] + "." + l.mac(payload), Path: "/", MaxAge: int(ttl.Seconds()),
		HttpOnly: true, Secure: l.secureFor(r), SameSite: http.SameSiteLaxMode,
	})
}

// secureFor reports whether the cookies sent with the answer to r are Secure: when the
// redirect URL is https (browsers reach the dashboard over https, also through a proxy that
// terminates TLS and talks plain HTTP to the hub), or r itself came over TLS.
func (l *Login) secureFor(r *http.Request) bool { return l.secure || r.TLS != nil }

// readCookie reads a cookie setCookie wrote, if its signature holds (the name is signed too,
// so one cookie cannot stand in for another).
func (l *Login) readCookie(r *http.Request, name string, v any) bool {
	c, err := r.Cookie(name)
	if err != nil {
		return false
	}
	body, sig, ok := strings.Cut(c.Value, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(l.mac(name+"."+body))) {
		return false
	}
	data, err := base64.RawURLEncoding.DecodeString(body)
	return err == nil && json.Unmarshal(data, v) == nil
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Behind builds the dashboard of cfg behind l: pages show the signed-in identity, and every
// action is sent as asOperator(ctx, "oidc:" + identity), so that the hub audits it under it.
func Behind(l *Login, cfg Config, asOperator func(context.Context, string) context.Context) (*Handler, http.Handler, error) {
	cfg.Identity = l.Identity
	cfg.SecureCookies = cfg.SecureCookies || l.secure
	cfg.Acting = func(r *http.Request) context.Context { return asOperator(r.Context(), "oidc:"+l.Identity(r)) }
	h, err := New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return h, l.Protect(h), nil
}
