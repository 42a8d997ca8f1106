package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// expiredAgentCert is an agent certificate of cluster that expired ago (issued an hour
// before that, by the hub's CA).
func (h *hubUnderTest) expiredAgentCert(t *testing.T, cluster string, ago time.Duration) *tls.Certificate {
	t.Helper()
	key, csr := newKeyAndCSR(t)
	issued := time.Now().Add(-ago - time.Minute)
	certPEM, err := h.ca.WithClock(func() time.Time { return issued }).SignAgent(csr, cluster, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	return &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}
}

// TestRenewAfterExpiryWithinGrace drives real gRPC over TLS: an agent whose certificate
// expired while the hub was away renews it within the grace window and then streams with the
// new one; the expired certificate itself opens no stream; beyond the grace, or for a revoked
// cluster, renewal is refused saying what to do.
func TestRenewAfterExpiryWithinGrace(t *testing.T) {
	h, srv := newHubUnderTest(t, RateLimits{})
	srv.cfg.RenewalGrace = 2 * time.Minute
	h.serve(t, srv)
	h.register(t, "c1")
	h.register(t, "gone")
	ctx := context.Background()

	recent := h.dial(t, h.expiredAgentCert(t, "c1", 30*time.Second))
	stream, err := flotillav1.NewAgentServiceClient(recent).Connect(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "must renew it first") {
		t.Fatalf("stream with an expired certificate: %v, want Unauthenticated asking to renew first", err)
	}
	key, csr := newKeyAndCSR(t)
	resp, err := flotillav1.NewAgentServiceClient(recent).Renew(ctx, &flotillav1.RenewRequest{CsrPem: csr})
	if err != nil {
		t.Fatalf("renewal 30s after expiry, grace 2m: %v", err)
	}
	block, _ := pem.Decode(resp.CertificatePem)
	renewed, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Subject.CommonName != "c1" || !renewed.NotAfter.After(time.Now().Add(time.Hour)) {
		t.Errorf("renewed certificate for %q until %s, want c1 for the hub's TTL", renewed.Subject.CommonName, renewed.NotAfter)
	}
	connect(t, h.dial(t, &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key})) // Hello, Welcome

	// Operators (and replicas) get no grace at all.
	adminPEM, adminKey, err := h.ca.WithClock(func() time.Time { return time.Now().Add(-2 * time.Minute) }).IssueAdmin("admin", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := tls.X509KeyPair(adminPEM, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = flotillav1.NewOperatorClient(h.dial(t, &admin)).Status(ctx, &flotillav1.StatusRequest{})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("operator call with an expired certificate: %v, want Unauthenticated expired", err)
	}

	old := flotillav1.NewAgentServiceClient(h.dial(t, h.expiredAgentCert(t, "c1", 3*time.Minute)))
	_, err = old.Renew(ctx, &flotillav1.RenewRequest{CsrPem: newTestCSR(t)})
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "renewal grace of 2m0s") || !strings.Contains(err.Error(), "flotilla token create --cluster c1") {
		t.Fatalf("renewal 3m after expiry, grace 2m: %v, want Unauthenticated naming the grace and a new join token", err)
	}

	revoked := flotillav1.NewAgentServiceClient(h.dial(t, h.expiredAgentCert(t, "gone", 30*time.Second)))
	if _, err := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t))).RevokeCluster(ctx, &flotillav1.RevokeClusterRequest{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	_, err = revoked.Renew(ctx, &flotillav1.RenewRequest{CsrPem: newTestCSR(t)})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("renewal of a revoked cluster within the grace: %v, want PermissionDenied revoked", err)
	}
}
