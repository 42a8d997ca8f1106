package server

import (
	"slices"

	"github.com/flotilla-dev/flotilla/shared/testwait"

	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/version"
)

type hubUnderTest struct {
	ca    *pki.CA
	store *store.Store
	fleet *fleet.Fleet
	lis   *bufconn.Listener
}

func startHub(t testing.TB) *hubUnderTest {
	t.Helper()
	return startHubLimited(t, RateLimits{})
}

// startHubLimited starts a hub on an in-memory listener with the given agent stream limits
// (zero: the defaults).
func startHubLimited(t testing.TB, limits RateLimits) *hubUnderTest {
	t.Helper()
	h, srv := newHubUnderTest(t, limits)
	h.serve(t, srv)
	return h
}

// serve serves srv on h's listener until the test ends.
func (h *hubUnderTest) serve(t testing.TB, srv *Server) {
	t.Helper()
	gs := srv.GRPCServer()
	go func() { _ = gs.Serve(h.lis) }()
	t.Cleanup(gs.Stop)
}

// newHubUnderTest builds a hub on an in-memory listener, not yet serving.
func newHubUnderTest(t testing.TB, limits RateLimits) (*hubUnderTest, *Server) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.ServingCert(dir, []string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "flotilla.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &hubUnderTest{ca: ca, store: st, fleet: fleet.New(time.Minute), lis: bufconn.Listen(256 << 10)}
	srv := New(Config{Fleet: h.fleet, Store: st, Pins: st, Replication: st, CA: ca, Serving: serving, Heartbeat: time.Hour, HubVersion: "test",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), AgentLimits: limits})
	return h, srv
}

// TestStopEndsAgentStreamsCleanly: a stopping hub ends its agents' streams itself (the agents
// see the hub cancel the stream, not a connection torn down by a forced stop, which they would
// see as Unavailable), so its graceful stop does not wait for them.
func TestStopEndsAgentStreamsCleanly(t *testing.T) {
	h, srv := newHubUnderTest(t, RateLimits{})
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, h.lis) }()
	h.register(t, "c1")
	stream, first := hello(t, h.dial(t, h.agentCert(t, "c1")))
	if first.GetWelcome() == nil {
		t.Fatalf("first message = %v, want Welcome", first)
	}
	stop()
	endedByTheHub(t, "the stream", stream)
	if err := <-served; err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

// TestAnIdleStreamHoldsOneGoroutine: an idle agent's stream holds one goroutine of the hub's
// own, its handler receiving; what goes to the agent (here its heartbeats, each on time) is
// sent by a goroutine that runs only while there is something to send.
func TestAnIdleStreamHoldsOneGoroutine(t *testing.T) {
	h, srv := newHubUnderTest(t, RateLimits{})
	srv.cfg.Heartbeat = 50 * time.Millisecond
	h.serve(t, srv)
	const agents = 8
	for i := range agents {
		name := fmt.Sprintf("c%d", i)
		h.register(t, name)
		stream := connect(t, h.dial(t, h.agentCert(t, name)))
		for beats := 0; beats < 3; {
			m, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if m.GetHeartbeat() != nil {
				beats++
			}
		}
	}
	// The hub's goroutines: those running a method of the Server or of an outbox.
	ours := func() int {
		var b strings.Builder
		if err := pprof.Lookup("goroutine").WriteTo(&b, 2); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, g := range strings.Split(b.String(), "\n\n") {
			if strings.Contains(g, "hub/internal/server.(*Server).") || strings.Contains(g, "hub/internal/server.(*outbox).") {
				n++
			}
		}
		return n
	}
	// Between two heartbeats the senders are gone (polled: one may be sending just then).
	testwait.Until(t, 10*time.Second, fmt.Sprintf("%d goroutines of the hub's for %d idle streams", agents, agents), func() bool {
		return ours() == agents
	})
}

// TestANewerStreamReplacesTheOlder: one stream per cluster. An agent that connects again
// (its old connection not yet seen dead) gets the desired state on the new stream; the hub
// ends the old one, and its end does not mark the cluster disconnected.
func TestANewerStreamReplacesTheOlder(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	cert := h.agentCert(t, "c1")
	older := connect(t, h.dial(t, cert))
	newer := connect(t, h.dial(t, cert))
	endedByTheHub(t, "the older stream", older)
	h.fleet.SetDesired(fleet.Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: configMapBundle(t, "api", "x")})
	for {
		m, err := newer.Recv()
		if err != nil {
			t.Fatalf("the newer stream: %v", err)
		}
		if d := m.GetDesired(); d != nil {
			if d.App != "api" {
				t.Fatalf("desired %s, want api", d.App)
			}
			break
		}
	}
	if p, _ := h.fleet.Presence("c1"); !p.Connected {
		t.Fatalf("c1 after its older stream ended: %+v, want connected", p)
	}
}

