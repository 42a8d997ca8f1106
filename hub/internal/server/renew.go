package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Renew issues a new certificate for the caller's cluster, named by its current verified
// certificate only (the interceptor refuses revoked or unknown clusters).
func (s *Server) Renew(ctx context.Context, req *flotillav1.RenewRequest) (*flotillav1.RenewResponse, error) {
	cluster := callerFrom(ctx).Name
	cert, err := s.cfg.CA.SignAgent(req.CsrPem, cluster, s.cfg.AgentCertTTL)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "certificate request: %v", err)
	}
	s.audit("agent:"+cluster, "certificate.renew", cluster, "")
	s.log.Info("agent certificate renewed", logging.KeyCluster, cluster)
	return &flotillav1.RenewResponse{CertificatePem: cert, CaPem: s.cfg.CA.CertPEM()}, nil
}
