package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/pki"
)

type identityKey struct{}

// caller is who made a request, from the verified client certificate only.
type caller struct {
	Role string // pki.RoleAgent, pki.RoleOperator or pki.RoleHub
	Name string // the cluster for agents, the operator's name otherwise
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
		return nil, status.Error(codes.Unauthenticated, "no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, status.Error(codes.Unauthenticated, "a client certificate issued by this hub is required")
	}
	gotRole, name, err := pki.Identity(info.State.VerifiedChains[0][0])
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	if gotRole != role && !peerMayCall(gotRole, fullMethod) {
		return nil, status.Errorf(codes.PermissionDenied, "%s needs a %s certificate", fullMethod, role)
	}
	if role == pki.RoleAgent {
		c, found, err := s.cfg.Store.GetCluster(name)
		if err != nil {
			return nil, status.Error(codes.Unavailable, "cluster registry unavailable")
		}
		if !found {
			return nil, status.Errorf(codes.PermissionDenied, "cluster %q is not registered", name)
		}
		if c.Revoked {
			return nil, status.Errorf(codes.PermissionDenied, "cluster %q is revoked", name)
		}
	}
	return context.WithValue(ctx, identityKey{}, caller{Role: gotRole, Name: name}), nil
}

func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(identityKey{}).(caller)
	return c
}

func (s *Server) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
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
		return err
	}
	return handler(srv, &authedStream{ServerStream: ss, ctx: ctx})
}