// endedByTheHub reads stream to its end, which must be the hub's: Canceled (a connection torn
// down would be Unavailable). Messages sent before it are skipped.
func endedByTheHub(t *testing.T, what string, stream flotillav1.AgentService_ConnectClient) {
	t.Helper()
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Canceled {
			t.Fatalf("%s ended with %v, want the hub's end of it (Canceled)", what, err)
		}
		return
	}
}

// dial connects with the given client certificate (none when cert is nil).
func (h *hubUnderTest) dial(t testing.TB, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient("passthrough:///localhost",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return h.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func (h *hubUnderTest) agentCert(t testing.TB, cluster string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := h.ca.SignAgent(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr}), cluster, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	return &tls.Certificate{Certificate: [][]byte{block.Bytes}, PrivateKey: key}
}

func (h *hubUnderTest) adminCert(t testing.TB) *tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := h.ca.IssueAdmin("admin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

func (h *hubUnderTest) register(t testing.TB, name string) {
	t.Helper()
	if err := h.store.PutCluster(store.Cluster{Name: name, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
}

func configMapBundle(t testing.TB, name, data string) *bundle.Bundle {
	t.Helper()
	b, err := bundle.New([]*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name},
		"data": map[string]any{"blob": data},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// connect opens the agent stream and completes Hello/Welcome.
func connect(t testing.TB, conn *grpc.ClientConn, held ...*flotillav1.HeldApp) flotillav1.AgentService_ConnectClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := flotillav1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Hello{Hello: &flotillav1.Hello{
		AgentVersion: "test", ProtocolVersion: version.Protocol, Apps: held,
	}}}); err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if m.GetWelcome() == nil {
		t.Fatalf("first message %v, want Welcome", m)
	}
	return stream
}

// TestCertificatesOfAnotherCAAreRefused: a client certificate the hub CA did not sign is
// refused in the TLS handshake, for an agent of a registered cluster and for an operator alike,
// whatever names it carries.
func TestCertificatesOfAnotherCAAreRefused(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	other, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	forged := &hubUnderTest{ca: other}
	agent, admin := forged.agentCert(t, "c1"), forged.adminCert(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stream, err := flotillav1.NewAgentServiceClient(h.dial(t, agent)).Connect(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	// The handshake fails (Unavailable: "bad certificate", or the pipe the hub closed), before
	// any method could answer Unauthenticated.
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("agent stream with a certificate of another CA: %v, want the handshake refused", err)
	}
	_, err = flotillav1.NewOperatorClient(h.dial(t, admin)).Status(ctx, &flotillav1.StatusRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("operator call with a certificate of another CA: %v, want the handshake refused", err)
	}
	// The hub's own certificates still pass on the same listener.
	if _, err := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t))).Status(ctx, &flotillav1.StatusRequest{}); err != nil {
		t.Fatalf("operator call with the hub's certificate: %v", err)
	}
}

