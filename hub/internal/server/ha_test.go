package server

import (
	"github.com/flotilla-dev/flotilla/shared/testwait"

	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/jointoken"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// gossip is an in-memory stand-in for cluster.Membership shared by the replicas of a test:
// one member list, owners set by the test, broadcasts delivered to every other replica.
type gossip struct {
	mu       sync.Mutex
	members  []cluster.Member
	owners   map[string]string // cluster → member name; unset: the first member
	epochs   map[string]uint64 // member name → epoch
	handlers map[string]func([]byte)
	deaf     map[string]bool // members that receive no broadcast
}

func newGossip() *gossip {
	return &gossip{owners: map[string]string{}, epochs: map[string]uint64{}, handlers: map[string]func([]byte){}, deaf: map[string]bool{}}
}

func (g *gossip) setOwner(c, member string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.owners[c] = member
}

func (g *gossip) drop(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members = slices.DeleteFunc(g.members, func(m cluster.Member) bool { return m.Name == name })
}

// replicaView is one replica's handle on the gossip.
type replicaView struct {
	g    *gossip
	self cluster.Member
}

var _ replicaSet = (*replicaView)(nil)

func (v *replicaView) Local() cluster.Member { return v.self }

func (v *replicaView) Members() []cluster.Member {
	v.g.mu.Lock()
	defer v.g.mu.Unlock()
	return slices.Clone(v.g.members)
}

func (v *replicaView) Owner(c string, _ []string) (cluster.Member, uint64) {
	v.g.mu.Lock()
	defer v.g.mu.Unlock()
	name, ok := v.g.owners[c]
	if !ok {
		name = v.g.members[0].Name
	}
	for _, m := range v.g.members {
		if m.Name == name {
			return m, v.g.epochs[name]
		}
	}
	return cluster.Member{}, 0
}

func (v *replicaView) Broadcast(msg []byte) {
	v.g.mu.Lock()
	var hs []func([]byte)
	for name, h := range v.g.handlers {
		if name != v.self.Name && !v.g.deaf[name] {
			hs = append(hs, h)
		}
	}
	v.g.mu.Unlock()
	for _, h := range hs {
		h(msg)
	}
}

type replicaUnderTest struct {
	name   string
	addr   string
	srv    *Server
	store  *store.Store
	fleet  *fleet.Fleet
	rounds *rounds
	stop   func() // stops serving, and returns once stopped
}

// rounds stands in for the reconciler: it counts the rounds asked for.
type rounds struct{ n atomic.Int32 }

func (r *rounds) Trigger() { r.n.Add(1) }

// startReplicas starts n hub replicas sharing one CA, each on its own loopback port; opts
// complete each replica's configuration.
func startReplicas(t *testing.T, n int, opts ...func(*Config)) (*gossip, *pki.CA, []*replicaUnderTest) {
	t.Helper()
	caDir := t.TempDir()
	ca, err := pki.LoadOrCreate(caDir)
	if err != nil {
		t.Fatal(err)
	}
	g := newGossip()
	var rs []*replicaUnderTest
	for i := range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		name := "hub-" + string(rune('a'+i))
		g.members = append(g.members, cluster.Member{Name: name, GRPCAddr: lis.Addr().String()})
		g.epochs[name] = uint64(i+1)<<32 | uint64(i)
		rs = append(rs, &replicaUnderTest{name: name, addr: lis.Addr().String()})
		t.Cleanup(func() { lis.Close() })
		dir := t.TempDir()
		serving, err := ca.ServingCert(dir, []string{"localhost", "127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(filepath.Join(dir, "flotilla.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		peerCert, err := ca.IssueReplica(name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		r := rs[i]
		r.store, r.fleet, r.rounds = st, fleet.New(time.Minute), &rounds{}
		view := &replicaView{g: g, self: cluster.Member{Name: name, GRPCAddr: lis.Addr().String()}}
		cfg := Config{Fleet: r.fleet, Store: st, Pins: st, Replication: st, CA: ca, Serving: serving, Heartbeat: time.Hour, HubVersion: "test", Reconcile: r.rounds,
			Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			Ownership: cluster.NewOwnership(view, st.ClusterNames, nil),
			HA: &HAConfig{
				Replicas:    view,
				PeerTLS:     &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{peerCert}, MinVersion: tls.VersionTLS13},
				PeerTimeout: time.Second,
			},
		}
		for _, o := range opts {
			o(&cfg)
		}
		r.srv = New(cfg)
		g.handlers[name] = r.srv.OnBroadcast
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = r.srv.Serve(ctx, lis) }()
		r.stop = func() { cancel(); <-done }
		t.Cleanup(r.stop)
	}
	return g, ca, rs
}

// dialTCP connects to addr with the given client certificate.
func dialTCP(t *testing.T, ca *pki.CA, addr string, cert *tls.Certificate) *grpc.ClientConn {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func adminOf(t *testing.T, ca *pki.CA) *tls.Certificate {
	return (&hubUnderTest{ca: ca}).adminCert(t)
}

func agentOf(t *testing.T, ca *pki.CA, c string) *tls.Certificate {
	return (&hubUnderTest{ca: ca}).agentCert(t, c)
}

// hello opens an agent stream and returns its first message.
func hello(t *testing.T, conn *grpc.ClientConn) (flotillav1.AgentService_ConnectClient, *flotillav1.HubMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	stream, err := flotillav1.NewAgentServiceClient(conn).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A replica that redirects answers without reading the Hello and ends the stream: a Send
	// after that end returns io.EOF, and the answer is still there to Recv.
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Hello{Hello: &flotillav1.Hello{
		AgentVersion: "test", ProtocolVersion: version.Protocol,
	}}}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return stream, m
}

// TestReplicasRedirectAgentsToTheOwner: the owner welcomes the agent with its epoch and the
// replica list; another replica redirects it to the owner; when the cluster moves, the
// stream at the old owner closes.
func TestReplicasRedirectAgentsToTheOwner(t *testing.T) {
	g, ca, rs := startReplicas(t, 3)
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	if _, err := op.AddCluster(context.Background(), &flotillav1.AddClusterRequest{Name: "c1"}); err != nil {
		t.Fatal(err)
	}
	g.setOwner("c1", "hub-b")
	cert := agentOf(t, ca, "c1")
	wantReplicas := []string{rs[0].addr, rs[1].addr, rs[2].addr}
	slices.Sort(wantReplicas)

	_, m := hello(t, dialTCP(t, ca, rs[0].addr, cert))
	r := m.GetRedirect()
	if r == nil {
		t.Fatalf("non-owner answered %v, want Redirect", m)
	}
	if r.Address != rs[1].addr || r.Epoch != g.epochs["hub-b"] || !slices.Equal(r.Replicas, wantReplicas) {
		t.Fatalf("redirect = %v, want %s at epoch %x with replicas %v", r, rs[1].addr, g.epochs["hub-b"], wantReplicas)
	}

	stream, m := hello(t, dialTCP(t, ca, rs[1].addr, cert))
	w := m.GetWelcome()
	if w == nil || w.Epoch != g.epochs["hub-b"] || !slices.Equal(w.Replicas, wantReplicas) {
		t.Fatalf("owner answered %v, want Welcome at epoch %x with the replicas", m, g.epochs["hub-b"])
	}

	// The cluster moves to hub-c: hub-b closes the stream, and now redirects.
	g.setOwner("c1", "hub-c")
	rs[1].srv.cfg.Ownership.Release()
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}
	if _, m := hello(t, dialTCP(t, ca, rs[1].addr, cert)); m.GetRedirect().GetAddress() != rs[2].addr {
		t.Fatalf("old owner answered %v, want Redirect to %s", m, rs[2].addr)
	}
}

