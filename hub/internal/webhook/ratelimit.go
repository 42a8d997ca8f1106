package webhook

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Webhook requests each source address may send: RatePerSecond a second on average,
// RateBurst at once. A Git provider sends one request per push; a flood from one address is
// answered with 429 before anything else is done.
const (
	RatePerSecond = 2
	RateBurst     = 20
	// maxAddrs bounds the addresses tracked at once; beyond it new addresses share one limiter.
	maxAddrs = 4096
)

// addrLimiter is a token bucket per source address, in a bounded table.
type addrLimiter struct {
	rate  rate.Limit
	burst int
	max   int

	mu     sync.Mutex
	byAddr map[string]*rate.Limiter
	// overflow is shared by the addresses that find the table full of active ones.
	overflow  *rate.Limiter
	lastSweep time.Time
}

func newAddrLimiter(perSecond float64, burst, maxAddrs int) *addrLimiter {
	return &addrLimiter{
		rate: rate.Limit(perSecond), burst: burst, max: maxAddrs,
		byAddr: map[string]*rate.Limiter{}, overflow: rate.NewLimiter(rate.Limit(perSecond), burst),
	}
}

// allow takes a token for addr; when there is none it returns false and how long until one.
func (l *addrLimiter) allow(addr string) (time.Duration, bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.byAddr[addr]
	if lim == nil {
		if len(l.byAddr) >= l.max {
			l.sweep(now)
		}
		if len(l.byAddr) >= l.max {
			lim = l.overflow
		} else {
			lim = rate.NewLimiter(l.rate, l.burst)
			l.byAddr[addr] = lim
		}
	}
	if lim.AllowN(now, 1) {
		return 0, true
	}
	return time.Duration(float64(time.Second) / float64(l.rate)), false
}

// sweep forgets the addresses whose bucket has filled up again (a new one would be the same),
// at most once a second.
func (l *addrLimiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for addr, lim := range l.byAddr {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.byAddr, addr)
		}
	}
}

// sourceAddr is the rate-limited unit of a request's remote address: its IP, or the /64 of
// an IPv6 address (what one site is usually given). Forwarding headers are not trusted.
func sourceAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