// TestClientsResumeTLSSessions: a client that kept the session of its last connection resumes
// it on the next (no certificate signature or check on either side), and is still known by the
// certificate it first presented, its chain and role checked on each call as before.
func TestClientsResumeTLSSessions(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	// statusWith calls Status on a new connection with cert, keeping sessions; it returns
	// whether the connection resumed a session, and the call's error.
	statusWith := func(cert *tls.Certificate, sessions tls.ClientSessionCache) (bool, error) {
		t.Helper()
		cfg := &tls.Config{RootCAs: h.ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS13,
			Certificates: []tls.Certificate{*cert}, ClientSessionCache: sessions}
		conn, err := grpc.NewClient("passthrough:///localhost",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return h.lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var p peer.Peer
		_, err = flotillav1.NewOperatorClient(conn).Status(context.Background(), &flotillav1.StatusRequest{}, grpc.Peer(&p))
		info, ok := p.AuthInfo.(credentials.TLSInfo)
		return ok && info.State.DidResume, err
	}
	admin, agent := h.adminCert(t), h.agentCert(t, "c1")
	adminSessions, agentSessions := tls.NewLRUClientSessionCache(4), tls.NewLRUClientSessionCache(4)
	for i, want := range []bool{false, true} {
		resumed, err := statusWith(admin, adminSessions)
		if err != nil || resumed != want {
			t.Fatalf("operator, connection %d: resumed %v, %v; want resumed %v and an answer", i+1, resumed, err, want)
		}
		// Resumed, an agent's certificate is still refused for operator calls.
		resumed, err = statusWith(agent, agentSessions)
		if status.Code(err) != codes.PermissionDenied || resumed != want {
			t.Fatalf("agent, connection %d: resumed %v, %v; want resumed %v and PermissionDenied", i+1, resumed, err, want)
		}
	}
}

func TestIdentityIsRequired(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	ctx := context.Background()

	_, err := flotillav1.NewOperatorClient(h.dial(t, nil)).Status(ctx, &flotillav1.StatusRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("operator call without certificate: %v, want Unauthenticated", err)
	}
	_, err = flotillav1.NewOperatorClient(h.dial(t, h.agentCert(t, "c1"))).Status(ctx, &flotillav1.StatusRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("operator call with an agent certificate: %v, want PermissionDenied", err)
	}
	stream, err := flotillav1.NewAgentServiceClient(h.dial(t, h.agentCert(t, "unknown"))).Connect(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("stream for an unregistered cluster: %v, want PermissionDenied", err)
	}
	stream, err = flotillav1.NewAgentServiceClient(h.dial(t, h.adminCert(t))).Connect(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("agent stream with an operator certificate: %v, want PermissionDenied", err)
	}
}

func TestJoinTokenIsSingleUse(t *testing.T) {
	h := startHub(t)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t)))
	resp, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "edge-1", Labels: map[string]string{"env": "staging"}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "other-cluster"}}, key)
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})
	enroll := flotillav1.NewEnrollmentClient(h.dial(t, nil))
	joined, err := enroll.Join(ctx, &flotillav1.JoinRequest{Token: resp.JoinToken, CsrPem: csr})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(joined.CertificatePem)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if role, name, err := pki.Identity(cert); err != nil || role != pki.RoleAgent || name != "edge-1" || joined.Cluster != "edge-1" {
		t.Fatalf("issued identity = %s %s %v (cluster %q), want the token's cluster edge-1", role, name, err, joined.Cluster)
	}
	// Replayed with another key (the same key may join again for a while: enrol_test.go).
	_, err = enroll.Join(ctx, &flotillav1.JoinRequest{Token: resp.JoinToken, CsrPem: newTestCSR(t)})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("replayed token: %v, want PermissionDenied already used", err)
	}
	if strings.Contains(err.Error(), resp.JoinToken) {
		t.Fatal("the error repeats the token")
	}
}

func TestStreamSendsOnlyOwnClusterAndOnlyDifferences(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	h.register(t, "c2")
	held := configMapBundle(t, "held", "x")
	h.fleet.SetDesired(fleet.Desired{Cluster: "c1", App: "kept", Revision: "r1", Bundle: held})
	h.fleet.SetDesired(fleet.Desired{Cluster: "c2", App: "other", Revision: "r1", Bundle: configMapBundle(t, "secret-of-c2", "y")})

	// The agent already holds "kept" at the desired digest: nothing is sent for it. It also
	// says it holds "other" (desired on c2 only), so it may report on it.
	stream := connect(t, h.dial(t, h.agentCert(t, "c1")), &flotillav1.HeldApp{App: "kept", Generation: 4, Revision: "r1", Digest: held.Digest},
		&flotillav1.HeldApp{App: "other", Generation: 1, Revision: "r0", Digest: "sha256:old"})
	fresh := configMapBundle(t, "fresh", "z")
	h.fleet.SetDesired(fleet.Desired{Cluster: "c1", App: "new", Revision: "r2", Bundle: fresh, DependsOn: []string{"kept"}})
	m, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	d := m.GetDesired()
	if d == nil || d.App != "new" || d.Digest != fresh.Digest || d.Generation != 1 || !slices.Equal(d.DependsOn, []string{"kept"}) {
		t.Fatalf("first message = %v, want Desired for app new only, depending on kept", m)
	}

	// ACK and status land on the stream's cluster, whatever the message says.
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Ack{Ack: &flotillav1.Ack{App: "new", Generation: 1, Revision: "r2", Digest: fresh.Digest}}}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: &flotillav1.AppStatus{App: "other", Sync: "Synced", Health: "Healthy"}}}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "condition", func() bool {
		for _, r := range h.fleet.Rows() {
			if r.Cluster == "c1" && r.App == "new" && r.AppliedRevision == "r2" {
				return true
			}
		}
		return false
	})
	testwait.Until(t, 10*time.Second, "condition", func() bool {
		for _, r := range h.fleet.Rows() {
			if r.App == "other" && r.Cluster == "c1" {
				return true
			}
		}
		return false
	})
	for _, r := range h.fleet.Rows() {
		if r.Cluster == "c2" && r.Health != fleet.HealthUnknown {
			t.Fatalf("c1's agent changed c2's status: %+v", r)
		}
	}
}

