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
	"github.com/flotilla-dev/flotilla/shared/logging"
)

type identitySaver interface {
	Save(ctx context.Context, id *identity.Identity) error
}

// Credentials is the agent's current identity. Rotate replaces it before it expires; new
// connections use the new certificate while an open stream keeps its TLS session, so rotation
// never drops the stream.
type Credentials struct {
	mu    sync.RWMutex
	id    *identity.Identity
	store identitySaver
	log   *slog.Logger
}

// NewCredentials wraps the agent's identity; store keeps rotated identities in the cluster.
func NewCredentials(id *identity.Identity, store identitySaver, log *slog.Logger) *Credentials {
	if log == nil {
		log = slog.Default()
	}
	return &Credentials{id: id, store: store, log: log}
}

// Current returns the identity in use.
func (c *Credentials) Current() *identity.Identity {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.id
}

// TLSConfig is the client TLS configuration of the current identity (hubclient Config.TLS).
func (c *Credentials) TLSConfig(serverName string) (*tls.Config, error) {
	return c.Current().TLSConfig(serverName)
}

// renewAt is when a certificate is renewed: two thirds into its validity.
func renewAt(id *identity.Identity) time.Time {
	block, _ := pem.Decode(id.CertPEM)
	if block == nil {
		return time.Now()
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return time.Now()
	}
	return cert.NotBefore.Add(cert.NotAfter.Sub(cert.NotBefore) * 2 / 3)
}

// Rotate renews the certificate two thirds into its validity, with a new key, from any of the
// hub addresses, until ctx ends. A failed renewal is retried with jittered backoff; the
// current certificate stays in use meanwhile.
func (c *Credentials) Rotate(ctx context.Context, addrs []string) error {
	backoff := time.Second
	for {
		wait := time.Until(renewAt(c.Current()))
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
			c.log.Warn("certificate renewal failed; retrying", logging.Err(err), "retryIn", d.Round(time.Millisecond))
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
	keyPEM, csrPEM, err := identity.NewKeyAndCSR()
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
		c.mu.Lock()
		c.id = next
		c.mu.Unlock()
		c.log.Info("agent certificate renewed", "notAfter", next.NotAfter().UTC().Format(time.RFC3339))
		return nil
	}
	return errors.Join(errs...)
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
