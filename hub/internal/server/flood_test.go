package server

import (
	"github.com/flotilla-dev/flotilla/shared/testwait"

	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// TestFloodingAgentIsLimited: an agent that floods the hub with status reports is slowed down
// and then disconnected with ResourceExhausted, while another agent is delivered its desired
// state and has its ACK recorded.
func TestFloodingAgentIsLimited(t *testing.T) {
	limits := RateLimits{PerSecond: 20, Burst: 20, MaxThrottled: 60}
	h := startHubLimited(t, limits)
	h.register(t, "flooder")
	h.register(t, "quiet")

	flooder := connect(t, h.dial(t, h.agentCert(t, "flooder")))
	var sent atomic.Int64
	flooded := make(chan error, 1)
	go func() {
		report := &flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: &flotillav1.AppStatus{
			App: "noise", Sync: "Synced", Health: "Healthy", Message: strings.Repeat("x", 512),
		}}}
		for {
			if err := flooder.Send(report); err != nil {
				break // the hub ended the stream: Recv says why
			}
			sent.Add(1)
		}
		for {
			if _, err := flooder.Recv(); err != nil {
				flooded <- err
				return
			}
		}
	}()
	// The flooder is past its burst, so it is being held, before the other agent connects.
	testwait.Until(t, 10*time.Second, "condition", func() bool { return sent.Load() > int64(limits.Burst) })

	quiet := connect(t, h.dial(t, h.agentCert(t, "quiet")))
	b := configMapBundle(t, "web", "v1")
	h.fleet.SetDesired(fleet.Desired{Cluster: "quiet", App: "web", Revision: "r1", Bundle: b})
	m, err := quiet.Recv()
	if err != nil {
		t.Fatal(err)
	}
	d := m.GetDesired()
	if d == nil || d.App != "web" || d.Digest != b.Digest {
		t.Fatalf("quiet agent got %v, want Desired web", m)
	}
	if err := quiet.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Ack{Ack: &flotillav1.Ack{
		App: "web", Generation: d.Generation, Revision: d.Revision, Digest: d.Digest,
	}}}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 10*time.Second, "condition", func() bool {
		for _, r := range h.fleet.Rows() {
			if r.Cluster == "quiet" && r.App == "web" && r.AppliedRevision == "r1" {
				return true
			}
		}
		return false
	})

	select {
	case err := <-flooded:
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "slow down") {
			t.Fatalf("flooder's stream ended with %v, want ResourceExhausted", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("flooder still connected after sending %d messages", sent.Load())
	}
	// The quiet agent's stream is still up: it still gets what is desired.
	b2 := configMapBundle(t, "web", "v2")
	h.fleet.SetDesired(fleet.Desired{Cluster: "quiet", App: "web", Revision: "r2", Bundle: b2})
	if m, err := quiet.Recv(); err != nil || m.GetDesired().GetDigest() != b2.Digest {
		t.Fatalf("quiet agent after the flood: %v, %v; want Desired web r2", m, err)
	}
}

// TestAgentWithinBurstIsNotLimited: a burst of reports within the limits, as an agent sends
// after reconnecting, is taken at once and all of it is recorded.
func TestAgentWithinBurstIsNotLimited(t *testing.T) {
	limits := RateLimits{PerSecond: 1, Burst: 30, MaxThrottled: 1}
	h := startHubLimited(t, limits)
	h.register(t, "c1")
	appName := func(i int) string { return "app-" + string(rune('a'+i%26)) + string(rune('a'+i/26)) }
	var held []*flotillav1.HeldApp // the apps it reports on are the apps it holds
	for i := range limits.Burst {
		held = append(held, &flotillav1.HeldApp{App: appName(i), Generation: 1, Revision: "r0", Digest: "sha256:old"})
	}
	stream := connect(t, h.dial(t, h.agentCert(t, "c1")), held...)
	for i := range limits.Burst {
		app := appName(i)
		if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: &flotillav1.AppStatus{
			App: app, Sync: "Synced", Health: "Healthy",
		}}}); err != nil {
			t.Fatal(err)
		}
	}
	testwait.Until(t, 10*time.Second, "condition", func() bool {
		n := 0
		for _, r := range h.fleet.Rows() {
			if r.Cluster == "c1" {
				n++
			}
		}
		return n == limits.Burst
	})
	// One more over the rate is held, not refused (MaxThrottled 1): the stream stays up.
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Heartbeat{Heartbeat: &flotillav1.Heartbeat{}}}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	h.fleet.SetDesired(fleet.Desired{Cluster: "c1", App: "web", Revision: "r1", Bundle: configMapBundle(t, "web", "v1")})
	if m, err := stream.Recv(); err != nil || m.GetDesired() == nil {
		t.Fatalf("after a burst within the limits: %v, %v; want Desired", m, err)
	}
}
