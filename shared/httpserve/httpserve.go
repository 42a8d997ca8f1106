// Package httpserve builds the plain HTTP servers of both binaries (health, metrics, webhooks)
// with every time and size bound set, so a slow or stalled client (slow-loris) holds a
// connection for seconds, not for ever.
package httpserve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// Timeouts bound one connection. Zero values take the defaults.
type Timeouts struct {
	// Header is the time to read a request's headers.
	Header time.Duration
	// Read is the time to read a whole request, body included.
	Read time.Duration
	// Write is the time to write a response, from the end of the request's headers.
	Write time.Duration
	// Idle is how long a kept-alive connection may wait for its next request.
	Idle time.Duration
}

// Defaults of Timeouts, and the largest request header accepted.
const (
	DefaultHeaderTimeout = 5 * time.Second
	DefaultReadTimeout   = 30 * time.Second
	DefaultWriteTimeout  = 30 * time.Second
	DefaultIdleTimeout   = 2 * time.Minute
	MaxHeaderBytes       = 64 << 10
)

func (t Timeouts) withDefaults() Timeouts {
	if t.Header <= 0 {
		t.Header = DefaultHeaderTimeout
	}
	if t.Read <= 0 {
		t.Read = DefaultReadTimeout
	}
	if t.Write <= 0 {
		t.Write = DefaultWriteTimeout
	}
	if t.Idle <= 0 {
		t.Idle = DefaultIdleTimeout
	}
	return t
}

// New returns a server for h with the timeouts t and MaxHeaderBytes.
func New(h http.Handler, t Timeouts) *http.Server {
	t = t.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.Header,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// Serve serves srv on l until ctx ends, then shuts it down (waiting at most five seconds
// for requests in flight).
func Serve(ctx context.Context, srv *http.Server, l net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