// TestReplicatedRevocationIsEnforcedEverywhere: a cluster revoked on one replica is refused
// by every replica, and its agent's stream at the owner closes.
func TestReplicatedRevocationIsEnforcedEverywhere(t *testing.T) {
	g, ca, rs := startReplicas(t, 3)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "c1", Labels: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		c, ok, err := r.store.GetCluster("c1")
		if err != nil || !ok || c.Labels["env"] != "prod" {
			t.Fatalf("%s: cluster c1 not replicated: %+v %v %v", r.name, c, ok, err)
		}
	}
	g.setOwner("c1", "hub-c")
	cert := agentOf(t, ca, "c1")
	stream, m := hello(t, dialTCP(t, ca, rs[2].addr, cert))
	if m.GetWelcome() == nil {
		t.Fatalf("owner answered %v, want Welcome", m)
	}
	if _, err := op.RevokeCluster(ctx, &flotillav1.RevokeClusterRequest{Name: "c1"}); err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := stream.Recv(); err != nil {
			break // the owner, told by gossip, closed the stream
		}
	}
	for _, r := range rs {
		s, err := flotillav1.NewAgentServiceClient(dialTCP(t, ca, r.addr, cert)).Connect(ctx)
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "revoked") {
			t.Errorf("%s: revoked cluster connecting: %v, want PermissionDenied revoked", r.name, err)
		}
	}
}

