package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/jointoken"
)

// TestTokenTTLBounds: a join token lifetime below a second, negative or above the maximum is
// refused, naming it, before anything is registered; none given is the default (an hour).
func TestTokenTTLBounds(t *testing.T) {
	h := startHub(t)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t)))
	for _, secs := range []int64{-1, -3600, int64(jointoken.MaxTTL/time.Second) + 1, 1 << 62} {
		_, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "edge-1", TokenTtlSeconds: secs})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("AddCluster with ttl %ds: %v, want InvalidArgument naming the ttl", secs, err)
		}
		if _, found, _ := h.store.GetCluster("edge-1"); found {
			t.Fatalf("AddCluster with ttl %ds registered the cluster", secs)
		}
	}
	before := time.Now()
	resp, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "edge-1"})
	if err != nil {
		t.Fatal(err)
	}
	if exp := time.UnixMilli(resp.ExpiresUnixMs); exp.Before(before.Add(time.Hour-time.Second)) || exp.After(time.Now().Add(time.Hour)) {
		t.Errorf("default token expires at %s, want an hour from %s", exp, before)
	}
	for _, secs := range []int64{-1, int64(jointoken.MaxTTL/time.Second) + 1} {
		_, err := op.CreateToken(ctx, &flotillav1.CreateTokenRequest{Cluster: "edge-1", TtlSeconds: secs})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("CreateToken with ttl %ds: %v, want InvalidArgument naming the ttl", secs, err)
		}
	}
	resp2, err := op.CreateToken(ctx, &flotillav1.CreateTokenRequest{Cluster: "edge-1", TtlSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if exp := time.UnixMilli(resp2.ExpiresUnixMs); exp.After(time.Now().Add(2 * time.Second)) {
		t.Errorf("a 1s token expires at %s, more than a second from now", exp)
	}
}
