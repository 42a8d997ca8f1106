package hubclient

import (
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/syncer"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// assemble takes one Desired message. It returns the complete desired state once the last
// chunk of a generation arrived and the digest checked out (chunks.Assembler); nil while
// chunks are missing and for a chunk that changes nothing; and an error for a bundle that
// must not be applied, whose other chunks are then ignored.
func (c *Client) assemble(m *flotillav1.Desired) (*syncer.Desired, error) {
	head, data, err := c.chunks.Add(m)
	if head == nil || err != nil {
		return nil, err
	}
	objs, err := bundle.Decode(data)
	if err != nil {
		return nil, err
	}
	return desiredFromProto(head, objs, data), nil
}

// streamEnded forgets every partial bundle and which generations were assembled or failed:
// the next stream's hub sends again whatever the agent does not hold.
func (c *Client) streamEnded() { c.chunks.Reset() }

func desiredFromProto(h *flotillav1.Desired, objs []*unstructured.Unstructured, data []byte) *syncer.Desired {
	d := &syncer.Desired{
		App: h.App, Generation: h.Generation, Revision: h.Revision, Digest: h.Digest, Namespace: h.Namespace,
		Objects: objs, Bundle: data, SyncRequested: h.SyncRequested, PruneConfirmed: h.PruneConfirmed,
		DependsOn: h.DependsOn,
	}
	if p := h.SyncPolicy; p != nil {
		d.Policy = syncer.SyncPolicy{
			Automated: p.Automated, Prune: p.Prune, SelfHeal: p.SelfHeal, AllowEmpty: p.AllowEmpty,
			CreateNamespace: p.CreateNamespace, PruneLast: p.PruneLast, PreserveResourcesOnDeletion: p.PreserveResourcesOnDeletion, Force: p.Force,
			RespectIgnoreDifferences: p.RespectIgnoreDifferences, PrunePropagation: p.PrunePropagationPolicy, SkipValidation: p.SkipValidation,
		}
		if r := p.Retry; r != nil {
			d.Policy.Retry = syncer.Retry{
				Limit: int(r.Limit), Duration: time.Duration(r.BackoffDurationMs) * time.Millisecond,
				Factor: r.BackoffFactor, MaxDuration: time.Duration(r.BackoffMaxDurationMs) * time.Millisecond,
			}
		}
	}
	d.Access = accessFromProto(h.Policy)
	for _, r := range h.IgnoreDifferences {
		d.Ignore = append(d.Ignore, ignore.Rule{
			Group: r.Group, Kind: r.Kind, Name: r.Name, Namespace: r.Namespace, JSONPointers: r.JsonPointers,
			JQPathExpressions: r.JqPathExpressions, ManagedFieldsManagers: r.ManagedFieldsManagers,
		})
	}
	if hp := h.HealthPolicy; hp != nil {
		d.Health = syncer.HealthPolicy{
			ProgressDeadline: time.Duration(hp.ProgressDeadlineMs) * time.Millisecond, AutoRollback: hp.AutoRollback,
		}
		for _, r := range hp.Rules {
			d.Health.Rules = append(d.Health.Rules, health.Rule{Group: r.Group, Kind: r.Kind, Expression: r.Expression})
		}
	}
	if h.CommitTimeUnixMs > 0 {
		d.CommitTime = time.UnixMilli(h.CommitTimeUnixMs)
	}
	return d
}

// accessFromProto maps the app's spec.policy; an unset one is the default (fails closed).
func accessFromProto(p *flotillav1.Policy) syncer.AccessPolicy {
	var out syncer.AccessPolicy
	if p == nil {
		return out
	}
	out.Namespaces = p.Namespaces
	for _, gk := range p.ClusterResources {
		out.ClusterResources = append(out.ClusterResources, schema.GroupKind{Group: gk.Group, Kind: gk.Kind})
	}
	for _, gk := range p.Deny {
		out.Deny = append(out.Deny, schema.GroupKind{Group: gk.Group, Kind: gk.Kind})
	}
	return out
}
