package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
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