// TestRegistryPullCatchesUpAReplicaThatMissedBroadcasts: a replica that heard no broadcast
// (it joined later, or gossip lost them) gets the clusters, the revocations and the join
// tokens, used or not, from its peers' registries.
func TestRegistryPullCatchesUpAReplicaThatMissedBroadcasts(t *testing.T) {
	g, ca, rs := startReplicas(t, 2)
	ctx := context.Background()
	g.mu.Lock()
	g.deaf["hub-b"] = true
	g.mu.Unlock()
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	for _, c := range []string{"c1", "c2"} {
		if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: c}); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := op.CreateToken(ctx, &flotillav1.CreateTokenRequest{Cluster: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.RevokeCluster(ctx, &flotillav1.RevokeClusterRequest{Name: "c2"}); err != nil {
		t.Fatal(err)
	}
	if list, _ := rs[1].store.ListClusters(); len(list) != 0 {
		t.Fatalf("deaf replica has clusters before the pull: %v", list)
	}
	rs[1].srv.pullRegistry(ctx)
	c1, ok1, _ := rs[1].store.GetCluster("c1")
	c2, ok2, _ := rs[1].store.GetCluster("c2")
	if !ok1 || c1.Revoked || !ok2 || !c2.Revoked {
		t.Fatalf("after the pull: c1 %+v (%v), c2 %+v (%v); want c1 registered, c2 revoked", c1, ok1, c2, ok2)
	}
	// The token created on hub-a joins at hub-b, once; hub-a learns it was used.
	g.mu.Lock()
	g.deaf["hub-b"] = false
	g.mu.Unlock()
	enroll := flotillav1.NewEnrollmentClient(dialTCP(t, ca, rs[1].addr, nil))
	csr := newTestCSR(t)
	if _, err := enroll.Join(ctx, &flotillav1.JoinRequest{Token: tok.JoinToken, CsrPem: csr}); err != nil {
		t.Fatalf("join at the replica that pulled the token: %v", err)
	}
	// hub-a also learns which key used it: that key (a lost reply, retried) may join again there.
	parsed, err := jointoken.Parse(tok.JoinToken)
	if err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "condition", func() bool {
		used, _, _ := rs[0].store.GetToken(parsed.ID)
		return !used.UsedAt.IsZero()
	})
	if _, err := flotillav1.NewEnrollmentClient(dialTCP(t, ca, rs[0].addr, nil)).Join(ctx, &flotillav1.JoinRequest{Token: tok.JoinToken, CsrPem: csr}); err != nil {
		t.Fatalf("the same key joining again at the replica that issued the token: %v", err)
	}
	_, err = flotillav1.NewEnrollmentClient(dialTCP(t, ca, rs[0].addr, nil)).Join(ctx, &flotillav1.JoinRequest{Token: tok.JoinToken, CsrPem: newTestCSR(t)})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "already used") {
		t.Fatalf("token replayed at the replica that issued it: %v, want already used", err)
	}
}

