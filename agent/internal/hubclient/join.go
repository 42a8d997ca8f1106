package hubclient

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"google.golang.org/grpc"

	"github.com/flotilla-dev/flotilla/agent/internal/identity"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/jointoken"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// Join enrols the agent with a hub: it verifies the hub against the CA fingerprint the token
// carries, sends the certificate request of the agent's new key (shared/agentkey) with
// the token, and returns the identity the hub issued. The private key never leaves the agent.
// ageRecipient, the public half of the agent's age identity, is recorded in the hub's cluster
// registry for encrypting EncryptedSecrets.
//
// Joining again with the same key and request is safe: the hub accepts a token it spent
// again from the same key for a while, so a join whose reply was lost is retried (see
// JoinRetryable) without burning the token.
func Join(ctx context.Context, addr, token, ageRecipient string, keyPEM, csrPEM []byte) (*identity.Identity, error) {
	tok, err := jointoken.Parse(token)
	if err != nil {
		return nil, fmt.Errorf("join token: %w", err)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("hub address %q: %w", addr, err)
	}
	conn, err := grpc.NewClient(addr, dialOptions(credentials.NewTLS(jointoken.PinnedTLSConfig(tok.CAFingerprint, host)))...)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := flotillav1.NewEnrollmentClient(conn).Join(ctx, &flotillav1.JoinRequest{
		Token: token, CsrPem: csrPEM, AgentVersion: version.Version, AgeRecipient: ageRecipient,
	})
	if err != nil {
		if s, ok := status.FromError(err); ok {
			return nil, &joinError{addr: addr, st: s}
		}
		return nil, fmt.Errorf("join hub %s: %w", addr, err)
	}
	return &identity.Identity{KeyPEM: keyPEM, CertPEM: resp.CertificatePem, CAPEM: resp.CaPem, Cluster: resp.Cluster}, nil
}

// joinError is a hub's answer to a join, its message without the gRPC decoration.
type joinError struct {
	addr string
	st   *status.Status
}

func (e *joinError) Error() string              { return fmt.Sprintf("join hub %s: %s", e.addr, e.st.Message()) }
func (e *joinError) GRPCStatus() *status.Status { return e.st }

// JoinRetryable tells whether a failed Join may succeed when retried with the same request:
// the hub was unreachable or failed, as opposed to refusing the token or the request.
func JoinRetryable(err error) bool {
	s, ok := status.FromError(err)
	if !ok {
		return false // not an answer of the hub: a bad token or address
	}
	switch s.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Internal, codes.ResourceExhausted, codes.Aborted:
		return true
	}
	return false
}
