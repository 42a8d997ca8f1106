package hubclient

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/syncer"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/ignore"
)

func TestDesiredFromProtoHealthPolicy(t *testing.T) {
	d := desiredFromProto(&flotillav1.Desired{
		App: "shop", Generation: 3, Revision: "abc", Digest: "sha256:00",
		HealthPolicy: &flotillav1.HealthPolicy{ProgressDeadlineMs: 90_000, AutoRollback: true, Rules: []*flotillav1.HealthRule{
			{Group: "example.com", Kind: "Database", Expression: `{"status": "Healthy"}`},
			{Kind: "ConfigMap", Expression: `{"status": "Healthy", "message": "present"}`},
		}},
	}, nil, nil)
	want := syncer.HealthPolicy{ProgressDeadline: 90 * time.Second, AutoRollback: true, Rules: []health.Rule{
		{Group: "example.com", Kind: "Database", Expression: `{"status": "Healthy"}`},
		{Kind: "ConfigMap", Expression: `{"status": "Healthy", "message": "present"}`},
	}}
	if !reflect.DeepEqual(d.Health, want) {
		t.Errorf("health policy %+v, want %+v", d.Health, want)
	}
}

func TestStatusToProtoRolledBack(t *testing.T) {
	p := statusToProto(syncer.AppStatus{App: "shop", Health: "Degraded", AppliedRevision: "a1", HealthyRevision: "a1", RolledBackRevision: "b2",
		Message: "RolledBack: revision b2 Degraded: Deployment.apps/shop/web: Progress deadline exceeded"})
	if p.RolledBackRevision != "b2" || p.AppliedRevision != "a1" || p.Health != "Degraded" {
		t.Errorf("status %+v", p)
	}
}

func TestDesiredFromProtoPolicy(t *testing.T) {
	d := desiredFromProto(&flotillav1.Desired{App: "shop", Policy: &flotillav1.Policy{
		Namespaces:       []string{"shop", "team-*"},
		ClusterResources: []*flotillav1.GroupKind{{Kind: "Namespace"}},
		Deny:             []*flotillav1.GroupKind{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}},
	}}, nil, nil)
	want := syncer.AccessPolicy{
		Namespaces:       []string{"shop", "team-*"},
		ClusterResources: []schema.GroupKind{{Kind: "Namespace"}},
		Deny:             []schema.GroupKind{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}},
	}
	if !reflect.DeepEqual(d.Access, want) {
		t.Errorf("policy %+v, want %+v", d.Access, want)
	}
	// An unset policy (an older hub) is the default, which fails closed.
	if d := desiredFromProto(&flotillav1.Desired{App: "shop"}, nil, nil); !reflect.DeepEqual(d.Access, syncer.AccessPolicy{}) {
		t.Errorf("unset policy %+v, want the default", d.Access)
	}
}

func TestDesiredFromProtoSyncPolicy(t *testing.T) {
	d := desiredFromProto(&flotillav1.Desired{App: "shop", SyncPolicy: &flotillav1.SyncPolicy{
		Automated: true, Prune: true, PreserveResourcesOnDeletion: true, Force: true,
	}}, nil, nil)
	if p := d.Policy; !p.Automated || !p.Prune || !p.PreserveResourcesOnDeletion || !p.Force {
		t.Errorf("sync policy %+v, want automated, prune, preserve and force", p)
	}
}

func TestDesiredFromProtoDependsOn(t *testing.T) {
	d := desiredFromProto(&flotillav1.Desired{App: "shop", DependsOn: []string{"cert-manager", "db"}}, nil, nil)
	if !reflect.DeepEqual(d.DependsOn, []string{"cert-manager", "db"}) {
		t.Errorf("dependsOn %v, want [cert-manager db]", d.DependsOn)
	}
}

func TestDesiredFromProtoIgnoreDifferences(t *testing.T) {
	d := desiredFromProto(&flotillav1.Desired{
		App:        "shop",
		SyncPolicy: &flotillav1.SyncPolicy{Automated: true, RespectIgnoreDifferences: true, PrunePropagationPolicy: "orphan", SkipValidation: true},
		IgnoreDifferences: []*flotillav1.IgnoreDifferencesRule{
			{Group: "apps", Kind: "Deployment", Name: "web", Namespace: "shop", JsonPointers: []string{"/spec/replicas"},
				JqPathExpressions: []string{".spec.template.spec.containers[].image"}, ManagedFieldsManagers: []string{"kube-controller-manager"}},
		},
	}, nil, nil)
	want := []ignore.Rule{{Group: "apps", Kind: "Deployment", Name: "web", Namespace: "shop", JSONPointers: []string{"/spec/replicas"},
		JQPathExpressions: []string{".spec.template.spec.containers[].image"}, ManagedFieldsManagers: []string{"kube-controller-manager"}}}
	if !reflect.DeepEqual(d.Ignore, want) {
		t.Errorf("ignore rules %+v, want %+v", d.Ignore, want)
	}
	if p := d.Policy; !p.RespectIgnoreDifferences || p.PrunePropagation != "orphan" || !p.SkipValidation {
		t.Errorf("sync policy %+v, want RespectIgnoreDifferences, orphan propagation, no validation", p)
	}
}

// TestHubEndedStream: a stream the hub cancelled ends in words of the hub's doing; the agent's
// own cancel and other statuses keep their error.
func TestHubEndedStream(t *testing.T) {
	canceled := status.Error(codes.Canceled, "context canceled")
	if err := hubEnded(context.Background(), canceled); !errors.Is(err, errHubEnded) {
		t.Errorf("the hub's cancel: %v, want %v", err, errHubEnded)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := hubEnded(ctx, canceled); err != canceled {
		t.Errorf("the agent's own cancel: %v, want it unchanged", err)
	}
	unavailable := status.Error(codes.Unavailable, "transport is closing")
	if err := hubEnded(context.Background(), unavailable); err != unavailable {
		t.Errorf("a torn-down connection: %v, want it unchanged", err)
	}
}
