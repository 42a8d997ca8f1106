package hubtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// Report is what a test agent reports for one app once it applied it: its health and
// message and drift, or, with Nack set, a refusal to apply.
type Report struct {
	Health    string
	Message   string
	Drift     []*flotillav1.DriftItem
	Resources []*flotillav1.ResourceStatus
	Events    []*flotillav1.ObjectEvent
	Nack      string
}

// agent stands in for flotilla-agent on the other end of the real agent stream: it
// acknowledges every desired state the hub sends and reports on it as told (reports, per app;
// Healthy without drift for an app it was told nothing of).
type agent struct {
	reports map[string]Report
}

// Enrol redeems a join token as an agent does (a fresh key, a CSR, the agent's age recipient)
// and returns the client certificate the hub issued.
func (h *Hub) Enrol(t *testing.T, token, ageRecipient string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := flotillav1.NewEnrollmentClient(h.Dial(t, nil)).Join(ctx, &flotillav1.JoinRequest{
		Token: token, CsrPem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}),
		AgentVersion: "v1.4.2", AgeRecipient: ageRecipient,
	})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	block, _ := pem.Decode(resp.CertificatePem)
	if block == nil {
		t.Fatal("join: no certificate")
	}
	return &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}
}

// ConnectAgent opens the agent stream with cert and serves it until the test ends.
func (h *Hub) ConnectAgent(t *testing.T, cluster string, cert *tls.Certificate, reports map[string]Report) {
	t.Helper()
	a := &agent{reports: reports}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := flotillav1.NewAgentServiceClient(h.Dial(t, cert)).Connect(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Hello{Hello: &flotillav1.Hello{
		AgentVersion: "v1.4.2", ProtocolVersion: version.Protocol,
	}}}); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(stream) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, io.EOF) && status.Code(err) != codes.Canceled {
			t.Errorf("agent of %s: %v", cluster, err)
		}
	})
}

// serve answers each desired state (in one chunk: the test bundles are small) with an ACK and
// a status report, or a NACK.
func (a *agent) serve(stream flotillav1.AgentService_ConnectClient) error {
	for {
		m, err := stream.Recv()
		if err != nil {
			return err
		}
		d := m.GetDesired()
		if d == nil {
			continue
		}
		r, ok := a.reports[d.App]
		if !ok {
			r = Report{Health: "Healthy"}
		}
		var out []*flotillav1.AgentMessage
		if r.Nack != "" {
			out = append(out, &flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Nack{Nack: &flotillav1.Nack{
				App: d.App, Generation: d.Generation, Error: r.Nack,
			}}})
		} else {
			st := &flotillav1.AppStatus{
				App: d.App, Sync: "Synced", Health: r.Health, Message: r.Message, Generation: d.Generation,
				AppliedRevision: d.Revision, AppliedDigest: d.Digest, Drift: r.Drift, Resources: r.Resources, Events: r.Events,
			}
			if r.Health == "Healthy" {
				st.HealthyRevision = d.Revision
			}
			out = append(out,
				&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Ack{Ack: &flotillav1.Ack{
					App: d.App, Generation: d.Generation, Revision: d.Revision, Digest: d.Digest,
				}}},
				&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: st}})
		}
		for _, msg := range out {
			if err := stream.Send(msg); err != nil {
				return err
			}
		}
	}
}
