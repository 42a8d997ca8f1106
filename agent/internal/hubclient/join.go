package hubclient

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"google.golang.org/grpc"

	"github.com/flotilla-dev/flotilla/agent/internal/identity"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/jointoken"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// Join enrols the agent with a hub: it verifies the hub against the CA fingerprint the token
// carries, sends a fresh key's CSR with the token, and returns the identity the hub issued.
// The private key never leaves the agent. ageRecipient, the public half of the agent's age
// identity, is recorded in the hub's cluster registry for encrypting EncryptedSecrets.
func Join(ctx context.Context, addr, token, ageRecipient string) (*identity.Identity, error) {
	tok, err := jointoken.Parse(token)
	if err != nil {
		return nil, fmt.Errorf("join token: %w", err)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("hub address %q: %w", addr, err)
	}
	keyPEM, csrPEM, err := identity.NewKeyAndCSR()
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("join hub %s: %s", addr, s.Message())
		}
		return nil, fmt.Errorf("join hub %s: %w", addr, err)
	}
	return &identity.Identity{KeyPEM: keyPEM, CertPEM: resp.CertificatePem, CAPEM: resp.CaPem, Cluster: resp.Cluster}, nil
}
