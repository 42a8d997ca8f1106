// Package chunks reassembles the chunked Desired messages of the hub's stream into whole,
// verified bundles: the agent and the fleet simulator take their bundles from it.
package chunks

import (
	"bytes"
	"fmt"
	"log/slog"
	"sync"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/bundle"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// assembly collects the chunks of one app's bundle for one generation, in order.
type assembly struct {
	head  *flotillav1.Desired // the first chunk
	next  uint32              // the index of the chunk expected next
	limit int                 // bytes the whole compressed bundle may have
	buf   bytes.Buffer
}

// Assembler holds the partial bundles of one stream. It is safe for concurrent use.
type Assembler struct {
	log           *slog.Logger
	maxBundle     int64 // bytes a decompressed bundle may have
	maxCompressed int   // bytes a compressed bundle may have

	mu      sync.Mutex
	partial map[string]*assembly // bundles arriving in chunks, per app
	// assembled is, per app, the newest generation assembled or failed on this stream: its
	// chunks sent again are ignored.
	assembled map[string]uint64
}

// New returns an assembler that accepts decompressed bundles of at most maxBundle bytes. The
// compressed bundle it buffers is bounded by no more than that (bundles are JSON, which gzip
// never enlarges by more than its few bytes of framing).
func New(log *slog.Logger, maxBundle int64) *Assembler {
	return &Assembler{
		log: log, maxBundle: maxBundle, maxCompressed: int(maxBundle) + 1<<10,
		partial: map[string]*assembly{}, assembled: map[string]uint64{},
	}
}

// Add takes one Desired message. It returns the first chunk and the decompressed bundle once
// the last chunk of a generation arrived and the digest checked out; nil while chunks are
// missing and for a chunk that changes nothing (a duplicate, or of a generation older than
// one already started or done); and an error for a bundle that must not be applied, whose
// other chunks are then ignored.
//
// The chunks of a generation arrive in order on one stream; the buffer holds at most the
// bundle size the first chunk declares, and never more than the compressed limit. A chunk of
// a newer generation drops the partial bundle of an older one; a chunk that skips one (a
// chunk lost) drops the partial bundle and fails its generation.
func (s *Assembler) Add(m *flotillav1.Desired) (head *flotillav1.Desired, data []byte, err error) {
	s.mu.Lock()
	a, err := s.collect(m)
	s.mu.Unlock()
	if a == nil || err != nil {
		return nil, nil, err
	}
	if a.head.BundleSize > 0 && uint64(a.buf.Len()) != a.head.BundleSize {
		return nil, nil, fmt.Errorf("the %d chunks hold %d bytes, not the %d the bundle declares", a.head.ChunkCount, a.buf.Len(), a.head.BundleSize)
	}
	data, err = bundle.Decompress(a.buf.Bytes(), s.maxBundle)
	if err != nil {
		return nil, nil, err
	}
	if got := bundle.Digest(data); got != a.head.Digest {
		return nil, nil, fmt.Errorf("bundle digest %s does not match the announced %s", got, a.head.Digest)
	}
	return a.head, data, nil
}

// MaxCompressed is the most bytes of a compressed bundle the assembler buffers.
func (s *Assembler) MaxCompressed() int { return s.maxCompressed }

// Partial is the number of bundles whose chunks are still arriving.
func (s *Assembler) Partial() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.partial)
}

// Reset forgets every partial bundle, whose chunks will never complete, and which generations
// were assembled or failed: at the end of a stream, the next stream's hub sends again
// whatever the agent does not hold.
func (s *Assembler) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.partial)
	clear(s.assembled)
}

