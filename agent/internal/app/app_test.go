package app

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/agent/internal/metrics"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// TestKubeAPILimits: the client limits reach the rest config; non-positive ones are refused
// naming the flags.
func TestKubeAPILimits(t *testing.T) {
	kubeconfig := writeKubeconfig(t)
	o := NewOptions()
	fs := pflag.NewFlagSet("flotilla-agent", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse([]string{"--kubeconfig", kubeconfig, "--kube-api-qps", "20", "--kube-api-burst", "40"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := restConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QPS != 20 || cfg.Burst != 40 {
		t.Errorf("QPS, Burst = %v, %v; want 20, 40", cfg.QPS, cfg.Burst)
	}
	o.KubeAPIQPS = 0
	if _, err := restConfig(o); err == nil || !strings.Contains(err.Error(), "--kube-api-qps") {
		t.Errorf("qps 0: err = %v, want one naming --kube-api-qps", err)
	}
}

// writeKubeconfig writes a kubeconfig of a cluster at 127.0.0.1:6443 and returns its path.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {token: t}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return kubeconfig
}

// TestProfilingIsOptIn: /debug/pprof/heap is served only with --profiling; /metrics always.
func TestProfilingIsOptIn(t *testing.T) {
	for _, profiling := range []bool{false, true} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- serveHealth(ctx, l, metrics.New("test"), profiling) }()
		get := func(path string) int {
			var code int
			testwait.For(t, 10*time.Second, "GET "+path, func(ctx context.Context) (bool, error) {
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.Addr().String()+path, nil)
				if err != nil {
					return false, err
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return false, nil // not serving yet
				}
				_ = resp.Body.Close()
				code = resp.StatusCode
				return true, nil
			})
			return code
		}
		if code := get("/metrics"); code != http.StatusOK {
			t.Errorf("profiling %v: /metrics answered %d", profiling, code)
		}
		want := http.StatusNotFound
		if profiling {
			want = http.StatusOK
		}
		if code := get("/debug/pprof/heap"); code != want {
			t.Errorf("profiling %v: /debug/pprof/heap answered %d, want %d", profiling, code, want)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
}

// TestGCPercent: the agent collects garbage at defaultGCPercent, unless GOGC says otherwise.
func TestGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tuneGC(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, defaultGCPercent)
	}
	tuneGC(func(k string) string {
		if k == "GOGC" {
			return "200"
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: GC percent changed to %d", got)
	}
}
