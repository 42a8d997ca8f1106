package apply

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
)

// mapper maps kinds to their resources as the API server's discovery serves them: discovered
// on first use, and again on the first use after reset (the Applier resets it when a kind is
// missing: restMapping, rediscover). A group-version whose discovery failed is not mapped; the
// others are.
type mapper struct {
	disc *kube.Discovery

	mu sync.Mutex // held while discovering: lookups wait for it rather than discover too
	m  meta.RESTMapper
}

// RESTMapping maps gk at version, the group's preferred version when version is empty. A kind
// that is not served is a *meta.NoKindMatchError (meta.IsNoMatchError).
func (m *mapper) RESTMapping(ctx context.Context, gk schema.GroupKind, version string) (*meta.RESTMapping, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		apis, err := m.disc.APIs(ctx)
		if err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
		m.m = newRESTMapper(apis)
	}
	return m.m.RESTMapping(gk, version)
}

// reset drops what was discovered.
func (m *mapper) reset() {
	m.mu.Lock()
	m.m = nil
	m.mu.Unlock()
}

// newRESTMapper maps each kind of apis to its resource and scope; subresources are left out.
// Each group's versions are in apis' order, its preferred version first.
func newRESTMapper(apis *kube.APIs) meta.RESTMapper {
	gvs := make([]schema.GroupVersion, len(apis.Lists))
	for i, l := range apis.Lists {
		gvs[i], _ = schema.ParseGroupVersion(l.GroupVersion) // kube.Discovery wrote it
	}
	rm := meta.NewDefaultRESTMapper(gvs)
	for i, l := range apis.Lists {
		gv := gvs[i]
		for _, r := range l.APIResources {
			if r.Kind == "" || strings.Contains(r.Name, "/") {
				continue
			}
			scope := meta.RESTScopeRoot
			if r.Namespaced {
				scope = meta.RESTScopeNamespace
			}
			gvk := gv.WithKind(r.Kind)
			singular := gv.WithResource(r.SingularName)
			if r.SingularName == "" { // older servers do not say it
				_, singular = meta.UnsafeGuessKindToResource(gvk)
			}
			rm.AddSpecific(gvk, gv.WithResource(r.Name), singular, scope)
		}
	}
	return rm
}
