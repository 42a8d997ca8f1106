package ui

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
)

// sessionCookie holds a browser session's random id; a form's CSRF token is the HMAC of it,
// so a page of another site can neither read nor forge one.
const sessionCookie = "flotilla_session"

type csrf struct {
	key []byte
	// secure: the session cookie is Secure on every request (Config.SecureCookies).
	secure bool
}

func newCSRF(key []byte, secure bool) (*csrf, error) {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	return &csrf{key: key, secure: secure}, nil
}

func (c *csrf) sign(session string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// token returns the CSRF token of r's session, starting a session (a cookie) when r has none.
func (c *csrf) token(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(sessionCookie); err == nil && ck.Value != "" {
		return c.sign(ck.Value)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return ""
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.secure || r.TLS != nil,
	})
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: id})
	return c.sign(id)
}

var errCSRF = errors.New("the form's CSRF token does not match this browser session: reload the page and try again")

// check refuses a form posted from another origin or without its session's token.
func (c *csrf) check(r *http.Request) error {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return errCSRF
		}
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return errCSRF
	}
	if !hmac.Equal([]byte(c.sign(ck.Value)), []byte(r.PostFormValue("csrf"))) {
		return errCSRF
	}
	return nil
}
