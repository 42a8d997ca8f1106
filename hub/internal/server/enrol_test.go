package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// newKeyAndCSR returns a new key and a PEM certificate request for it.
func newKeyAndCSR(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

// hubWithToken starts a hub, registers cluster through the operator API and returns an
// enrolment client of the hub and the cluster's join token.
func hubWithToken(t *testing.T, cluster string) (flotillav1.EnrollmentClient, string) {
	t.Helper()
	h := startHub(t)
	resp, err := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t))).AddCluster(context.Background(), &flotillav1.AddClusterRequest{Name: cluster})
	if err != nil {
		t.Fatal(err)
	}
	return flotillav1.NewEnrollmentClient(h.dial(t, nil)), resp.JoinToken
}

// TestJoinChecksTheRequestBeforeSpendingTheToken: a join with a broken certificate request is
// refused saying the token was not used, and the token then joins.
func TestJoinChecksTheRequestBeforeSpendingTheToken(t *testing.T) {
	enroll, token := hubWithToken(t, "edge-1")
	ctx := context.Background()
	good := newTestCSR(t)
	block, _ := pem.Decode(good)
	block.Bytes[len(block.Bytes)-1] ^= 1 // breaks the signature
	for name, csr := range map[string][]byte{"garbage": []byte("not a csr"), "bad signature": pem.EncodeToMemory(block)} {
		_, err := enroll.Join(ctx, &flotillav1.JoinRequest{Token: token, CsrPem: csr})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "join token was not used") {
			t.Fatalf("%s: %v, want InvalidArgument saying the token was not used", name, err)
		}
	}
	joined, err := enroll.Join(ctx, &flotillav1.JoinRequest{Token: token, CsrPem: good})
	if err != nil {
		t.Fatalf("join after refused requests: %v", err)
	}
	if joined.Cluster != "edge-1" {
		t.Errorf("joined %q, want edge-1", joined.Cluster)
	}
}

// TestJoinAgainWithTheSameKey: the key that spent a token may join with it again (a lost reply
// or a failure after the spend is retried), and gets a certificate for the same key and
// cluster; another key finds the token used.
func TestJoinAgainWithTheSameKey(t *testing.T) {
	enroll, token := hubWithToken(t, "edge-1")
	ctx := context.Background()
	csr := newTestCSR(t)
	var keys [][]byte
	for i := range 2 {
		joined, err := enroll.Join(ctx, &flotillav1.JoinRequest{Token: token, CsrPem: csr})
		if err != nil {
			t.Fatalf("join %d with the same key: %v", i+1, err)
		}
		block, _ := pem.Decode(joined.CertificatePem)
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if _, name, err := pki.Identity(cert); err != nil || name != "edge-1" {
			t.Fatalf("join %d: certificate for %q, %v", i+1, name, err)
		}
		der, _ := x509.MarshalPKIXPublicKey(cert.PublicKey)
		keys = append(keys, der)
	}
	if string(keys[0]) != string(keys[1]) {
		t.Error("the two certificates are for different keys")
	}
	_, err := enroll.Join(ctx, &flotillav1.JoinRequest{Token: token, CsrPem: newTestCSR(t)})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("join with another key: %v, want PermissionDenied already used", err)
	}
}