func TestLargeBundleIsChunked(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	noise := make([]byte, 3<<20)
	_, _ = rand.Read(noise)
	big := configMapBundle(t, "big", string(pemLike(noise)))
	h.fleet.SetDesired(fleet.Desired{Cluster: "c1", App: "big", Revision: "r1", Bundle: big})
	stream := connect(t, h.dial(t, h.agentCert(t, "c1")))
	var chunks [][]byte
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		d := m.GetDesired()
		if d == nil {
			continue
		}
		if int(d.ChunkIndex) != len(chunks) || d.Digest != big.Digest {
			t.Fatalf("chunk %d/%d out of order or with another digest", d.ChunkIndex, d.ChunkCount)
		}
		if want := uint64(len(big.Compressed())); d.BundleSize != want {
			t.Fatalf("chunk %d/%d declares a bundle of %d bytes, want %d", d.ChunkIndex, d.ChunkCount, d.BundleSize, want)
		}
		chunks = append(chunks, d.BundleChunk)
		if len(chunks) == int(d.ChunkCount) {
			break
		}
	}
	if len(chunks) < 2 {
		t.Fatalf("a %d-byte bundle went in %d chunk(s)", len(big.Data), len(chunks))
	}
	data, err := bundle.Decompress(bytes.Join(chunks, nil), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if bundle.Digest(data) != big.Digest {
		t.Fatal("reassembled bundle has another digest")
	}
}

func TestRemoveWaitsUntilAppsAreKnown(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	stream := connect(t, h.dial(t, h.agentCert(t, "c1")), &flotillav1.HeldApp{App: "gone", Generation: 3, Revision: "r1", Digest: "sha256:x"})
	// A hub that has not loaded its apps yet sends nothing for "gone". Once the full list is
	// known and "gone" targets no cluster, it is Removing for the grace, then removed.
	h.fleet.SetRemovalGrace(time.Hour)
	h.fleet.SetTargets(map[string]map[string]bool{"c1": {}})
	testwait.Until(t, 10*time.Second, "condition", func() bool { return removing(h.fleet.Rows(), "c1", "gone") })
	// Still Removing (the Remove is sent, and the row dropped, only after the grace): end it.
	h.fleet.SetRemovalGrace(0)
	h.fleet.SetTargets(map[string]map[string]bool{"c1": {}})
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if m.GetHeartbeat() != nil {
			continue
		}
		if r := m.GetRemove(); r == nil || r.App != "gone" || r.Generation != 4 {
			t.Fatalf("message = %v, want Remove gone generation 4", m)
		}
		return
	}
}

func removing(rows []fleet.Row, cluster, app string) bool {
	for _, r := range rows {
		if r.Cluster == cluster && r.App == app {
			return r.Sync == fleet.SyncRemoving
		}
	}
	return false
}

func TestProtocolVersionMismatchSaysWhichSideToUpgrade(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	stream, err := flotillav1.NewAgentServiceClient(h.dial(t, h.agentCert(t, "c1"))).Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Hello{Hello: &flotillav1.Hello{ProtocolVersion: version.Protocol + 1}}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "upgrade the hub") {
		t.Fatalf("newer agent: %v, want FailedPrecondition telling to upgrade the hub", err)
	}
}

// pemLike makes random bytes printable (a ConfigMap value must be a string) while keeping them
// incompressible enough to need several chunks.
func pemLike(b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "NOISE", Bytes: b})
}

func TestRevokeClosesTheStreamAndRefusesTheCluster(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	cert := h.agentCert(t, "c1")
	stream := connect(t, h.dial(t, cert))
	op := flotillav1.NewOperatorClient(h.dial(t, h.adminCert(t)))
	if _, err := op.RevokeCluster(context.Background(), &flotillav1.RevokeClusterRequest{Name: "c1"}); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			break // the open stream was closed
		}
	}
	again, err := flotillav1.NewAgentServiceClient(h.dial(t, cert)).Connect(context.Background())
	if err == nil {
		_, err = again.Recv()
	}
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("revoked cluster reconnecting: %v, want PermissionDenied revoked", err)
	}
}

// TestWorkCountsStreamsAndDesired: the hub's work (what tells hub/internal/gctune a busy hub)
// counts each agent stream opened and each desired-state message sent, not heartbeats.
func TestWorkCountsStreamsAndDesired(t *testing.T) {
	h, srv := newHubUnderTest(t, RateLimits{})
	h.serve(t, srv)
	h.register(t, "c1")
	if w := srv.Work(); w != 0 {
		t.Fatalf("work before any agent: %d", w)
	}
	stream := connect(t, h.dial(t, h.agentCert(t, "c1")))
	if w := srv.Work(); w != 1 {
		t.Fatalf("work after one stream opened: %d, want 1", w)
	}
	h.fleet.SetDesired(fleet.Desired{Cluster: "c1", App: "api", Revision: "r1", Bundle: configMapBundle(t, "api", "x")})
	if m, err := stream.Recv(); err != nil || m.GetDesired() == nil {
		t.Fatalf("after SetDesired: %v, %v; want Desired", m, err)
	}
	if w := srv.Work(); w != 2 {
		t.Fatalf("work after one desired-state message: %d, want 2", w)
	}
}
