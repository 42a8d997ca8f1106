// Package ui is the fleet dashboard: server-rendered HTML pages (html/template, so that every
// name, message and diff from Git, agents and clusters is escaped), embedded assets (no network
// at all), live updates by server-sent events, and the operator actions behind a confirmation
// and a per-session CSRF token. It is an http.Handler over a Backend, which the Operator gRPC
// client satisfies: `flotilla dashboard` serves it with the operator's own credentials.
package ui

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Backend is what the dashboard asks of a hub: the Operator service's calls it reads and acts
// with. Every view reads one page of the fleet (FleetPage: the hub filters, counts and pages),
// never the whole fleet.
type Backend interface {
	FleetPage(ctx context.Context, in *flotillav1.FleetPageRequest, opts ...grpc.CallOption) (*flotillav1.FleetPageResponse, error)
	Status(ctx context.Context, in *flotillav1.StatusRequest, opts ...grpc.CallOption) (*flotillav1.StatusResponse, error)
	ListApps(ctx context.Context, in *flotillav1.ListAppsRequest, opts ...grpc.CallOption) (*flotillav1.ListAppsResponse, error)
	History(ctx context.Context, in *flotillav1.HistoryRequest, opts ...grpc.CallOption) (*flotillav1.HistoryResponse, error)
	Sync(ctx context.Context, in *flotillav1.SyncRequest, opts ...grpc.CallOption) (*flotillav1.SyncResponse, error)
	Rollback(ctx context.Context, in *flotillav1.RollbackRequest, opts ...grpc.CallOption) (*flotillav1.RollbackResponse, error)
	RevokeCluster(ctx context.Context, in *flotillav1.RevokeClusterRequest, opts ...grpc.CallOption) (*flotillav1.RevokeClusterResponse, error)
	RolloutStatus(ctx context.Context, in *flotillav1.RolloutStatusRequest, opts ...grpc.CallOption) (*flotillav1.RolloutStatusResponse, error)
	RolloutAction(ctx context.Context, in *flotillav1.RolloutActionRequest, opts ...grpc.CallOption) (*flotillav1.RolloutActionResponse, error)
}

var _ Backend = flotillav1.OperatorClient(nil)

//go:embed assets templates
var files embed.FS

// Defaults of Config.
const (
	DefaultPageSize = 50
	DefaultPoll     = 500 * time.Millisecond
	// requestTimeout bounds each call to the backend a page makes.
	requestTimeout = 20 * time.Second
)

// Config is what a Handler is built from.
type Config struct {
	Backend Backend
	Logger  *slog.Logger
	// PageSize is how many clusters the fleet page shows at once (DefaultPageSize when 0).
	PageSize int
	// Poll is how often the live updates read the fleet while a page listens (DefaultPoll).
	Poll time.Duration
	// Identity names who is signed in, for the page; empty: the operator certificate of the
	// CLI's config.
	Identity func(*http.Request) string
	// Acting returns the context an action is sent to the backend with (so that the hub audits
	// it under the signed-in identity); nil: the request's context.
	Acting func(*http.Request) context.Context
	// CSRFKey signs the per-session CSRF tokens; random when empty.
	CSRFKey []byte
	// SecureCookies makes the session cookie Secure whatever the request came over (browsers
	// reach the dashboard over https through a proxy that terminates TLS); else it is Secure
	// on requests that came over TLS. Behind sets it when the OIDC redirect URL is https.
	SecureCookies bool
}

// Handler serves the dashboard.
type Handler struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template
	csrf  *csrf
	live  *live
}

var _ http.Handler = (*Handler)(nil)

