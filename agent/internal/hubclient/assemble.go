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
	"github.com/flotilla-dev/flotilla/shared/ignore"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// assembly collects the chunks of one app's bundle for one generation, in order.
type assembly struct {
	head  *flotillav1.Desired // the first chunk
	next  uint32              // the index of the chunk expected next
	limit int                 // bytes the whole compressed bundle may have
	buf   bytes.Buffer
}

// maxCompressedBundle bounds the compressed bundle an agent buffers: no more than the
// decompressed bundle it accepts (bundles are JSON, which gzip never enlarges by more than its
// few bytes of framing).
const maxCompressedBundle = maxBundleSize + 1<<10

// assemble takes one Desired message. It returns the complete desired state once the last
// chunk of a generation arrived and the digest checked out; nil while chunks are missing and
// for a chunk that changes nothing (a duplicate, or of a generation older than one already
// started or done); and an error for a bundle that must not be applied, whose other chunks
// are then ignored.
//
// The chunks of a generation arrive in order on one stream; the buffer holds at most the
// bundle size the first chunk declares, and never more than maxCompressedBundle. A chunk of a
// newer generation drops the partial bundle of an older one; a chunk that skips one (a chunk
// lost) drops the partial bundle and fails its generation.
func (c *Client) assemble(m *flotillav1.Desired) (*syncer.Desired, error) {
	c.mu.Lock()
	a, err := c.collect(m)
	c.mu.Unlock()
	if a == nil || err != nil {
		return nil, err
	}
	if a.head.BundleSize > 0 && uint64(a.buf.Len()) != a.head.BundleSize {
		return nil, fmt.Errorf("the %d chunks hold %d bytes, not the %d the bundle declares", a.head.ChunkCount, a.buf.Len(), a.head.BundleSize)
	}
	data, err := bundle.Decompress(a.buf.Bytes(), maxBundleSize)
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

// collect adds m to its app's partial bundle; it returns the assembly once it is complete.
// Caller holds c.mu.
func (c *Client) collect(m *flotillav1.Desired) (*assembly, error) {
	a := c.partial[m.App]
	if a != nil && m.Generation > a.head.Generation {
		c.log.Warn("partial bundle dropped: a newer generation started", logging.KeyApp, m.App,
			logging.KeyGeneration, a.head.Generation, logging.KeyChunks, fmt.Sprintf("%d/%d", a.next, a.head.ChunkCount))
		delete(c.partial, m.App)
		a = nil
	}
	switch {
	case a != nil && m.Generation < a.head.Generation, a == nil && m.Generation <= c.assembled[m.App]:
		return nil, nil // a stale or duplicate chunk: delivery is idempotent
	case a == nil:
		return c.start(m)
	}
	// A chunk of the generation being assembled.
	switch {
	case m.ChunkCount != a.head.ChunkCount || m.Digest != a.head.Digest || m.BundleSize != a.head.BundleSize:
		return nil, c.fail(m, fmt.Errorf("chunk %d of %d does not match chunk 1 of %d of the same generation", m.ChunkIndex+1, m.ChunkCount, a.head.ChunkCount))
	case m.ChunkIndex < a.next:
		return nil, nil // a duplicate
	case m.ChunkIndex > a.next:
		return nil, c.fail(m, fmt.Errorf("chunk %d of %d arrived after chunk %d: chunks were lost or reordered", m.ChunkIndex+1, m.ChunkCount, a.next))
	}
	return c.add(a, m)
}

// start begins assembling a generation with its first chunk. Caller holds c.mu.
func (c *Client) start(m *flotillav1.Desired) (*assembly, error) {
	limit := maxCompressedBundle
	switch {
	case m.ChunkCount == 0 || m.ChunkIndex >= m.ChunkCount:
		return nil, c.fail(m, fmt.Errorf("chunk %d of %d is malformed", m.ChunkIndex+1, m.ChunkCount))
	case m.ChunkIndex != 0:
		return nil, c.fail(m, fmt.Errorf("chunk %d of %d arrived without chunk 1: chunks were lost or reordered", m.ChunkIndex+1, m.ChunkCount))
	case m.BundleSize > uint64(limit):
		return nil, c.fail(m, fmt.Errorf("bundle of %d compressed bytes is larger than the %d this agent accepts", m.BundleSize, limit))
	case m.BundleSize > 0:
		limit = int(m.BundleSize)
	}
	if int64(m.ChunkCount) > int64(limit) {
		return nil, c.fail(m, fmt.Errorf("%d chunks for a bundle of at most %d bytes", m.ChunkCount, limit))
	}
	a := &assembly{head: m, limit: limit}
	if m.BundleSize > 0 && m.ChunkCount > 1 {
		a.buf.Grow(limit)
	}
	c.partial[m.App] = a
	return c.add(a, m)
}

// add appends the next chunk and returns a once it is complete. Caller holds c.mu.
func (c *Client) add(a *assembly, m *flotillav1.Desired) (*assembly, error) {
	if len(m.BundleChunk) == 0 {
		return nil, c.fail(m, fmt.Errorf("chunk %d of %d is empty", m.ChunkIndex+1, m.ChunkCount))
	}
	if a.buf.Len()+len(m.BundleChunk) > a.limit {
		what := "the size the bundle declares"
		if a.head.BundleSize == 0 {
			what = "what this agent accepts"
		}
		return nil, c.fail(m, fmt.Errorf("chunks 1 to %d of %d hold more than %s (%d bytes)", m.ChunkIndex+1, m.ChunkCount, what, a.limit))
	}
	a.buf.Write(m.BundleChunk)
	a.next++
	if a.next < m.ChunkCount {
		return nil, nil
	}
	delete(c.partial, m.App)
	c.assembled[m.App] = m.Generation
	return a, nil
}

// fail drops the partial bundle of m's generation and returns err: the caller nacks the
// generation, whose later chunks are then ignored. Caller holds c.mu.
func (c *Client) fail(m *flotillav1.Desired, err error) error {
	if a := c.partial[m.App]; a != nil && a.head.Generation == m.Generation {
		delete(c.partial, m.App)
	}
	c.assembled[m.App] = max(c.assembled[m.App], m.Generation)
	return err
}

// streamEnded forgets every partial bundle, whose chunks will never complete, and which
// generations were assembled or failed: the next stream's hub sends again whatever the agent
// does not hold.
func (c *Client) streamEnded() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.partial)
	clear(c.assembled)
}

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