// TestPeerCertificateScope: a replica's certificate reads the fleet queries and the registry
// and forwards syncs, and nothing else; an operator's does not export the registry.
func TestPeerCertificateScope(t *testing.T) {
	_, ca, rs := startReplicas(t, 1)
	ctx := context.Background()
	peerCert, err := ca.IssueReplica("hub-x", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	conn := dialTCP(t, ca, rs[0].addr, &peerCert)
	op := flotillav1.NewOperatorClient(conn)
	if _, err := op.Status(ctx, &flotillav1.StatusRequest{}); err != nil {
		t.Errorf("peer Status: %v", err)
	}
	if _, err := op.ListClusters(ctx, &flotillav1.ListClustersRequest{}); err != nil {
		t.Errorf("peer ListClusters: %v", err)
	}
	if _, err := op.History(ctx, &flotillav1.HistoryRequest{App: "api"}); err != nil {
		t.Errorf("peer History: %v", err)
	}
	if _, err := flotillav1.NewPeerClient(conn).ExportRegistry(ctx, &flotillav1.ExportRegistryRequest{}); err != nil {
		t.Errorf("peer ExportRegistry: %v", err)
	}
	if resp, err := op.Sync(ctx, &flotillav1.SyncRequest{App: "api"}); err != nil || len(resp.Clusters) != 0 {
		t.Errorf("peer Sync on a replica owning nothing: %v, %v; want an empty share", resp, err)
	}
	if recs, _ := rs[0].store.ListAudit(0); len(recs) != 0 {
		t.Errorf("a forwarded sync was audited by the replica it was forwarded to: %+v", recs)
	}
	if _, err := op.Rollback(ctx, &flotillav1.RollbackRequest{App: "api", Clear: true}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("peer Rollback: %v, want PermissionDenied", err)
	}
	if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: "c9"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("peer AddCluster: %v, want PermissionDenied", err)
	}
	if _, err := op.RevokeCluster(ctx, &flotillav1.RevokeClusterRequest{Name: "c9"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("peer RevokeCluster: %v, want PermissionDenied", err)
	}
	s, err := flotillav1.NewAgentServiceClient(conn).Connect(ctx)
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("peer agent stream: %v, want PermissionDenied", err)
	}
	_, err = flotillav1.NewPeerClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca))).ExportRegistry(ctx, &flotillav1.ExportRegistryRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("operator ExportRegistry: %v, want PermissionDenied", err)
	}
}