// New builds the dashboard over cfg.Backend. Live updates need Run.
func New(cfg Config) (*Handler, error) {
	if cfg.Backend == nil {
		return nil, errors.New("ui: no backend")
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c, err := newCSRF(cfg.CSRFKey, cfg.SecureCookies)
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), pages: pages, csrf: c}
	h.live = newLive(cfg.Backend, cfg.Poll, cfg.PageSize, cfg.Logger)
	h.live.panel = func(v *rolloutView) (string, error) {
		var b strings.Builder
		err := h.pages["app"].ExecuteTemplate(&b, "rollout", v)
		return b.String(), err
	}
	assets, err := fs.Sub(files, "assets")
	if err != nil {
		return nil, err
	}
	h.mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	h.mux.HandleFunc("GET /{$}", h.fleetPage)
	h.mux.HandleFunc("GET /apps/{app}", h.appPage)
	h.mux.HandleFunc("GET /clusters/{cluster}", h.clusterPage)
	h.mux.HandleFunc("GET /clusters/{cluster}/apps/{app}", h.appOnClusterPage)
	h.mux.HandleFunc("GET /confirm/{action}", h.confirmPage)
	h.mux.HandleFunc("POST /actions/{action}", h.act)
	h.mux.HandleFunc("GET /events", h.events)
	return h, nil
}

// Run reads the fleet for the live updates while pages listen, until ctx ends.
func (h *Handler) Run(ctx context.Context) error { return h.live.run(ctx) }

// ServeHTTP sets the security headers every response carries and serves r.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	h.mux.ServeHTTP(w, r)
}

// page is what every page's template gets besides its own data.
type page struct {
	Title    string
	Identity string
	// Events is the URL of the event stream this page listens to ("": none).
	Events string
	CSRF   string
	Data   any
}

var tplMu sync.Mutex

func parsePages() (map[string]*template.Template, error) {
	tplMu.Lock()
	defer tplMu.Unlock()
	out := map[string]*template.Template{}
	for _, name := range []string{"fleet", "app", "cluster", "appcluster", "confirm", "done", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/cell.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("ui: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

var funcs = template.FuncMap{
	"short": short,
	"ago":   agoMs,
	"join":  strings.Join,
	"rows": func(first string, rows []statusRow) any {
		return struct {
			First string
			Rows  []statusRow
		}{first, rows}
	},
}

// eventsOf is the URL of the event stream of the view q.
func eventsOf(q query) string { return "/events?" + q.encode() }

// render writes the page name with data; events is the URL of its event stream ("": none).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, code int, name, title, events string, data any) {
	p := page{Title: title, Identity: h.identity(r), Events: events, CSRF: h.csrf.token(w, r), Data: data}
	var b strings.Builder
	if err := h.pages[name].ExecuteTemplate(&b, "layout.html", p); err != nil {
		h.log.Error("dashboard page not rendered", logging.KeyPage, name, logging.Err(err))
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(b.String()))
}

func (h *Handler) identity(r *http.Request) string {
	if h.cfg.Identity != nil {
		if id := h.cfg.Identity(r); id != "" {
			return id
		}
	}
	return "operator certificate (flotilla dashboard)"
}

// fail shows an error page: the backend's message (a gRPC status message, never a Secret
// value: the hub's errors carry none) with the HTTP code that matches its gRPC code.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := http.StatusBadGateway, err.Error()
	if s, ok := status.FromError(err); ok {
		msg = s.Message()
		switch s.Code() {
		case codes.NotFound:
			code = http.StatusNotFound
		case codes.InvalidArgument, codes.FailedPrecondition:
			code = http.StatusBadRequest
		case codes.PermissionDenied, codes.Unauthenticated:
			code = http.StatusForbidden
		}
	}
	var nf notFound
	var bq badQuery
	switch {
	case errors.As(err, &nf):
		code = http.StatusNotFound
	case errors.As(err, &bq):
		code = http.StatusBadRequest
	}
	h.render(w, r, code, "error", "Error", "", msg)
}

// notFound is a page whose subject the hub does not know.
type notFound string

func (n notFound) Error() string { return string(n) }

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

func agoMs(ms int64) string {
	if ms <= 0 {
		return "never"
	}
	d := time.Since(time.UnixMilli(ms)).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}
