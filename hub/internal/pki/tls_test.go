package pki

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/shared/jointoken"
)

type hubResult struct {
	role, name string
	err        error
}

// startHub serves TLS on 127.0.0.1 with the hub's serving certificate and requires client
// certificates from ca. For each connection it reports the peer's identity (or why there is
// none) on the returned channel and writes "role name\n" back to an accepted peer.
func startHub(t *testing.T, ca *CA) (string, <-chan hubResult) {
	t.Helper()
	serving, err := ca.ServingCert(t.TempDir(), []string{"hub.example", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{serving},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan hubResult, 32)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- serveConn(conn, cfg)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String(), results
}

func serveConn(conn net.Conn, cfg *tls.Config) hubResult {
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tc := tls.Server(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return hubResult{err: err}
	}
	role, name, err := Identity(tc.ConnectionState().PeerCertificates[0])
	if err != nil {
		return hubResult{err: err}
	}
	if _, err := tc.Write([]byte(role + " " + name + "\n")); err != nil {
		return hubResult{err: err}
	}
	return hubResult{role: role, name: name}
}

// dialHub connects with cfg and returns the line the hub wrote, or the first error.
func dialHub(addr string, cfg *tls.Config) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return bufio.NewReader(conn).ReadString('\n')
}

func clientCert(t *testing.T, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func agentCert(t *testing.T, ca *CA, cluster string) tls.Certificate {
	t.Helper()
	key := newKey(t)
	certPEM, err := ca.SignAgent(newCSR(t, key, pkix.Name{}), cluster, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return clientCert(t, certPEM, keyPEM)
}

// TestMutualTLS runs the join and steady-state handshakes against a real listener.
func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	other := newTestCA(t)
	addr, results := startHub(t, ca)

	agent := agentCert(t, ca, "prod-1")
	foreignAgent := agentCert(t, other, "prod-1")
	admin := mustIssue(t, func() ([]byte, []byte, error) { return ca.IssueAdmin("alice", time.Hour) })
	// Signed by the right CA but with two roles: TLS accepts it, Identity must not.
	twoRoles := mustIssue(t, func() ([]byte, []byte, error) {
		return issueCustom(ca, pkix.Name{CommonName: "prod-1", Organization: []string{RoleAgent, RoleOperator}})
	})

	pinned := func(fp, serverName string, cert *tls.Certificate) *tls.Config {
		cfg := jointoken.PinnedTLSConfig(fp, serverName)
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		return cfg
	}
	trusted := func(cert tls.Certificate) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS13, ServerName: "hub.example", RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}
	}

	tests := []struct {
		name       string
		client     *tls.Config
		wantLine   string // empty: the connection fails
		wantHubErr bool   // the hub saw the connection and refused it
		wantErr    error  // when set, the client's error wraps it
	}{
		{name: "pinned fingerprint, agent certificate", client: pinned(ca.Fingerprint(), "hub.example", &agent), wantLine: RoleAgent + " prod-1"},
		{name: "pinned fingerprint, ip address", client: pinned(ca.Fingerprint(), "127.0.0.1", &agent), wantLine: RoleAgent + " prod-1"},
		{name: "wrong fingerprint", client: pinned(other.Fingerprint(), "hub.example", &agent), wantHubErr: true, wantErr: jointoken.ErrNoPinnedCA},
		{name: "pinned fingerprint, wrong server name", client: pinned(ca.Fingerprint(), "evil.example", &agent), wantHubErr: true},
		{name: "ca pool, agent certificate", client: trusted(agent), wantLine: RoleAgent + " prod-1"},
		{name: "ca pool, operator certificate", client: trusted(admin), wantLine: RoleOperator + " alice"},
		{name: "agent certificate from another ca", client: trusted(foreignAgent), wantHubErr: true},
		{name: "no client certificate", client: pinned(ca.Fingerprint(), "hub.example", nil), wantHubErr: true},
		{name: "two roles", client: trusted(twoRoles), wantHubErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, err := dialHub(addr, tt.client)
			if tt.wantLine != "" {
				if err != nil {
					t.Fatalf("client: %v", err)
				}
				if got := strings.TrimSpace(line); got != tt.wantLine {
					t.Errorf("hub says %q, want %q", got, tt.wantLine)
				}
			} else if err == nil {
				t.Fatalf("client connected and read %q, want failure", line)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("client error %v does not wrap %v", err, tt.wantErr)
			}
			select {
			case r := <-results:
				if tt.wantHubErr != (r.err != nil) {
					t.Errorf("hub result %+v, want error: %v", r, tt.wantHubErr)
				}
				if tt.name == "two roles" && !errors.Is(r.err, ErrBadIdentity) {
					t.Errorf("hub error %v, want ErrBadIdentity", r.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("hub reported nothing")
			}
		})
	}
}

func mustIssue(t *testing.T, issue func() (certPEM, keyPEM []byte, err error)) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := issue()
	if err != nil {
		t.Fatal(err)
	}
	return clientCert(t, certPEM, keyPEM)
}

// issueCustom issues a client certificate with an arbitrary subject, bypassing the checks of
// SignAgent and IssueAdmin.
func issueCustom(ca *CA, subject pkix.Name) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := ca.clientTemplate(subject.CommonName, RoleAgent, time.Hour)
	tmpl.Subject = subject
	der, err := ca.sign(tmpl, key.Public())
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return encodeCert(der), keyPEM, nil
}
