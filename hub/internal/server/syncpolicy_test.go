package server

import (
	"testing"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
)

// TestSyncPolicyToProto: every sync option an Application sets reaches the agent.
func TestSyncPolicyToProto(t *testing.T) {
	p := syncPolicyToProto(&fleet.Desired{Policy: apps.SyncPolicy{
		Automated: true, Prune: true, SelfHeal: true, AllowEmpty: true, CreateNamespace: true, PruneLast: true,
		PreserveResourcesOnDeletion: true, Force: true,
	}})
	if !p.Automated || !p.Prune || !p.SelfHeal || !p.AllowEmpty || !p.CreateNamespace || !p.PruneLast ||
		!p.PreserveResourcesOnDeletion || !p.Force {
		t.Errorf("sync policy %+v, want every option set", p)
	}
}
