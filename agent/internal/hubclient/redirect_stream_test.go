package hubclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flotilla-dev/flotilla/agent/internal/syncer"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// fakeReplica is a hub replica that answers every Hello with answer.
type fakeReplica struct {
	flotillav1.UnimplementedAgentServiceServer
	addr   string
	answer func() *flotillav1.HubMessage
	hellos chan struct{}
	stop   func()
}

func (f *fakeReplica) Connect(stream flotillav1.AgentService_ConnectServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	msg := f.answer()
	f.hellos <- struct{}{} // after answer: a test woken by the Hello sees what answer recorded
	if err := stream.Send(msg); err != nil || msg.GetRedirect() != nil {
		return err
	}
	<-stream.Context().Done() // welcomed: the stream stays up
	return nil
}

type nopController struct{}

func (nopController) Held() []syncer.Held        { return nil }
func (nopController) SetDesired(*syncer.Desired) {}
func (nopController) Remove(string, uint64)      {}
func (nopController) ReportAll()                 {}

// testTLS returns a serving certificate for 127.0.0.1 and a client configuration trusting it.
func testTLS(t *testing.T) (tls.Certificate, *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hub"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
}

func startFakeReplicas(t *testing.T, n int) ([]*fakeReplica, *tls.Config) {
	t.Helper()
	serving, client := testTLS(t)
	var rs []*fakeReplica
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r := &fakeReplica{addr: lis.Addr().String(), hellos: make(chan struct{}, 16)}
		gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serving}, MinVersion: tls.VersionTLS13})))
		flotillav1.RegisterAgentServiceServer(gs, r)
		go func() { _ = gs.Serve(lis) }()
		t.Cleanup(gs.Stop)
		r.stop = gs.Stop
		rs = append(rs, r)
	}
	return rs, client
}

// TestClientFollowsRedirectAtOnce: an agent that reaches a replica not owning its cluster is
// at the owner the moment it is redirected, with no back-off in between, and learns the
// replicas' addresses; when the owner later fails, it falls back to a replica it only learnt.
func TestClientFollowsRedirectAtOnce(t *testing.T) {
	rs, clientTLS := startFakeReplicas(t, 3)
	var (
		mu       sync.Mutex
		backOffs atomic.Int32 // the client's reconnection back-offs so far
		// the back-offs counted when the latest redirect was answered, and when the owner
		// welcomed the agent the first time
		atRedirect, atWelcome int32 = 0, -1
	)
	owner := rs[1]
	replicas := []string{rs[0].addr, rs[1].addr, rs[2].addr}
	for _, r := range rs {
		r.answer = func() *flotillav1.HubMessage {
			mu.Lock()
			defer mu.Unlock()
			if r != owner {
				atRedirect = backOffs.Load()
				return &flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Redirect{Redirect: &flotillav1.Redirect{
					Address: owner.addr, Epoch: 5 << 32, Replicas: replicas,
				}}}
			}
			if atWelcome < 0 {
				atWelcome = backOffs.Load()
			}
			return &flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Welcome{Welcome: &flotillav1.Welcome{
				Cluster: "c1", Epoch: 5 << 32, Replicas: replicas,
			}}}
		}
	}
	c := New(Config{
		Addrs: []string{rs[0].addr}, // only one is configured; the others are learnt
		TLS: func(serverName string) (*tls.Config, error) {
			cfg := clientTLS.Clone()
			cfg.ServerName = serverName
			return cfg, nil
		},
		Heartbeat: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Controller: nopController{},
	})
	c.backOff = func(d time.Duration) <-chan time.Time {
		backOffs.Add(1)
		return time.After(d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitHello(t, rs[0])
	waitHello(t, rs[1])
	mu.Lock()
	if n := atWelcome - atRedirect; n != 0 {
		t.Errorf("the agent backed off %d times between the redirect and reaching the owner; want it to follow the redirect at once", n)
	}
	mu.Unlock()

	// The owner and the configured replica go: the next owner is rs[2], which the agent only
	// knows from Welcome.
	mu.Lock()
	owner = rs[2]
	mu.Unlock()
	rs[0].stop()
	rs[1].stop()
	waitHello(t, rs[2])
}

func waitHello(t *testing.T, r *fakeReplica) {
	t.Helper()
	select {
	case <-r.hellos:
	case <-time.After(10 * time.Second):
		t.Fatalf("no Hello at %s within 10s", r.addr)
	}
}
