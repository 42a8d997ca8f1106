package server

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of RateLimits.
const (
	DefaultAgentMessagesPerSecond = 50
	DefaultAgentBurst             = 200
	// DefaultAgentMaxThrottled is 10s of messages at the default rate.
	DefaultAgentMaxThrottled = 500
)

// RateLimits bound what one agent stream may send the hub. Zero values take the defaults.
type RateLimits struct {
	PerSecond float64 // sustained messages per second
	Burst     int     // messages beyond the rate that pass at once
	// MaxThrottled is how many messages in a row may arrive over the limit (each held until
	// the rate allows it) before the stream is closed with ResourceExhausted.
	MaxThrottled int
}

func (l RateLimits) withDefaults() RateLimits {
	if l.PerSecond <= 0 {
		l.PerSecond = DefaultAgentMessagesPerSecond
	}
	if l.Burst <= 0 {
		l.Burst = DefaultAgentBurst
	}
	if l.MaxThrottled <= 0 {
		l.MaxThrottled = DefaultAgentMaxThrottled
	}
	return l
}

// streamLimiter limits the messages received on one agent stream. Holding the receive loop
// makes gRPC's flow control hold the agent, so a flooding agent is slowed down at its end and
// costs the hub (and the other agents) no more than its rate; one that keeps on is cut off.
type streamLimiter struct {
	limits    RateLimits
	lim       *rate.Limiter
	throttled int // messages in a row that arrived over the limit
}

func newStreamLimiter(l RateLimits) *streamLimiter {
	l = l.withDefaults()
	return &streamLimiter{limits: l, lim: rate.NewLimiter(rate.Limit(l.PerSecond), l.Burst)}
}

// wait admits one received message: at once within the rate and burst, else once the rate
// allows it. Too many messages over the limit in a row end the stream with ResourceExhausted.
func (s *streamLimiter) wait(ctx context.Context) error {
	r := s.lim.Reserve()
	d := r.Delay()
	if d == 0 {
		s.throttled = 0
		return nil
	}
	s.throttled++
	if s.throttled > s.limits.MaxThrottled {
		r.Cancel()
		return toStatus(reword(errTooMuch,
			"agent sent more than %g messages/s (burst %d) for %d messages in a row: slow down", s.limits.PerSecond, s.limits.Burst, s.throttled))
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		r.Cancel()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
