package main

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Dist is a distribution of durations, in milliseconds.
type Dist struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50Ms"`
	P90   float64 `json:"p90Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
}

func distOf(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) float64 {
		i := int(p*float64(len(s))+0.5) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	return Dist{Count: len(s), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Summary is what a run measured.
type Summary struct {
	Agents    int `json:"agents"`
	Connected int `json:"connected"`
	Welcomes  int `json:"welcomes"`
	Bundles   int `json:"bundles"` // complete, verified bundles received
	Acks      int `json:"acks"`
	Nacks     int `json:"nacks"`
	// Latency is from each delivered bundle's commit time (or the marker) to its ACK.
	Latency Dist `json:"latency"`
	// WelcomeWait is from starting to dial to the hub's Welcome, per session.
	WelcomeWait Dist `json:"welcomeWait"`
}

// WriteText prints the summary for a person.
func (s Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "agents %d  connected %d  welcomes %d  bundles %d  acks %d  nacks %d\n",
		s.Agents, s.Connected, s.Welcomes, s.Bundles, s.Acks, s.Nacks)
	for _, d := range []struct {
		name string
		d    Dist
	}{{"delivery (commit or mark → ACK)", s.Latency}, {"welcome wait (dial → Welcome)", s.WelcomeWait}} {
		fmt.Fprintf(w, "%-32s count %6d  p50 %9.1f ms  p90 %9.1f ms  p99 %9.1f ms  max %9.1f ms\n",
			d.name, d.d.Count, d.d.P50, d.d.P90, d.d.P99, d.d.Max)
	}
}

// recorder collects the figures of every agent.
type recorder struct {
	mu                           sync.Mutex
	latency, welcome             []time.Duration
	bundles, acks, nacks, welcos int
	connected                    int
}

func (r *recorder) add(f func(r *recorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// reset forgets the figures so far (a new measurement starts).
func (r *recorder) reset() {
	r.add(func(r *recorder) {
		r.latency, r.welcome = nil, nil
		r.bundles, r.acks, r.nacks, r.welcos = 0, 0, 0, 0
	})
}

func (r *recorder) summary(agents int) Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Summary{
		Agents: agents, Connected: r.connected, Welcomes: r.welcos, Bundles: r.bundles, Acks: r.acks, Nacks: r.nacks,
		Latency: distOf(r.latency), WelcomeWait: distOf(r.welcome),
	}
}
