package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
)

type identityKey struct{}

// caller is who made a request, from the verified client certificate only.
type caller struct {
	Role string // pki.RoleAgent, pki.RoleOperator or pki.RoleHub
	Name string // the cluster for agents, the operator's name otherwise
	// Expired is how long ago the certificate expired (renewal within the grace only).
	Expired time.Duration
}

// requiredRole is the role each service needs; Enrollment needs none (the join token is the
// credential).
func requiredRole(fullMethod string) string {
	switch {
	case strings.HasPrefix(fullMethod, "/flotilla.v1.Enrollment/"):
		return ""
	case strings.HasPrefix(fullMethod, "/flotilla.v1.AgentService/"):
		return pki.RoleAgent
	case strings.HasPrefix(fullMethod, "/flotilla.v1.Peer/"):
		return pki.RoleHub
	default:
		return pki.RoleOperator
	}
}

func (s *Server) authenticate(ctx context.Context, fullMethod string) (context.Context, error) {
	role := requiredRole(fullMethod)
	if role == "" {
		return ctx, nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, reword(errUnauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil, reword(errUnauthenticated, "a client certificate issued by this hub is required")
	}
	// The handshake verified the chain already (verifyClientChain); verifying again keeps this
	// check independent of the TLS configuration, and costs nothing for a chain verified before.
	now := time.Now()
	if err := s.chains.Verify(info.State.PeerCertificates, now); err != nil {
		return nil, reword(errUnauthenticated, "a client certificate issued by this hub is required")
	}
	leaf := info.State.PeerCertificates[0]
	gotRole, name, err := pki.Identity(leaf)
	if err != nil {
		return nil, reword(errUnauthenticated, "client certificate: %v", err)
	}
	if gotRole != role && !peerMayCall(gotRole, fullMethod) {
		return nil, reword(errDenied, "%s needs a %s certificate", fullMethod, role)
	}
	if role == pki.RoleAgent {
		c, found, err := s.cfg.Store.GetCluster(name)
		if err != nil {
			return nil, reword(err, "cluster registry unavailable")
		}
		if !found {
			return nil, reword(errDenied, "cluster %q is %v", name, store.ErrNotRegistered)
		}
		if c.Revoked {
			return nil, reword(errDenied, "cluster %q is %v", name, store.ErrRevoked)
		}
	}
	if err := s.checkExpiry(leaf, gotRole, name, fullMethod, now); err != nil {
		return nil, err
	}
	return context.WithValue(ctx, identityKey{}, caller{Role: gotRole, Name: name, Expired: pki.Expired(leaf, now)}), nil
}

// renewMethod is the only method an expired certificate may call, within the renewal grace.
const renewMethod = "/flotilla.v1.AgentService/Renew"

// checkExpiry refuses an expired client certificate, except an agent's that renews within
// RenewalGrace of its expiry. (Revocation was checked before and is never waived.)
func (s *Server) checkExpiry(leaf *x509.Certificate, role, name, fullMethod string, now time.Time) error {
	ago := pki.Expired(leaf, now)
	if ago == 0 {
		return nil
	}
	expired := leaf.NotAfter.UTC().Format(time.RFC3339)
	switch {
	case role != pki.RoleAgent:
		return reword(errUnauthenticated, "the client certificate of %q expired at %s", name, expired)
	case ago > s.cfg.RenewalGrace:
		return reword(errUnauthenticated, "the certificate of cluster %q expired at %s, longer ago than the renewal grace of %s: "+
			"enrol the agent again: delete its identity Secret and start it with a new join token (`flotilla token create --cluster %s`)",
			name, expired, s.cfg.RenewalGrace, name)
	case fullMethod != renewMethod:
		return reword(errUnauthenticated, "the certificate of cluster %q expired at %s: the agent must renew it first (accepted until %s after expiry)",
			name, expired, s.cfg.RenewalGrace)
	}
	return nil
}

// verifyClientChain is the TLS handshake's check of a client certificate (tls.Config
// VerifyConnection, also called for a resumed session): its chain must lead to the hub CA, for client authentication, as of
// now or as of its expiry. Expiry itself is judged per method by authenticate, so that an
// agent whose certificate expired while the hubs were away can still renew it, and everyone
// else is told clearly why they are refused.
func (s *Server) verifyClientChain(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return nil // no certificate: Enrollment needs none, authenticate refuses the rest
	}
	// The handshake parsed the certificates already; a chain verified before (the same
	// agent reconnecting) is not verified again (pki.ChainCache).
	return s.chains.Verify(cs.PeerCertificates, time.Now())
}

func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(identityKey{}).(caller)
	return c
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, toStatus(err)
	}
	return handler(ctx, req)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a *authedStream) Context() context.Context { return a.ctx }

func (s *Server) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return toStatus(err)
	}
	return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
}
