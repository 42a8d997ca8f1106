package apply

import (
	"context"
	"slices"

	"k8s.io/client-go/rest"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
)

// Capabilities are what the API server says of itself, for the hub's chart renders
// (.Capabilities): its Kubernetes version and every group-version it serves, with
// "group-version/Kind" for each of its kinds, as Helm lists them.
type Capabilities struct {
	KubeVersion string
	APIVersions []string
}

// Equal reports whether c and o are the same (the API versions sorted, as Discover returns).
func (c Capabilities) Equal(o Capabilities) bool {
	return c.KubeVersion == o.KubeVersion && slices.Equal(c.APIVersions, o.APIVersions)
}

// CapabilitiesDiscoverer asks the API server for its Capabilities, uncached.
type CapabilitiesDiscoverer struct {
	disc *kube.Discovery
}

// NewCapabilitiesDiscoverer makes a discoverer with its own discovery client.
func NewCapabilitiesDiscoverer(cfg *rest.Config) (*CapabilitiesDiscoverer, error) {
	disc, err := kube.NewDiscovery(cfg)
	if err != nil {
		return nil, err
	}
	return &CapabilitiesDiscoverer{disc: disc}, nil
}

// Discover returns the API server's version and served APIs, sorted. Groups whose discovery
// fails (an aggregated API that is down) are left out, as Helm does.
func (d *CapabilitiesDiscoverer) Discover(ctx context.Context) (Capabilities, error) {
	if err := ctx.Err(); err != nil {
		return Capabilities{}, err
	}
	v, err := d.disc.ServerVersion(ctx)
	if err != nil {
		return Capabilities{}, err
	}
	apis, err := d.disc.APIs(ctx)
	if err != nil {
		return Capabilities{}, err
	}
	seen := map[string]bool{}
	for _, l := range apis.Lists {
		seen[l.GroupVersion] = true
		for _, r := range l.APIResources {
			if r.Kind != "" {
				seen[l.GroupVersion+"/"+r.Kind] = true
			}
		}
	}
	c := Capabilities{KubeVersion: v.GitVersion, APIVersions: make([]string, 0, len(seen))}
	for gv := range seen {
		c.APIVersions = append(c.APIVersions, gv)
	}
	slices.Sort(c.APIVersions)
	return c, nil
}
