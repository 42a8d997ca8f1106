package fleet

// This file is what a hub replica needs when clusters move between replicas: the state of a
// cluster another replica now owns is dropped here (so it is neither served nor, should the
// cluster come back, sent stale), and the first desired state rendered for a cluster taken
// over is aligned with what its agent already holds (Align, SetDesired).

// Retain drops the desired state, the coverage by the last load of the apps, and the
// remembered holdings of every cluster for which keep returns false. Nothing is removed from
// such a cluster's agent afterwards: ShouldRemove is false for a cluster no load covered.
// Reports stay, for the status of a cluster whose owner does not answer.
func (f *Fleet) Retain(keep func(cluster string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.desired {
		if !keep(c) {
			delete(f.desired, c)
		}
	}
	for c := range f.targets {
		if !keep(c) {
			delete(f.targets, c)
		}
	}
	for c := range f.held {
		if !keep(c) {
			delete(f.held, c)
		}
	}
	for c := range f.rm.since {
		if !keep(c) {
			delete(f.rm.since, c)
		}
	}
}

// firstGeneration is the generation of d, the first desired state of its app on its cluster
// here, following Align: from what the agent said it holds when it said hello, else from its
// latest report, else 1. It is the agent's own generation when the agent has d's bundle (so
// nothing is sent), the next one otherwise (so the agent does not take d for an old state).
// Caller holds f.mu.
func (f *Fleet) firstGeneration(d *Desired) uint64 {
	gen, digest := uint64(0), ""
	if h, ok := f.held[d.Cluster][d.App]; ok {
		gen, digest = h.Generation, h.Digest
		delete(f.held[d.Cluster], d.App) // used once: later states follow this one
	} else if r := f.status[d.Cluster][d.App]; r != nil {
		gen, digest = r.Generation, r.AppliedDigest
	}
	if gen > 0 && digest == d.Bundle.Digest {
		return gen
	}
	return gen + 1
}
