package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"

	"filippo.io/age"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// TestJoinRecordsAgeRecipient: the age recipient an agent sends when it joins is listed with
// its cluster; a malformed one is refused.
func TestJoinRecordsAgeRecipient(t *testing.T) {
	h := startHub(t)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t)))
	enroll := flotillav1.NewEnrollmentClient(h.dial(t, nil))
	csr := func() []byte {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	recipient := id.Recipient().String()

	bad, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "edge-bad"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = enroll.Join(ctx, &flotillav1.JoinRequest{Token: bad.JoinToken, CsrPem: csr(), AgeRecipient: "age1nonsense"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("join with a malformed age recipient: %v, want InvalidArgument", err)
	}
	// The token was not spent on the refused request.
	if _, err := enroll.Join(ctx, &flotillav1.JoinRequest{Token: bad.JoinToken, CsrPem: csr()}); err != nil {
		t.Fatalf("join after a refused age recipient: %v", err)
	}

	good, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "edge-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enroll.Join(ctx, &flotillav1.JoinRequest{Token: good.JoinToken, CsrPem: csr(), AgeRecipient: recipient}); err != nil {
		t.Fatal(err)
	}
	list, err := op.ListClusters(ctx, &flotillav1.ListClustersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range list.Items {
		got[c.Name] = c.AgeRecipient
	}
	if got["edge-1"] != recipient || got["edge-bad"] != "" {
		t.Fatalf("age recipients listed %v, want edge-1: %s and none for edge-bad", got, recipient)
	}
}
