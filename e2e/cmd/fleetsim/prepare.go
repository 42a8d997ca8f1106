package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

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
	out := make([]string, o.Count)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4) // each is a CLI process and a store transaction on the hub
	for i := range out {
		g.Go(func() error {
			name := fmt.Sprintf("%s%05d", o.Prefix, i)
			cmd := exec.CommandContext(ctx, o.Flotilla, "--config", o.Config, "cluster", "add", name, "--labels", o.Labels)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			b, err := cmd.Output()
			if err != nil {
				return fmt.Errorf("flotilla cluster add %s: %w: %s", name, err, stderr.String())
			}
			out[i] = strings.TrimSpace(string(b))
			return nil
		})
	}
	return out, g.Wait()
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
