package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/shared/logging"
)

// maxStream bounds one event stream; the browser's EventSource opens the next one by itself.
const maxStream = 10 * time.Minute

// live reads the fleet every poll while at least one page listens, and sends each listener the
// cells of its page that changed since what it last sent that page (a batch per read), and
// the page's counts when they changed.
type live struct {
	backend  Backend
	poll     time.Duration
	pageSize int
	log      *slog.Logger

	mu   sync.Mutex
	subs map[*listener]struct{}
	wake chan struct{}
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
}

// batch is one event: the cells that changed, the page's counts, the hub's reachability.
type batch struct {
	Cells  []cell  `json:"cells,omitempty"`
	Counts *counts `json:"counts,omitempty"`
	// Hub is "" while the hub answers, else why it does not.
	Hub string `json:"hub"`
}

func newLive(b Backend, poll time.Duration, pageSize int, log *slog.Logger) *live {
	return &live{backend: b, poll: poll, pageSize: pageSize, log: log, subs: map[*listener]struct{}{}, wake: make(chan struct{}, 1)}
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
		subs := l.listeners()
		if len(subs) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		snap, err := read(rctx, l.backend)
		cancel()
		for _, s := range subs {
			l.update(s, snap, err)
		}
	}
}

// update sends s what changed on its page, when its last event was taken; else it keeps
// what it knows, so that the next read sends the changes of both.
func (l *live) update(s *listener, snap *snapshot, err error) {
	b := batch{}
	if err != nil {
		msg := err.Error()
		if st, ok := status.FromError(err); ok {
			msg = st.Message()
		}
		b.Hub = "the hub does not answer: " + msg
		if s.hubDown && s.primed {
			return
		}
		l.send(s, b, nil, s.counts, true)
		return
	}
	v, berr := build(snap, s.q, l.pageSize)
	if berr != nil {
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
	if len(b.Cells) == 0 && b.Counts == nil && !s.hubDown && s.primed {
		return
	}
	l.send(s, b, cells, v.Counts, false)
}

func (l *live) send(s *listener, b batch, cells map[string]*cell, c counts, down bool) {
	data, err := json.Marshal(b)
	if err != nil {
		l.log.Error("dashboard event not encoded", logging.Err(err))
		return
	}
	select {
	case s.out <- data:
	default:
		return // the page has not taken the last one: send the changes of both next time
	}
	for k, c := range cells {
		s.sent[k] = *c
	}
	s.counts, s.hubDown, s.primed = c, down, true
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
