package hubclient

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/syncer"
)

// hugeStatus has n resources, every tenth unhealthy, and n/10 drift items with diffs of
// diffSize bytes.
func hugeStatus(n, diffSize int) syncer.AppStatus {
	s := syncer.AppStatus{App: "web", Sync: "OutOfSync", Health: "Degraded", Message: "revision abc synced"}
	for i := range n {
		ref := apply.ObjectRef{Version: "v1", Kind: "ConfigMap", Namespace: "web", Name: fmt.Sprintf("config-with-a-long-name-%06d", i)}
		health, msg := "Healthy", ""
		if i%10 == 0 {
			health, msg = "Degraded", "not ready: "+strings.Repeat("x", 50)
			s.Drift = append(s.Drift, syncer.DriftItem{Object: ref, Type: "modified", Diff: strings.Repeat("-a: 1\n+a: 2\n", diffSize/12)})
		}
		s.Resources = append(s.Resources, syncer.ResourceStatus{Object: ref, Health: health, Message: msg})
	}
	return s
}

func TestFitStatus(t *testing.T) {
	small := statusToProto(hugeStatus(20, 100))
	if len(small.Resources) != 20 || len(small.Drift) != 2 || small.Message != "revision abc synced" {
		t.Fatalf("a small status was changed: %d resources, %d drift, %q", len(small.Resources), len(small.Drift), small.Message)
	}

	s := hugeStatus(40000, 20000) // about 80 MB of diffs, 4 MB of resources
	p := statusToProto(s)
	if size := proto.Size(p); size > statusBudget {
		t.Fatalf("status of %d bytes, over the budget of %d", size, statusBudget)
	}
	unhealthy := 0
	for _, r := range p.Resources {
		if r.Health != "Healthy" {
			unhealthy++
		}
	}
	if unhealthy != 4000 {
		t.Errorf("%d unhealthy resources kept, want all 4000 before any healthy one", unhealthy)
	}
	for _, d := range p.Drift {
		if len(d.Diff) > maxDiff+100 || !strings.Contains(d.Diff, "more bytes of diff not shown") {
			t.Fatalf("a diff of %d bytes, want it cut to %d and saying so", len(d.Diff), maxDiff)
		}
	}
	want := fmt.Sprintf("revision abc synced; %d more resources and %d more drifted objects not shown (status size limit)",
		len(s.Resources)-len(p.Resources), len(s.Drift)-len(p.Drift))
	if p.Message != want || len(p.Drift) == len(s.Drift) || len(p.Resources) == len(s.Resources) {
		t.Errorf("message %q, want %q", p.Message, want)
	}
	t.Logf("kept %d of %d resources and %d of %d drift items in %d bytes", len(p.Resources), len(s.Resources), len(p.Drift), len(s.Drift), proto.Size(p))
}

// TestHugeStatusReachesHub sends a status far over the message size limit on a real stream:
// the hub receives it, cut to the budget, and the stream stays up.
func TestHugeStatusReachesHub(t *testing.T) {
	_, _, _, c, got := runScript(t, nil)
	c.out.Status(hugeStatus(40000, 2000))
	timeout := time.After(30 * time.Second)
	status := false
	for {
		select {
		case m := <-got:
			if st := m.GetStatus(); st != nil && st.App == "web" {
				status = true
				if !strings.Contains(st.Message, "not shown (status size limit)") {
					t.Errorf("status message %q does not say what was left out", st.Message)
				}
				c.out.Nack("after", 1, "after") // the stream is still up: this arrives too
			}
			if n := m.GetNack(); n != nil && n.App == "after" {
				return
			}
		case <-timeout:
			t.Fatalf("within 30s: status received %v, the message after it not", status)
		}
	}
}
