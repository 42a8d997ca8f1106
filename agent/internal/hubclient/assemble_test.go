package hubclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/flotilla-dev/flotilla/agent/internal/syncer"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/chunks"
)

// scriptedHub welcomes the agent, sends script on its stream, and passes on every message
// the agent sends.
type scriptedHub struct {
	flotillav1.UnimplementedAgentServiceServer
	script []*flotillav1.Desired
	got    chan *flotillav1.AgentMessage
}

func (h *scriptedHub) Connect(stream flotillav1.AgentService_ConnectServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	if err := stream.Send(&flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Welcome{Welcome: &flotillav1.Welcome{Cluster: "c1"}}}); err != nil {
		return err
	}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				return
			}
			h.got <- m
		}
	}()
	for _, d := range h.script {
		if err := stream.Send(&flotillav1.HubMessage{Msg: &flotillav1.HubMessage_Desired{Desired: d}}); err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return nil
}

// recordingController records the desired states the client hands on.
type recordingController struct {
	nopController
	desired chan *syncer.Desired
}

func (r recordingController) SetDesired(d *syncer.Desired) { r.desired <- d }

// runScript runs a client against a hub sending script over gRPC with TLS, then a complete
// bundle of the app "end". It returns the generations handed to the controller and the
// generations nacked, by app, in order, once everything sent before "end" was handled; and
// the client, whose stream is still up, and the hub's channel of what the agent sends.
func runScript(t *testing.T, script []*flotillav1.Desired) (applied, nacked []string, nackErrs []string, c *Client, got <-chan *flotillav1.AgentMessage) {
	t.Helper()
	serving, clientTLS := testTLS(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	end := chunked(t, "end", 1, testBundle(t, 1, 10), 1)
	hub := &scriptedHub{script: append(slices.Clone(script), end...), got: make(chan *flotillav1.AgentMessage, 1000)}
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serving}, MinVersion: tls.VersionTLS13})),
		grpc.MaxRecvMsgSize(MaxMessageSize), grpc.MaxSendMsgSize(MaxMessageSize+64<<10))
	flotillav1.RegisterAgentServiceServer(gs, hub)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)

	c = New(Config{
		Addrs: []string{lis.Addr().String()},
		TLS: func(serverName string) (*tls.Config, error) {
			cfg := clientTLS.Clone()
			cfg.ServerName = serverName
			return cfg, nil
		},
		Heartbeat: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Controller: recordingController{desired: make(chan *syncer.Desired, 100)},
	})
	ctrl := c.ctrl.(recordingController)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	timeout := time.After(30 * time.Second)
	for {
		var d *syncer.Desired
		select {
		case d = <-ctrl.desired:
		case <-timeout:
			t.Fatalf("the script's end not handed on within 30s; handed on so far: %v", applied)
		}
		if d.App == "end" {
			break
		}
		applied = append(applied, fmt.Sprintf("%s/%d", d.App, d.Generation))
	}
	// Every nack of the script was queued before "end" was handed on: one queued now arrives
	// after them.
	c.out.Nack("end", 1, "end")
	for {
		var m *flotillav1.AgentMessage
		select {
		case m = <-hub.got:
		case <-timeout:
			t.Fatalf("the agent's messages did not arrive within 30s; nacks so far: %v", nacked)
		}
		n := m.GetNack()
		if n == nil {
			continue
		}
		if n.App == "end" {
			return applied, nacked, nackErrs, c, hub.got
		}
		nacked = append(nacked, fmt.Sprintf("%s/%d", n.App, n.Generation))
		nackErrs = append(nackErrs, n.Error)
	}
}

