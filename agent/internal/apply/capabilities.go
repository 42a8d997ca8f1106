package apply

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
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
	dc discovery.DiscoveryInterface
}

// NewCapabilitiesDiscoverer makes a discoverer with its own discovery client.
func NewCapabilitiesDiscoverer(cfg *rest.Config) (*CapabilitiesDiscoverer, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	return &CapabilitiesDiscoverer{dc: dc}, nil
}

// Discover returns the API server's version and served APIs, sorted. Groups whose discovery
// fails (an aggregated API that is down) are left out, as Helm does.
func (d *CapabilitiesDiscoverer) Discover(ctx context.Context) (Capabilities, error) {
	if err := ctx.Err(); err != nil {
		return Capabilities{}, err
	}
	v, err := d.dc.ServerVersion()
	if err != nil {
		return Capabilities{}, fmt.Errorf("server version: %w", err)
	}
	_, lists, err := d.dc.ServerGroupsAndResources()
	var partial *discovery.ErrGroupDiscoveryFailed
	if err != nil && !errors.As(err, &partial) {
		return Capabilities{}, fmt.Errorf("server APIs: %w", err)
	}
	seen := map[string]bool{}
	for _, l := range lists {
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