// collect adds m to its app's partial bundle; it returns the assembly once it is complete.
// Caller holds s.mu.
func (s *Assembler) collect(m *flotillav1.Desired) (*assembly, error) {
	a := s.partial[m.App]
	if a != nil && m.Generation > a.head.Generation {
		s.log.Warn("partial bundle dropped: a newer generation started", logging.KeyApp, m.App,
			logging.KeyGeneration, a.head.Generation, logging.KeyChunks, fmt.Sprintf("%d/%d", a.next, a.head.ChunkCount))
		delete(s.partial, m.App)
		a = nil
	}
	switch {
	case a != nil && m.Generation < a.head.Generation, a == nil && m.Generation <= s.assembled[m.App]:
		return nil, nil // a stale or duplicate chunk: delivery is idempotent
	case a == nil:
		return s.start(m)
	}
	// A chunk of the generation being assembled.
	switch {
	case m.ChunkCount != a.head.ChunkCount || m.Digest != a.head.Digest || m.BundleSize != a.head.BundleSize:
		return nil, s.fail(m, fmt.Errorf("chunk %d of %d does not match chunk 1 of %d of the same generation", m.ChunkIndex+1, m.ChunkCount, a.head.ChunkCount))
	case m.ChunkIndex < a.next:
		return nil, nil // a duplicate
	case m.ChunkIndex > a.next:
		return nil, s.fail(m, fmt.Errorf("chunk %d of %d arrived after chunk %d: chunks were lost or reordered", m.ChunkIndex+1, m.ChunkCount, a.next))
	}
	return s.add(a, m)
}

// start begins assembling a generation with its first chunk. Caller holds s.mu.
func (s *Assembler) start(m *flotillav1.Desired) (*assembly, error) {
	limit := s.maxCompressed
	switch {
	case m.ChunkCount == 0 || m.ChunkIndex >= m.ChunkCount:
		return nil, s.fail(m, fmt.Errorf("chunk %d of %d is malformed", m.ChunkIndex+1, m.ChunkCount))
	case m.ChunkIndex != 0:
		return nil, s.fail(m, fmt.Errorf("chunk %d of %d arrived without chunk 1: chunks were lost or reordered", m.ChunkIndex+1, m.ChunkCount))
	case m.BundleSize > uint64(limit):
		return nil, s.fail(m, fmt.Errorf("bundle of %d compressed bytes is larger than the %d this agent accepts", m.BundleSize, limit))
	case m.BundleSize > 0:
		limit = int(m.BundleSize)
	}
	if int64(m.ChunkCount) > int64(limit) {
		return nil, s.fail(m, fmt.Errorf("%d chunks for a bundle of at most %d bytes", m.ChunkCount, limit))
	}
	a := &assembly{head: m, limit: limit}
	if m.BundleSize > 0 && m.ChunkCount > 1 {
		a.buf.Grow(limit)
	}
	s.partial[m.App] = a
	return s.add(a, m)
}

// add appends the next chunk and returns a once it is complete. Caller holds s.mu.
func (s *Assembler) add(a *assembly, m *flotillav1.Desired) (*assembly, error) {
	if len(m.BundleChunk) == 0 {
		return nil, s.fail(m, fmt.Errorf("chunk %d of %d is empty", m.ChunkIndex+1, m.ChunkCount))
	}
	if a.buf.Len()+len(m.BundleChunk) > a.limit {
		what := "the size the bundle declares"
		if a.head.BundleSize == 0 {
			what = "what this agent accepts"
		}
		return nil, s.fail(m, fmt.Errorf("chunks 1 to %d of %d hold more than %s (%d bytes)", m.ChunkIndex+1, m.ChunkCount, what, a.limit))
	}
	a.buf.Write(m.BundleChunk)
	a.next++
	if a.next < m.ChunkCount {
		return nil, nil
	}
	delete(s.partial, m.App)
	s.assembled[m.App] = m.Generation
	return a, nil
}

// fail drops the partial bundle of m's generation and returns err: the caller nacks the
// generation, whose later chunks are then ignored. Caller holds s.mu.
func (s *Assembler) fail(m *flotillav1.Desired, err error) error {
	if a := s.partial[m.App]; a != nil && a.head.Generation == m.Generation {
		delete(s.partial, m.App)
	}
	s.assembled[m.App] = max(s.assembled[m.App], m.Generation)
	return err
}
