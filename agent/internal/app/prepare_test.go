package app

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepareFailsOnATakenPortBeforeAnythingElse: an agent whose --http-listen is taken (a
// second agent on one machine) fails in prepare, naming the flag and the address, before it
// talks to its cluster or a hub; a missing kubeconfig fails there too. A free port is bound
// and handed on.
func TestPrepareFailsOnATakenPortBeforeAnythingElse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	kubeconfig := writeKubeconfig(t)

	o := NewOptions()
	o.Kubeconfig, o.HTTPListen = kubeconfig, taken.Addr().String()
	if _, err := prepare(o); err == nil || !strings.Contains(err.Error(), "--http-listen "+taken.Addr().String()) {
		t.Fatalf("prepare with a taken port = %v, want an error naming --http-listen and the address", err)
	}

	o.Kubeconfig = filepath.Join(t.TempDir(), "missing")
	if _, err := prepare(o); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Fatalf("prepare with a missing kubeconfig = %v, want a kubeconfig error", err)
	}

	o.Kubeconfig, o.HTTPListen = kubeconfig, "127.0.0.1:0"
	p, err := prepare(o)
	if err != nil {
		t.Fatal(err)
	}
	defer p.health.Close()
	if p.rest == nil || p.health == nil {
		t.Fatalf("prepared %+v, want a rest config and a bound listener", p)
	}
}
