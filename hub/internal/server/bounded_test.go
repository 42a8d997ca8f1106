package server

import (
	"github.com/flotilla-dev/flotilla/shared/testwait"

	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// TestAgentReportsOnlyOnItsApps: status, ACK and NACK for an app the hub did not send the
// cluster (and the agent did not hold when it connected) leave no row and no history; those
// for its apps are recorded, cut down to the report bounds.
func TestAgentReportsOnlyOnItsApps(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	b := configMapBundle(t, "web", "v1")
	h.fleet.SetDesired(fleet.Desired{Cluster: "c1", App: "web", Revision: "r1", Bundle: b})
	stream := connect(t, h.dial(t, h.agentCert(t, "c1")), &flotillav1.HeldApp{App: "old", Generation: 2, Revision: "r0", Digest: "sha256:x"})
	if m, err := stream.Recv(); err != nil || m.GetDesired().GetApp() != "web" {
		t.Fatalf("first message %v, %v; want Desired web", m, err)
	}
	send := func(m *flotillav1.AgentMessage) {
		t.Helper()
		if err := stream.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 {
		made := "made-up-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: &flotillav1.AppStatus{App: made, Sync: "Synced", Health: "Healthy"}}})
		send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Nack{Nack: &flotillav1.Nack{App: made, Generation: 1, Error: "boom"}}})
		send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Ack{Ack: &flotillav1.Ack{App: made, Generation: 1, Revision: "r1", Digest: "d"}}})
	}
	drift := make([]*flotillav1.DriftItem, 3*fleet.MaxDriftItems)
	for i := range drift {
		drift[i] = &flotillav1.DriftItem{Object: &flotillav1.ObjectRef{Kind: "ConfigMap", Name: "cm"}, Type: "modified", Diff: strings.Repeat("d", 10<<10)}
	}
	send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: &flotillav1.AppStatus{
		App: "web", Sync: "OutOfSync", Health: "Healthy", Message: strings.Repeat("m", 512<<10), Drift: drift, // under the 4 MiB message limit
	}}})
	send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: &flotillav1.AppStatus{App: "old", Sync: "Synced", Health: "Healthy"}}})
	testwait.Until(t, 10*time.Second, "condition", func() bool {
		_, web := h.fleet.LatestReport("c1", "web")
		_, old := h.fleet.LatestReport("c1", "old")
		return web && old
	})
	for _, r := range h.fleet.Rows() {
		if r.App != "web" && r.App != "old" {
			t.Errorf("row for %s on %s, an app the hub never sent there", r.App, r.Cluster)
		}
	}
	if recs, err := h.store.ListHistory("made-up-aa", "c1", 0); err != nil || len(recs) != 0 {
		t.Errorf("history of a made-up app: %v, %v", recs, err)
	}
	r, _ := h.fleet.LatestReport("c1", "web")
	size := len(r.Message)
	for _, d := range r.Drift {
		size += len(d.Diff)
	}
	if len(r.Drift) != fleet.MaxDriftItems || size > fleet.MaxReportBytes+fleet.MaxMessageBytes+fleet.MaxDiffBytes ||
		!strings.Contains(r.Message, "200 more drifted objects not shown") {
		t.Errorf("report kept with %d drift items, %d bytes, message %.80q…; want it cut to the bounds, saying so", len(r.Drift), size, r.Message)
	}
}

// TestHelloWithTooManyAppsRefused: an agent claiming more apps than MaxAppsPerAgent is refused.
func TestHelloWithTooManyAppsRefused(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := flotillav1.NewAgentServiceClient(h.dial(t, h.agentCert(t, "c1"))).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held := make([]*flotillav1.HeldApp, MaxAppsPerAgent+1)
	for i := range held {
		held[i] = &flotillav1.HeldApp{App: "app-" + strings.Repeat("x", i%50) + string(rune('a'+i%26)), Generation: 1}
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Hello{Hello: &flotillav1.Hello{
		AgentVersion: "test", ProtocolVersion: version.Protocol, Apps: held,
	}}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "1001 apps") {
		t.Fatalf("Hello with %d apps: %v, want ResourceExhausted naming the count", len(held), err)
	}
}
