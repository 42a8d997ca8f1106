package server

import (
	"context"
	"slices"
	"testing"
	"time"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/testwait"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// TestCapabilitiesFromHelloAndLater: the cluster's capabilities come in Hello and again when
// they change; the fleet keeps the latest for the cluster's chart renders.
func TestCapabilitiesFromHelloAndLater(t *testing.T) {
	h := startHub(t)
	h.register(t, "c1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := flotillav1.NewAgentServiceClient(h.dial(t, h.agentCert(t, "c1"))).Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Hello{Hello: &flotillav1.Hello{
		AgentVersion: "test", ProtocolVersion: version.Protocol,
		Capabilities: &flotillav1.Capabilities{KubeVersion: "v1.33.2", ApiVersions: []string{"v1", "apps/v1"}},
	}}}); err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetWelcome() == nil {
		t.Fatalf("answer to Hello: %v, %v", m, err)
	}
	caps := h.fleet.Capabilities("c1")
	if caps.KubeVersion != "v1.33.2" || !slices.Equal(caps.APIVersions, []string{"apps/v1", "v1"}) {
		t.Errorf("capabilities after Hello %+v", caps)
	}
	if err := stream.Send(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Capabilities{Capabilities: &flotillav1.Capabilities{
		KubeVersion: "v1.33.2", ApiVersions: []string{"v1", "apps/v1", "monitoring.coreos.com/v1"},
	}}}); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, time.Minute, "the changed capabilities in the fleet", func() bool {
		return slices.Contains(h.fleet.Capabilities("c1").APIVersions, "monitoring.coreos.com/v1")
	})
	if got := h.fleet.Capabilities("c2"); got.KubeVersion != "" || got.APIVersions != nil {
		t.Errorf("a cluster that reported nothing has %+v, want none (Helm's defaults)", got)
	}
}
