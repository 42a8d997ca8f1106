package fleet

import (
	"slices"
	"sync"

	"github.com/flotilla-dev/flotilla/hub/internal/render"
)

// capabilities are what each cluster's agent reported of its API server: its Kubernetes
// version and the API versions it serves, for the .Capabilities of chart renders. It has its
// own lock: renders read it while streams write it.
type capabilities struct {
	mu      sync.Mutex
	cluster map[string]render.Capabilities
	// sets holds each distinct list of API versions once, by digest: a thousand clusters of
	// the same version share one list.
	sets map[string][]string
}

// SetCapabilities records what cluster's agent reported and reports whether it changed (a
// change calls for a round: charts may render differently there). An agent that reports
// nothing (an older agent) leaves the cluster on Helm's default capabilities.
func (f *Fleet) SetCapabilities(cluster string, c render.Capabilities) bool {
	f.caps.mu.Lock()
	defer f.caps.mu.Unlock()
	if f.caps.cluster == nil {
		f.caps.cluster = map[string]render.Capabilities{}
	}
	c.APIVersions = slices.Clone(c.APIVersions)
	slices.Sort(c.APIVersions)
	c.APIVersions = slices.Compact(c.APIVersions)
	old, ok := f.caps.cluster[cluster]
	if ok && old.KubeVersion == c.KubeVersion && slices.Equal(old.APIVersions, c.APIVersions) {
		return false
	}
	f.caps.cluster[cluster] = c
	f.caps.share(cluster)
	return true
}

// share makes cluster's API versions the list other clusters with the same ones hold, and
// drops the lists no cluster holds any more once they outnumber the clusters.
func (c *capabilities) share(cluster string) {
	if c.sets == nil || len(c.sets) > 2*len(c.cluster)+16 {
		c.sets = map[string][]string{}
		for _, caps := range c.cluster {
			c.sets[render.Capabilities{APIVersions: caps.APIVersions}.Digest()] = caps.APIVersions
		}
	}
	caps := c.cluster[cluster]
	key := render.Capabilities{APIVersions: caps.APIVersions}.Digest()
	if shared, ok := c.sets[key]; ok {
		caps.APIVersions = shared
		c.cluster[cluster] = caps
		return
	}
	c.sets[key] = caps.APIVersions
}

// Capabilities returns what cluster's agent last reported; zero (Helm's defaults at render)
// when it reported nothing. The API versions may be shared with other clusters: callers must
// not modify them.
func (f *Fleet) Capabilities(cluster string) render.Capabilities {
	f.caps.mu.Lock()
	defer f.caps.mu.Unlock()
	return f.caps.cluster[cluster]
}
