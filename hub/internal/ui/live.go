package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/status"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// maxStream bounds one event stream; the browser's EventSource opens the next one by itself.
const maxStream = 10 * time.Minute

// live reads, every poll while pages listen, each distinct page they show (one FleetPage call
// per page however many browsers show it, naming the version last read, so that an unchanged
// page costs the hub's answer "unchanged" and nothing more), and sends each listener the cells
// of its page that changed since what it last sent that page (a batch per read), and the
// page's counts when they changed.
type live struct {
	backend  Backend
	poll     time.Duration
	pageSize int
	log      *slog.Logger
	// panel renders an App page's Rollout panel (nil: no rollout, "").
	panel func(*rolloutView) (string, error)

	mu   sync.Mutex
	subs map[*listener]struct{}
	wake chan struct{}

	// pages are the pages listened to, by their query's encoding: the last view read of each
	// and its version. Only run touches it.
	pages map[string]*watched
}

// watched is the last read of a page some listener shows.
type watched struct {
	q       query
	version string
	view    *fleetView
	err     error
	subs    []*listener
	// For an App page (q.Rollout): its Rollout panel, rendered, made again only when the
	// hub's answer changed (rolloutKey); rolloutSeq counts the changes.
	rolloutKey  string
	rolloutHTML string
	rolloutSeq  int
}

// listener is one page's event stream.
type listener struct {
	q    query
	out  chan []byte
	sent map[string]cell // what the page shows, as far as the stream knows
	// counts last sent; hubDown: whether the page was last told the hub does not answer.
	counts  counts
	hubDown bool
	primed  bool
	// rolloutSeq is the Rollout panel last sent (watched.rolloutSeq).
	rolloutSeq int
}

// batch is one event: the cells that changed, the page's counts, the hub's reachability.
type batch struct {
	Cells  []cell  `json:"cells,omitempty"`
	Counts *counts `json:"counts,omitempty"`
	// Rollout is the App page's Rollout panel, rendered (html/template: everything escaped),
	// when it changed ("": the app has no rollout now).
	Rollout *string `json:"rollout,omitempty"`
	// Hub is "" while the hub answers, else why it does not.
	Hub string `json:"hub"`
}

func newLive(b Backend, poll time.Duration, pageSize int, log *slog.Logger) *live {
	return &live{backend: b, poll: poll, pageSize: pageSize, log: log, subs: map[*listener]struct{}{}, wake: make(chan struct{}, 1),
		pages: map[string]*watched{}}
}

func (l *live) add(q query) *listener {
	s := &listener{q: q, out: make(chan []byte, 1), sent: map[string]cell{}}
	l.mu.Lock()
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return s
}

func (l *live) remove(s *listener) {
	l.mu.Lock()
	delete(l.subs, s)
	l.mu.Unlock()
}

func (l *live) listeners() []*listener {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*listener, 0, len(l.subs))
	for s := range l.subs {
		out = append(out, s)
	}
	return out
}

// run polls while there are listeners, until ctx ends.
func (l *live) run(ctx context.Context) error {
	t := time.NewTicker(l.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-l.wake:
		}
		l.read(ctx, l.listeners())
	}
}

// read reads each page subs show, at most four at once, and updates the listeners of each.
func (l *live) read(ctx context.Context, subs []*listener) {
	pages := map[string]*watched{}
	for _, s := range subs {
		k := s.q.encode()
		w := pages[k]
		if w == nil {
			if w = l.pages[k]; w == nil {
				w = &watched{q: s.q}
			}
			w.subs = nil
			pages[k] = w
		}
		w.subs = append(w.subs, s)
	}
	l.pages = pages // the pages nobody shows any more are forgotten
	var g errgroup.Group
	g.SetLimit(4)
	for _, w := range pages {
		g.Go(func() error {
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			resp, err := l.backend.FleetPage(rctx, w.q.request(l.pageSize, w.version))
			if w.q.Rollout {
				l.readRollout(rctx, w)
			}
			w.err = err
			switch {
			case err != nil:
				w.version = "" // read it whole once the hub answers again
			case !resp.Unchanged || w.view == nil:
				w.version, w.view = resp.Version, viewOf(resp, w.q, "")
			}
			for _, s := range w.subs {
				l.update(s, w)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// readRollout reads the Rollout panel of w, an App page, and renders it again when the hub's
// answer changed.
func (l *live) readRollout(ctx context.Context, w *watched) {
	resp, err := l.backend.RolloutStatus(ctx, &flotillav1.RolloutStatusRequest{App: w.q.App})
	key := rolloutKey(resp, err)
	if key == w.rolloutKey && w.rolloutSeq > 0 {
		return
	}
	html := ""
	if v := rolloutViewOf(w.q.App, resp, err); v != nil && l.panel != nil {
		var rerr error
		if html, rerr = l.panel(v); rerr != nil {
			l.log.Error("dashboard rollout panel not rendered", logging.KeyApp, w.q.App, logging.Err(rerr))
			return
		}
	}
	changed := html != w.rolloutHTML || w.rolloutSeq == 0
	w.rolloutKey, w.rolloutHTML = key, html
	if changed { // an answer that renders the same panel sends nothing
		w.rolloutSeq++
	}
}

// update sends s what changed on its page (w), when its last event was taken; else it keeps
// what it knows, so that the next read sends the changes of both.
func (l *live) update(s *listener, w *watched) {
	v, err := w.view, w.err
	b := batch{}
	if err != nil || v == nil {
		msg := "no answer yet"
		if err != nil {
			msg = err.Error()
			if st, ok := status.FromError(err); ok {
				msg = st.Message()
			}
		}
		b.Hub = "the hub does not answer: " + msg
		if s.hubDown && s.primed {
			return
		}
		l.send(s, b, nil, s.counts, true)
		return
	}
	cells := v.cells()
	for k, c := range cells {
		if old, ok := s.sent[k]; !ok || old != *c {
			b.Cells = append(b.Cells, *c)
		}
	}
	if v.Counts != s.counts || !s.primed {
		b.Counts = &v.Counts
	}
	if w.q.Rollout && w.rolloutSeq != s.rolloutSeq {
		html := w.rolloutHTML
		b.Rollout = &html
	}
	if len(b.Cells) == 0 && b.Counts == nil && b.Rollout == nil && !s.hubDown && s.primed {
		return
	}
	if l.send(s, b, cells, v.Counts, false) {
		s.rolloutSeq = w.rolloutSeq
	}
}

// send hands b to s's page and reports whether it was taken.
func (l *live) send(s *listener, b batch, cells map[string]*cell, c counts, down bool) bool {
	data, err := json.Marshal(b)
	if err != nil {
		l.log.Error("dashboard event not encoded", logging.Err(err))
		return false
	}
	select {
	case s.out <- data:
	default:
		return false // the page has not taken the last one: send the changes of both next time
	}
	for k, c := range cells {
		s.sent[k] = *c
	}
	s.counts, s.hubDown, s.primed = c, down, true
	return true
}

// events is the server-sent event stream of a page: /events?<the page's query>.
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Now().Add(maxStream + time.Minute)); err != nil {
		http.Error(w, "streaming is not supported here", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
		return
	}
	_ = rc.Flush()
	s := h.live.add(parseQuery(r.URL.Query()))
	defer h.live.remove(s)
	ctx, cancel := context.WithTimeout(r.Context(), maxStream)
	defer cancel()
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keep.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case data := <-s.out:
			if _, err := fmt.Fprintf(w, "event: fleet\ndata: %s\n\n", data); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}
