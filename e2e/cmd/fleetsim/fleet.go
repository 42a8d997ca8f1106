package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// fleet is the simulated agents of one run and what they share: the mode, the marker, the
// storm signal and the recorder.
type fleet struct {
	opts *RunOptions
	log  *slog.Logger
	rec  recorder

	modeV   atomic.Value // string
	markerV atomic.Int64 // unix nanoseconds; 0: none

	stormMu sync.Mutex
	storm   chan struct{} // closed to make every session reconnect
}

func (f *fleet) mode() string { return f.modeV.Load().(string) }

func (f *fleet) marker() time.Time {
	if n := f.markerV.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

func (f *fleet) stormChan() <-chan struct{} {
	f.stormMu.Lock()
	defer f.stormMu.Unlock()
	return f.storm
}

// reconnectAll ends every session at once; each agent reconnects at once.
func (f *fleet) reconnectAll() {
	f.stormMu.Lock()
	defer f.stormMu.Unlock()
	close(f.storm)
	f.storm = make(chan struct{})
}

// Run runs the agents prepared in o.Dir until ctx ends and returns what they measured.
func Run(ctx context.Context, o *RunOptions, log *slog.Logger) (Summary, error) {
	agents, err := loadAgents(o)
	if err != nil {
		return Summary{}, err
	}
	f := &fleet{opts: o, log: log, storm: make(chan struct{})}
	f.modeV.Store(o.Mode)
	for _, a := range agents {
		a.sim = f
	}
	g, gctx := errgroup.WithContext(ctx)
	if o.Control != "" {
		ln, err := net.Listen("tcp", o.Control)
		if err != nil {
			return Summary{}, fmt.Errorf("control endpoint: %w", err)
		}
		if o.ControlOut != "" {
			if err := os.WriteFile(o.ControlOut, []byte(ln.Addr().String()), 0o600); err != nil {
				return Summary{}, err
			}
		}
		srv := &http.Server{Handler: f.control(len(agents)), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			<-gctx.Done()
			return srv.Close()
		})
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	log.Info("starting simulated agents", logging.KeyCount, len(agents), logging.KeyAddr, o.Hub)
	dials := make(chan struct{}, o.Dials)
	for _, a := range agents {
		dials <- struct{}{}
		first := make(chan struct{})
		g.Go(func() error { a.run(gctx, first); return nil })
		g.Go(func() error {
			<-first
			<-dials
			return nil
		})
	}
	err = g.Wait()
	return f.rec.summary(len(agents)), err
}

// control serves the control endpoint.
func (f *fleet) control(agents int) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(f.rec.summary(agents))
	})
	mux.HandleFunc("POST /mode", func(w http.ResponseWriter, r *http.Request) {
		m := r.URL.Query().Get("set")
		if !validMode(m) {
			http.Error(w, "set=ack|nack|silent", http.StatusBadRequest)
			return
		}
		f.modeV.Store(m)
	})
	mux.HandleFunc("POST /mark", func(http.ResponseWriter, *http.Request) {
		f.rec.reset()
		f.markerV.Store(time.Now().UnixNano())
	})
	mux.HandleFunc("POST /reset", func(http.ResponseWriter, *http.Request) {
		f.rec.reset()
		f.markerV.Store(0)
	})
	mux.HandleFunc("POST /storm", func(http.ResponseWriter, *http.Request) {
		f.rec.reset()
		f.reconnectAll()
	})
	return mux
}

// loadAgents reads the identities `fleetsim prepare` saved, in name order.
func loadAgents(o *RunOptions) ([]*agent, error) {
	caPEM, err := os.ReadFile(filepath.Join(o.Dir, caFile))
	if err != nil {
		return nil, fmt.Errorf("prepared identities: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("hub ca: no PEM certificate")
	}
	certs, err := filepath.Glob(filepath.Join(o.Dir, "*"+certExt))
	if err != nil {
		return nil, err
	}
	certs = slices.DeleteFunc(certs, func(p string) bool { return filepath.Base(p) == caFile })
	slices.Sort(certs)
	if o.Count > 0 && o.Count < len(certs) {
		certs = certs[:o.Count]
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no identities in %s: run fleetsim prepare", o.Dir)
	}
	var out []*agent
	for _, c := range certs {
		name := strings.TrimSuffix(filepath.Base(c), certExt)
		pair, err := tls.LoadX509KeyPair(c, strings.TrimSuffix(c, certExt)+keyExt)
		if err != nil {
			return nil, fmt.Errorf("identity of %s: %w", name, err)
		}
		out = append(out, &agent{
			name: name, addr: o.Hub, held: map[string]*flotillav1.HeldApp{},
			// Its own TLS session cache, as the agent keeps one (hubclient.Credentials): a
			// reconnect resumes the session.
			tls: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, Certificates: []tls.Certificate{pair},
				ClientSessionCache: tls.NewLRUClientSessionCache(1)},
		})
	}
	return out, nil
}
