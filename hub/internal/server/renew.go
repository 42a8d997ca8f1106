package server

import (
	"context"
	"time"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Renew issues a new certificate for the caller's cluster, named by its current verified
// certificate only (the interceptor refuses revoked or unknown clusters). The certificate may
// have expired up to Config.RenewalGrace ago (checkExpiry): an agent cut off from every hub
// for longer than its certificate lasted renews when it comes back.
func (s *Server) Renew(ctx context.Context, req *flotillav1.RenewRequest) (*flotillav1.RenewResponse, error) {
	c := callerFrom(ctx)
	cluster := c.Name
	cert, err := s.cfg.CA.SignAgent(req.CsrPem, cluster, s.cfg.AgentCertTTL)
	if err != nil {
		return nil, toStatus(invalidArgument("certificate request: %v", err))
	}
	if c.Expired > 0 {
		ago := c.Expired.Round(time.Second)
		s.audit("agent:"+cluster, "certificate.renew", cluster, "expired "+ago.String()+" ago, within the renewal grace")
		s.log.Info("agent certificate renewed after it expired", logging.KeyCluster, cluster, logging.KeyExpiredFor, ago)
	} else {
		s.audit("agent:"+cluster, "certificate.renew", cluster, "")
		s.log.Info("agent certificate renewed", logging.KeyCluster, cluster)
	}
	return &flotillav1.RenewResponse{CertificatePem: cert, CaPem: s.cfg.CA.CertPEM()}, nil
}
