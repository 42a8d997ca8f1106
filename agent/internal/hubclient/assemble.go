package hubclient

import (
	"bytes"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/agent/internal/health"
	"github.com/flotilla-dev/flotilla/agent/internal/syncer"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// assembly collects the chunks of one app's bundle for one generation.
type assembly struct {
	head   *flotillav1.Desired
	chunks [][]byte
}

// assemble takes one Desired message. It returns the complete desired state once the last
// chunk of a generation arrived and the digest checked out, nil while chunks are missing, and
// an error for a bundle that must not be applied.
func (c *Client) assemble(m *flotillav1.Desired) (*syncer.Desired, error) {
	if m.ChunkCount == 0 || m.ChunkIndex >= m.ChunkCount {
		return nil, fmt.Errorf("chunk %d of %d is malformed", m.ChunkIndex, m.ChunkCount)
	}
	c.mu.Lock()
	a := c.partial[m.App]
	if m.ChunkIndex == 0 {
		a = &assembly{head: m}
		c.partial[m.App] = a
	}
	if a == nil || a.head.Generation != m.Generation || a.head.ChunkCount != m.ChunkCount || int(m.ChunkIndex) != len(a.chunks) {
		delete(c.partial, m.App)
		c.mu.Unlock()
		return nil, fmt.Errorf("chunk %d of %d arrived out of order", m.ChunkIndex, m.ChunkCount)
	}
	a.chunks = append(a.chunks, m.BundleChunk)
	if len(a.chunks) < int(m.ChunkCount) {
		c.mu.Unlock()
		return nil, nil
	}
	delete(c.partial, m.App)
	c.mu.Unlock()

	data, err := bundle.Decompress(bytes.Join(a.chunks, nil), maxBundleSize)
	if err != nil {
		return nil, err
	}
	if got := bundle.Digest(data); got != a.head.Digest {
		return nil, fmt.Errorf("bundle digest %s does not match the announced %s", got, a.head.Digest)
	}
	objs, err := bundle.Decode(data)
	if err != nil {
		return nil, err
	}
	return desiredFromProto(a.head, objs, data), nil
}

func desiredFromProto(h *flotillav1.Desired, objs []*unstructured.Unstructured, data []byte) *syncer.Desired {
	d := &syncer.Desired{
		App: h.App, Generation: h.Generation, Revision: h.Revision, Digest: h.Digest, Namespace: h.Namespace,
		Objects: objs, Bundle: data, SyncRequested: h.SyncRequested, PruneConfirmed: h.PruneConfirmed,
	}
	if p := h.SyncPolicy; p != nil {
		d.Policy = syncer.SyncPolicy{
			Automated: p.Automated, Prune: p.Prune, SelfHeal: p.SelfHeal, AllowEmpty: p.AllowEmpty,
			CreateNamespace: p.CreateNamespace, PruneLast: p.PruneLast, PreserveResourcesOnDeletion: p.PreserveResourcesOnDeletion,
		}
		if r := p.Retry; r != nil {
			d.Policy.Retry = syncer.Retry{
				Limit: int(r.Limit), Duration: time.Duration(r.BackoffDurationMs) * time.Millisecond,
				Factor: r.BackoffFactor, MaxDuration: time.Duration(r.BackoffMaxDurationMs) * time.Millisecond,
			}
		}
	}
	d.Access = accessFromProto(h.Policy)
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
