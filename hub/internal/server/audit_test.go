package server

import (
	"context"
	"strings"
	"testing"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// TestOperatorActionsAreAudited: every operator action lands in the audit log with the
// operator's certificate name as the actor.
func TestOperatorActionsAreAudited(t *testing.T) {
	h := startHub(t)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t)))
	if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "edge-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.CreateToken(ctx, &flotillav1.CreateTokenRequest{Cluster: "edge-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := op.RevokeCluster(ctx, &flotillav1.RevokeClusterRequest{Name: "edge-1"}); err != nil {
		t.Fatal(err)
	}
	recs, err := h.store.ListAudit(0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Actor+" "+r.Action+" "+r.Target)
	}
	for _, want := range []string{"admin cluster.add edge-1", "admin token.create edge-1", "admin cluster.revoke edge-1"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("audit log lacks %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
}
