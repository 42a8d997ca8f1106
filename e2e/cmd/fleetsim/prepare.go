package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/agentkey"
	"github.com/flotilla-dev/flotilla/shared/jointoken"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// Files of a prepared identity set: the hub CA once, a key and certificate per cluster.
const (
	caFile   = "ca.crt"
	certExt  = ".crt"
	keyExt   = ".key"
	joinWait = 30 * time.Second
)

// Prepare enrols the agents and saves their identities in o.Dir; it returns how many.
func Prepare(ctx context.Context, o *PrepareOptions) (int, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return 0, err
	}
	tokens, err := o.tokens(ctx)
	if err != nil {
		return 0, err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrent)
	for _, tok := range tokens {
		g.Go(func() error { return enrol(ctx, o.Hub, tok, o.Dir) })
	}
	return len(tokens), g.Wait()
}

// tokens reads the token file, or registers o.Count clusters and returns their tokens.
func (o *PrepareOptions) tokens(ctx context.Context) ([]string, error) {
	if o.Tokens != "" {
		f, err := os.Open(o.Tokens)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		var out []string
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if t := strings.TrimSpace(sc.Text()); t != "" {
				out = append(out, t)
			}
		}
		return out, sc.Err()
	}
	conn, err := dialOperator(o.Config)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	op := flotillav1.NewOperatorClient(conn)
	labels, err := parseLabels(o.Labels)
	if err != nil {
		return nil, err
	}
	out := make([]string, o.Count)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrent) // RPCs on one connection; each is a store transaction on the hub
	for i := range out {
		g.Go(func() error {
			name := fmt.Sprintf("%s%05d", o.Prefix, i)
			resp, err := op.AddCluster(ctx, &flotillav1.AddClusterRequest{Name: name, Labels: labels})
			if err != nil {
				return fmt.Errorf("register cluster %s: %w", name, err)
			}
			out[i] = resp.JoinToken
			return nil
		})
	}
	return out, g.Wait()
}

// operatorConfig is the part of the hub's DATA_DIR/admin.yaml fleetsim needs.
type operatorConfig struct {
	Hub  string `json:"hub"`
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// dialOperator connects to the hub's operator API with the operator config at path: one
// connection for every registration, where `flotilla cluster add` would start a process each.
func dialOperator(path string) (*grpc.ClientConn, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c operatorConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(c.CA)) {
		return nil, fmt.Errorf("%s: ca holds no certificate", path)
	}
	cert, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
	if err != nil {
		return nil, fmt.Errorf("%s: cert/key: %w", path, err)
	}
	host, _, err := net.SplitHostPort(c.Hub)
	if err != nil {
		return nil, fmt.Errorf("%s: hub %q: %w", path, c.Hub, err)
	}
	return grpc.NewClient(c.Hub, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: host, MinVersion: tls.VersionTLS13,
	})))
}

// parseLabels reads k=v,k=v.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for kv := range strings.SplitSeq(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("--labels: %q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// enrol joins the hub with token like an agent: a new key, its certificate request, the hub
// verified against the token's CA fingerprint; it saves the key, certificate and CA in dir.
func enrol(ctx context.Context, addr, token, dir string) error {
	tok, err := jointoken.Parse(token)
	if err != nil {
		return fmt.Errorf("join token: %w", err)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("hub address %q: %w", addr, err)
	}
	keyPEM, csrPEM, err := agentkey.New()
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(jointoken.PinnedTLSConfig(tok.CAFingerprint, host))))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, joinWait)
	defer cancel()
	resp, err := flotillav1.NewEnrollmentClient(conn).Join(ctx, &flotillav1.JoinRequest{
		Token: token, CsrPem: csrPEM, AgentVersion: version.Version,
	})
	if err != nil {
		return fmt.Errorf("join hub %s: %w", addr, err)
	}
	for name, data := range map[string][]byte{
		resp.Cluster + keyExt: keyPEM, resp.Cluster + certExt: resp.CertificatePem, caFile: resp.CaPem,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
