package hubclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flotilla-dev/flotilla/agent/internal/identity"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/agentkey"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

type identitySaver interface {
	Save(ctx context.Context, id *identity.Identity) error
}

var _ identitySaver = (*identity.Store)(nil)

// Credentials is the agent's current identity. Rotate replaces it before it expires; new
// connections use the new certificate while an open stream keeps its TLS session, so rotation
// never drops the stream.
type Credentials struct {
	mu sync.RWMutex
	id *identity.Identity
	// obtained is when id was issued to this process; zero for an identity loaded at start.
	obtained time.Time
	// sessions are the TLS sessions the hubs gave id, to resume on reconnect: a resumed
	// handshake spares the hub a certificate signature and its check of the agent's (a
	// reconnect storm of 10,000 agents is 10,000 handshakes). A new identity starts with none,
	// so a session never carries an older certificate.
	sessions tls.ClientSessionCache
	store    identitySaver
	log      *slog.Logger
}

// NewCredentials wraps the agent's identity; store keeps rotated identities in the cluster.
func NewCredentials(id *identity.Identity, store identitySaver, log *slog.Logger) *Credentials {
	if log == nil {
		log = slog.Default()
	}
	return &Credentials{id: id, store: store, log: log, sessions: newSessionCache()}
}

// newSessionCache holds a TLS session per hub address (one per replica).
func newSessionCache() tls.ClientSessionCache { return tls.NewLRUClientSessionCache(16) }

// Current returns the identity in use.
func (c *Credentials) Current() *identity.Identity {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.id
}

// TLSConfig is the client TLS configuration of the current identity (hubclient Config.TLS).
func (c *Credentials) TLSConfig(serverName string) (*tls.Config, error) {
	c.mu.RLock()
	id, sessions := c.id, c.sessions
	c.mu.RUnlock()
	cfg, err := id.TLSConfig(serverName)
	if err != nil {
		return nil, err
	}
	cfg.ClientSessionCache = sessions
	return cfg, nil
}

// renewAt is when a certificate is renewed: two thirds into its validity, counted from when
// this process obtained it if that is later than its NotBefore (the hub backdates NotBefore
// by a few minutes for clock skew, which would make a short-lived certificate due at once,
// again and again).
func renewAt(id *identity.Identity, obtained time.Time) time.Time {
	block, _ := pem.Decode(id.CertPEM)
	if block == nil {
		return time.Now()
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Now()
	}
	from := cert.NotBefore
	if obtained.After(from) && obtained.Before(cert.NotAfter) {
		from = obtained
	}
	return from.Add(cert.NotAfter.Sub(from) * 2 / 3)
}

// current returns the identity in use and when this process obtained it.
func (c *Credentials) current() (*identity.Identity, time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.id, c.obtained
}

// Rotate renews the certificate two thirds into its validity, with a new key, from any of the
// hub addresses, until ctx ends. A failed renewal is retried with jittered backoff; the
// current certificate stays in use meanwhile. A certificate that expired while every hub was
// out of reach is renewed as soon as one answers: hubs accept that within their
// --agent-cert-renewal-grace, and say when a new join token is needed instead.
func (c *Credentials) Rotate(ctx context.Context, addrs []string) error {
	backoff := time.Second
	for {
		wait := time.Until(renewAt(c.current()))
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		if err := c.renew(ctx, addrs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			d := time.Duration(float64(backoff) * (0.5 + rand.Float64()))
			c.log.Warn("certificate renewal failed; retrying", logging.Err(err), logging.KeyRetryIn, d.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
	}
}

func (c *Credentials) renew(ctx context.Context, addrs []string) error {
	cur := c.Current()
	keyPEM, csrPEM, err := agentkey.New()
	if err != nil {
		return err
	}
	var errs []error
	for _, addr := range addrs {
		resp, err := c.renewAt(ctx, addr, csrPEM)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		next := &identity.Identity{KeyPEM: keyPEM, CertPEM: resp.CertificatePem, CAPEM: resp.CaPem, Cluster: cur.Cluster}
		if _, err := next.TLSConfig("check"); err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = c.store.Save(sctx, next)
		cancel()
		if err != nil {
			return fmt.Errorf("save renewed identity: %w", err)
		}
		c.use(next)
		c.log.Info("agent certificate renewed", logging.KeyNotAfter, next.NotAfter().UTC().Format(time.RFC3339))
		return nil
	}
	return errors.Join(errs...)
}

// use makes next the identity in use, with no TLS sessions yet.
func (c *Credentials) use(next *identity.Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.id, c.obtained, c.sessions = next, time.Now(), newSessionCache()
}

func (c *Credentials) renewAt(ctx context.Context, addr string, csrPEM []byte) (*flotillav1.RenewResponse, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := c.TLSConfig(host)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, dialOptions(credentials.NewTLS(tlsCfg))...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return flotillav1.NewAgentServiceClient(conn).Renew(ctx, &flotillav1.RenewRequest{CsrPem: csrPEM})
}