// testBundle returns a bundle of n ConfigMaps holding size random bytes each (hex: it
// compresses to about half).
func testBundle(t *testing.T, n, size int) *bundle.Bundle {
	t.Helper()
	rnd := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	var objs []*unstructured.Unstructured
	for i := range n {
		raw := make([]byte, size/2)
		for j := range raw {
			raw[j] = byte(rnd.Uint32())
		}
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": fmt.Sprintf("cm-%d", i), "namespace": "default"},
			"data":     map[string]any{"blob": fmt.Sprintf("%x", raw)},
		}})
	}
	b, err := bundle.New(objs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// chunked cuts b into n chunks of one Desired each, as the hub does.
func chunked(t *testing.T, app string, gen uint64, b *bundle.Bundle, n int) []*flotillav1.Desired {
	t.Helper()
	data := b.Compressed()
	size := (len(data) + n - 1) / n
	chunks := bundle.Split(data, size)
	if len(chunks) != n {
		t.Fatalf("%d bytes cut in %d chunks, want %d", len(data), len(chunks), n)
	}
	var out []*flotillav1.Desired
	for i, c := range chunks {
		out = append(out, &flotillav1.Desired{
			App: app, Generation: gen, Revision: fmt.Sprintf("rev%d", gen), Digest: b.Digest,
			ChunkIndex: uint32(i), ChunkCount: uint32(n), BundleChunk: c, BundleSize: uint64(len(data)),
		})
	}
	return out
}

func pick(ds []*flotillav1.Desired, idx ...int) []*flotillav1.Desired {
	var out []*flotillav1.Desired
	for _, i := range idx {
		out = append(out, ds[i])
	}
	return out
}

// TestChunkAssembly sends bundles in chunks over a real stream, with chunks lost, duplicated,
// reordered, of a newer generation interleaved, and larger than declared or allowed: a bundle
// is handed on only when complete and intact, a broken one is nacked once, duplicates and
// stale chunks change nothing, and no partial bundle is left behind.
func TestChunkAssembly(t *testing.T) {
	b1, b2 := testBundle(t, 4, 2000), testBundle(t, 5, 2000)
	g1, g2 := chunked(t, "web", 1, b1, 4), chunked(t, "web", 2, b2, 4)
	under := chunked(t, "web", 1, b1, 4) // declares less than its chunks hold
	for _, d := range under {
		d.BundleSize -= 10
	}
	over := chunked(t, "web", 1, b1, 4)
	over[0].BundleSize = uint64(chunks.New(nil, maxBundleSize).MaxCompressed()) + 1
	malformed := &flotillav1.Desired{App: "web", Generation: 1, Digest: b1.Digest, ChunkCount: 0}
	empty := chunked(t, "web", 1, b1, 4)
	empty[1].BundleChunk = nil

	tests := []struct {
		name          string
		script        []*flotillav1.Desired
		applied       []string
		nacked        []string
		nackedBecause string
	}{
		{name: "in order", script: g1, applied: []string{"web/1"}},
		{name: "duplicated", script: append(pick(g1, 0, 1, 1, 0, 2, 3, 3), g1...), applied: []string{"web/1"}},
		{name: "lost", script: append(pick(g1, 0, 1, 3), g2...), applied: []string{"web/2"}, nacked: []string{"web/1"}, nackedBecause: "lost"},
		{name: "first lost", script: append(pick(g1, 1, 2, 3), g2...), applied: []string{"web/2"}, nacked: []string{"web/1"}, nackedBecause: "without chunk 1"},
		{name: "out of order", script: append(pick(g1, 0, 2, 1, 3), g2...), applied: []string{"web/2"}, nacked: []string{"web/1"}, nackedBecause: "reordered"},
		{name: "newer generation drops the partial one", script: append(append(pick(g1, 0, 1), g2...), pick(g1, 2, 3)...), applied: []string{"web/2"}},
		{name: "interleaved generations", script: append(pick(g2, 0, 1), pick(g1, 0, 1, 2, 3)...), nacked: nil},
		{name: "more than declared", script: under, nacked: []string{"web/1"}, nackedBecause: "more than the size the bundle declares"},
		{name: "declared more than allowed", script: over, nacked: []string{"web/1"}, nackedBecause: "larger than the"},
		{name: "malformed", script: []*flotillav1.Desired{malformed}, nacked: []string{"web/1"}, nackedBecause: "malformed"},
		{name: "empty chunk", script: empty, nacked: []string{"web/1"}, nackedBecause: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			applied, nacked, errs, c, _ := runScript(t, tt.script)
			if !slices.Equal(applied, tt.applied) || !slices.Equal(nacked, tt.nacked) {
				t.Fatalf("handed on %v, nacked %v %q; want %v, %v", applied, nacked, errs, tt.applied, tt.nacked)
			}
			for _, e := range errs {
				if !strings.Contains(e, tt.nackedBecause) {
					t.Errorf("nack %q does not say %q", e, tt.nackedBecause)
				}
			}
			if tt.name != "interleaved generations" && c.chunks.Partial() != 0 {
				t.Errorf("partial bundles left: %d", c.chunks.Partial())
			}
		})
	}
}

// TestChunkAssemblyBoundedWithoutDeclaredSize: an older hub declares no size; a bundle whose
// chunks exceed what the agent accepts is nacked as soon as they do, its buffer dropped.
func TestChunkAssemblyBoundedWithoutDeclaredSize(t *testing.T) {
	const chunk = 1 << 20
	n := chunks.New(nil, maxBundleSize).MaxCompressed()/chunk + 2
	filler := make([]byte, chunk)
	var script []*flotillav1.Desired
	for i := range n {
		script = append(script, &flotillav1.Desired{
			App: "big", Generation: 3, Digest: "sha256:00", ChunkIndex: uint32(i), ChunkCount: uint32(n), BundleChunk: filler,
		})
	}
	applied, nacked, errs, c, _ := runScript(t, script)
	if len(applied) != 0 || !slices.Equal(nacked, []string{"big/3"}) || !strings.Contains(errs[0], "more than what this agent accepts") {
		t.Fatalf("handed on %v, nacked %v %q; want one nack of big/3 for its size", applied, nacked, errs)
	}
	if c.chunks.Partial() != 0 {
		t.Errorf("partial bundles left: %d", c.chunks.Partial())
	}
}

// TestChunkAssemblyAcrossStreams: chunks of a stream that ended are forgotten, and a bundle
// that failed on one stream is accepted when the next stream's hub sends it again.
func TestChunkAssemblyAcrossStreams(t *testing.T) {
	b := testBundle(t, 3, 2000)
	g := chunked(t, "web", 1, b, 3)
	c := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if _, err := c.assemble(g[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.assemble(g[2]); err == nil {
		t.Fatal("a chunk lost: no error")
	}
	if d, err := c.assemble(g[1]); d != nil || err != nil {
		t.Fatalf("a chunk of the failed generation: %v, %v; want it ignored", d, err)
	}
	c.streamEnded()
	for i, m := range g {
		d, err := c.assemble(m)
		if err != nil || (i == len(g)-1) != (d != nil) {
			t.Fatalf("on the next stream, chunk %d: %v, %v", i+1, d != nil, err)
		}
	}
}
