package notify

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/flotilla-dev/flotilla/hub/internal/metrics"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Delivery results, as counted.
const (
	ResultSent    = "sent"
	ResultFailed  = "failed"  // every attempt failed, or the receiver refused it
	ResultDropped = "dropped" // the sink's queue was full
)

// recorder counts deliveries by sink and result. The hub's metrics implement it.
type recorder interface {
	Notification(sink, result string)
}

var _ recorder = (*metrics.Notifications)(nil)

// Log keys.
const (
	keySink    = "sink"
	keyEvent   = "event"
	keyAttempt = "attempt"
)

// Dispatcher delivers notifications to the sinks. Each sink has its own bounded queue and
// worker, so a slow or failing receiver delays only itself; Notify never blocks.
type Dispatcher struct {
	cfg    *Config
	sinks  []*sinkQueue
	rec    recorder
	log    *slog.Logger
	client *http.Client
}

type sinkQueue struct {
	cfg   *SinkConfig
	queue chan Notification
}

// NewDispatcher returns a dispatcher for cfg's sinks; rec may be nil.
func NewDispatcher(cfg *Config, rec recorder, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.Default()
	}
	d := &Dispatcher{cfg: cfg, rec: rec, log: log, client: &http.Client{
		Timeout: time.Duration(cfg.Timeout),
		// A receiver that redirects elsewhere gets nothing more.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	for i := range cfg.Sinks {
		d.sinks = append(d.sinks, &sinkQueue{cfg: &cfg.Sinks[i], queue: make(chan Notification, cfg.QueueSize)})
	}
	return d
}

// Notify queues n for every sink that takes its event. A full queue drops n for that sink.
func (d *Dispatcher) Notify(n Notification) {
	for _, s := range d.sinks {
		if !s.cfg.Wants(n.Event) {
			continue
		}
		select {
		case s.queue <- n:
		default:
			d.count(s.cfg.Name, ResultDropped)
			d.log.Warn("notification dropped: queue full", keySink, s.cfg.Name, keyEvent, n.Event,
				logging.KeyCluster, n.Cluster, logging.KeyApp, n.App)
		}
	}
}

// Run delivers until ctx ends; what is still queued then is dropped.
func (d *Dispatcher) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range d.sinks {
		g.Go(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case n := <-s.queue:
					d.deliver(ctx, s.cfg, n)
				}
			}
		})
	}
	return g.Wait()
}

// deliver sends n to one sink, retrying with jittered exponential backoff, and counts the
// result.
func (d *Dispatcher) deliver(ctx context.Context, s *SinkConfig, n Notification) {
	data, err := body(s.Type, n)
	if err != nil {
		d.count(s.Name, ResultFailed)
		d.log.Warn("notification not encoded", keySink, s.Name, keyEvent, n.Event, logging.Err(err))
		return
	}
	attempt := 1
	for ; ; attempt++ {
		err = post(ctx, d.client, s, data)
		if err == nil {
			d.count(s.Name, ResultSent)
			d.log.Debug("notification sent", keySink, s.Name, keyEvent, n.Event, logging.KeyCluster, n.Cluster, logging.KeyApp, n.App)
			return
		}
		var perm *permanentError
		if errors.As(err, &perm) || attempt >= d.cfg.MaxAttempts || ctx.Err() != nil {
			break
		}
		d.log.Debug("notification delivery failed; retrying", keySink, s.Name, keyEvent, n.Event, keyAttempt, attempt, logging.Err(err))
		t := time.NewTimer(d.backoff(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return // shutting down: not a delivery failure
		case <-t.C:
		}
	}
	if ctx.Err() != nil {
		return
	}
	d.count(s.Name, ResultFailed)
	d.log.Warn("notification not delivered", keySink, s.Name, keyEvent, n.Event, logging.KeyCluster, n.Cluster,
		logging.KeyApp, n.App, keyAttempt, attempt, logging.Err(err))
}

// backoff is the delay after failed attempt n (from 1): RetryBackoff × 2^(n-1), capped at
// MaxBackoff, ±20%.
func (d *Dispatcher) backoff(n int) time.Duration {
	b := float64(d.cfg.RetryBackoff) * float64(uint64(1)<<min(n-1, 30))
	b = min(b, float64(d.cfg.MaxBackoff))
	return time.Duration(b * (0.8 + 0.4*rand.Float64()))
}

func (d *Dispatcher) count(sink, result string) {
	if d.rec != nil {
		d.rec.Notification(sink, result)
	}
}