// TestFleetQueriesGatherFromPeers: any replica answers status and clusters for the whole
// fleet from each owner's share, and names a replica that does not answer.
func TestFleetQueriesGatherFromPeers(t *testing.T) {
	g, ca, rs := startReplicas(t, 3)
	ctx := context.Background()
	op := flotillav1.NewOperatorClient(dialTCP(t, ca, rs[0].addr, adminOf(t, ca)))
	b := configMapBundle(t, "cm", "x")
	for i, r := range rs {
		c := "c" + string(rune('1'+i))
		if _, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: c}); err != nil {
			t.Fatal(err)
		}
		g.setOwner(c, r.name)
		r.fleet.SetDesired(fleet.Desired{Cluster: c, App: "api", Revision: "r1", Bundle: b})
		// A stale row of a cluster owned elsewhere must not show.
		rs[(i+1)%3].fleet.SetDesired(fleet.Desired{Cluster: c, App: "stale", Revision: "r0", Bundle: b})
	}
	// A render failure on its owner is a row of its own, nothing desired there; a stale one
	// elsewhere must not show.
	rs[2].fleet.SetRenderError("c3", "web", "r2", errors.New("web/kustomization.yaml: broken"))
	rs[0].fleet.SetRenderError("c2", "web", "r0", errors.New("stale"))
	if _, m := hello(t, dialTCP(t, ca, rs[1].addr, agentOf(t, ca, "c2"))); m.GetWelcome() == nil {
		t.Fatalf("owner of c2 answered %v", m)
	}
	for _, r := range rs {
		resp, err := flotillav1.NewOperatorClient(dialTCP(t, ca, r.addr, adminOf(t, ca))).Status(ctx, &flotillav1.StatusRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		for _, it := range resp.Items {
			rows = append(rows, it.Cluster+"/"+it.App)
			if it.App == "web" && (it.Sync != fleet.SyncRenderFailed || !strings.Contains(it.Message, "web/kustomization.yaml: broken")) {
				t.Errorf("status from %s: %s/web sync %s message %q, want RenderFailed naming the file", r.name, it.Cluster, it.Sync, it.Message)
			}
		}
		if want := []string{"c1/api", "c2/api", "c3/api", "c3/web"}; !slices.Equal(rows, want) || len(resp.UnreachablePeers) != 0 {
			t.Errorf("status from %s: %v (unreachable %v), want %v", r.name, rows, resp.UnreachablePeers, want)
		}
		// A row a page: the same rows, each replica answering its own page and the one asked
		// cutting where the first of them stopped (a cluster's two rows stay on one page).
		rows = nil
		req := &flotillav1.StatusRequest{PageSize: 1}
		for pages := 1; ; pages++ {
			resp, err := flotillav1.NewOperatorClient(dialTCP(t, ca, r.addr, adminOf(t, ca))).Status(ctx, req)
			if err != nil || pages > 6 {
				t.Fatalf("paged status from %s, page %d after %q: %v", r.name, pages, req.AfterCluster, err)
			}
			for _, it := range resp.Items {
				rows = append(rows, it.Cluster+"/"+it.App)
			}
			if resp.NextAfterCluster == "" {
				break
			}
			req.AfterCluster = resp.NextAfterCluster
		}
		if want := []string{"c1/api", "c2/api", "c3/api", "c3/web"}; !slices.Equal(rows, want) {
			t.Errorf("paged status from %s: %v, want %v", r.name, rows, want)
		}
		cl, err := flotillav1.NewOperatorClient(dialTCP(t, ca, r.addr, adminOf(t, ca))).ListClusters(ctx, &flotillav1.ListClustersRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range cl.Items {
			want := map[string]string{"c1": "hub-a", "c2": "hub-b", "c3": "hub-c"}[it.Name]
			if it.Replica != want || it.Connected != (it.Name == "c2") {
				t.Errorf("clusters from %s: %s replica %q connected %v; want replica %s, connected only c2", r.name, it.Name, it.Replica, it.Connected, want)
			}
		}
	}

	// History is the union of what each replica recorded for the clusters it owned then.
	t1 := time.Now().Add(-time.Hour)
	for i, r := range rs {
		for _, c := range []string{"c1", "c2"} {
			if err := r.store.AddHistory(store.HistoryRecord{Time: t1.Add(time.Duration(i) * time.Minute), Cluster: c, App: "api", Revision: r.name}); err != nil {
				t.Fatal(err)
			}
		}
	}
	hist, err := op.History(ctx, &flotillav1.HistoryRequest{App: "api", Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	var revs []string
	for _, h := range hist.Items {
		revs = append(revs, h.Revision+"/"+h.Cluster)
	}
	if want := []string{"hub-c/c1", "hub-c/c2", "hub-b/c1", "hub-b/c2"}; !slices.Equal(revs, want) {
		t.Errorf("history from hub-a: %v, want the newest 4 of every replica's, %v", revs, want)
	}

	// hub-c stops answering (it died; the others have not noticed yet): it is named, and the
	// cluster it owns still shows, from what hub-a last knew.
	rs[0].fleet.SetDesired(fleet.Desired{Cluster: "c3", App: "api", Revision: "r1", Bundle: b})
	rs[2].stop()
	resp, err := op.Status(ctx, &flotillav1.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(resp.UnreachablePeers, []string{"hub-c"}) {
		t.Fatalf("unreachable peers %v, want [hub-c]", resp.UnreachablePeers)
	}
	if !slices.ContainsFunc(resp.Items, func(it *flotillav1.AppClusterStatus) bool { return it.Cluster == "c3" && it.App == "api" }) {
		t.Errorf("cluster of the silent replica hidden: %v", resp.Items)
	}
	// Once the members drop it, nobody is reported.
	g.drop("hub-c")
	resp, err = op.Status(ctx, &flotillav1.StatusRequest{})
	if err != nil || len(resp.UnreachablePeers) != 0 {
		t.Fatalf("after hub-c left: %v, unreachable %v", err, resp.GetUnreachablePeers())
	}
}

func newTestCSR(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
