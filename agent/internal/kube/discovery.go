package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"sync"
	"time"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/rest"
)

// Discovery asks the API server for its version and the APIs it serves, uncached: plain GETs
// of /version, /api and /apis, answered with aggregated discovery (apidiscovery.k8s.io/v2)
// where the server has it, else with the list of group-versions and a GET of each one's
// resources.
type Discovery struct {
	rc *rest.RESTClient
	// unaggregated asks for the group-versions and their resources one by one, as servers
	// without aggregated discovery answer (tests).
	unaggregated bool
}

// Discovery's defaults where cfg sets none, as client-go's discovery client has them.
const (
	discoveryTimeout = 32 * time.Second
	discoveryBurst   = 300
)

// NewDiscovery returns a Discovery for the cluster of cfg.
func NewDiscovery(cfg *rest.Config) (*Discovery, error) {
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	c := rest.CopyConfig(cfg)
	c.APIPath, c.GroupVersion = "", nil
	c.NegotiatedSerializer = codecs(scheme)
	if c.Timeout == 0 {
		c.Timeout = discoveryTimeout
	}
	if c.Burst == 0 {
		c.Burst = discoveryBurst
	}
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.UnversionedRESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	return &Discovery{rc: rc}, nil
}

// ServerVersion returns the API server's version.
func (d *Discovery) ServerVersion(ctx context.Context) (*version.Info, error) {
	body, err := d.rc.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	var v version.Info
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("server version: %w", err)
	}
	return &v, nil
}

// APIs are the group-versions an API server serves.
type APIs struct {
	// Lists hold each served group-version's resources and subresources ("deployments/scale"):
	// the core group first, then the other groups in the server's order, each group's
	// preferred version first. Of a resource only its name, singular name, scope and kind
	// are certain to be set.
	Lists []*metav1.APIResourceList
	// Failed are the group-versions whose discovery failed (an aggregated API that is down),
	// left out of Lists.
	Failed map[schema.GroupVersion]error
}

// APIs returns the APIs the server serves. A group-version whose discovery fails is in
// Failed, not an error.
func (d *Discovery) APIs(ctx context.Context) (*APIs, error) {
	apis := &APIs{Failed: map[schema.GroupVersion]error{}}
	for _, path := range []string{"/api", "/apis"} {
		if err := d.discover(ctx, path, apis); err != nil {
			return nil, err
		}
	}
	return apis, nil
}

// Accept headers: aggregated discovery if the server has it, else the unaggregated documents.
const (
	acceptUnaggregated = "application/json"
	acceptAggregated   = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList," + acceptUnaggregated
)

// discover adds the group-versions of path (/api: the core group; /apis: the others) to apis.
func (d *Discovery) discover(ctx context.Context, path string, apis *APIs) error {
	accept := acceptAggregated
	if d.unaggregated {
		accept = acceptUnaggregated
	}
	var contentType string
	body, err := d.rc.Get().AbsPath(path).SetHeader("Accept", accept).Do(ctx).ContentType(&contentType).Raw()
	if path == "/api" && apierrors.IsNotFound(err) {
		return nil // a server without the core group
	}
	if err != nil {
		return fmt.Errorf("discovery of %s: %w", path, err)
	}
	if aggregated(contentType) {
		var l apidiscoveryv2.APIGroupDiscoveryList
		if err := json.Unmarshal(body, &l); err != nil {
			return fmt.Errorf("discovery of %s: %w", path, err)
		}
		addAggregated(apis, &l)
		return nil
	}
	gvs, err := groupVersions(path, body)
	if err != nil {
		return fmt.Errorf("discovery of %s: %w", path, err)
	}
	lists := make([]*metav1.APIResourceList, len(gvs))
	errs := make([]error, len(gvs))
	var wg sync.WaitGroup
	for i, gv := range gvs {
		wg.Go(func() { lists[i], errs[i] = d.resources(ctx, path, gv) })
	}
	wg.Wait()
	for i, gv := range gvs {
		if errs[i] != nil {
			apis.Failed[gv] = errs[i]
			continue
		}
		apis.Lists = append(apis.Lists, lists[i])
	}
	return nil
}

// aggregated reports whether contentType is that of aggregated discovery.
func aggregated(contentType string) bool {
	mt, p, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json" && p["g"] == apidiscoveryv2.SchemeGroupVersion.Group &&
		p["v"] == apidiscoveryv2.SchemeGroupVersion.Version && p["as"] == "APIGroupDiscoveryList"
}

// addAggregated adds the group-versions of an aggregated discovery document (each group's
// versions in the order of preference). A stale group-version, whose aggregated API server
// did not answer, failed.
func addAggregated(apis *APIs, l *apidiscoveryv2.APIGroupDiscoveryList) {
	for _, g := range l.Items {
		for _, v := range g.Versions {
			gv := schema.GroupVersion{Group: g.Name, Version: v.Version}
			if v.Freshness == apidiscoveryv2.DiscoveryFreshnessStale {
				apis.Failed[gv] = fmt.Errorf("discovery of %s is stale", gv)
				continue
			}
			list := &metav1.APIResourceList{GroupVersion: gv.String()}
			for _, r := range v.Resources {
				namespaced := r.Scope == apidiscoveryv2.ScopeNamespace
				if k := r.ResponseKind; k != nil && *k != (metav1.GroupVersionKind{}) {
					list.APIResources = append(list.APIResources, metav1.APIResource{Name: r.Resource, SingularName: r.SingularResource,
						Namespaced: namespaced, Group: k.Group, Version: k.Version, Kind: k.Kind, Verbs: r.Verbs})
				}
				for _, s := range r.Subresources {
					if k := s.ResponseKind; k != nil && *k != (metav1.GroupVersionKind{}) {
						list.APIResources = append(list.APIResources, metav1.APIResource{Name: r.Resource + "/" + s.Subresource,
							SingularName: r.SingularResource, Namespaced: namespaced, Group: k.Group, Version: k.Version, Kind: k.Kind, Verbs: s.Verbs})
					}
				}
			}
			apis.Lists = append(apis.Lists, list)
		}
	}
}

// groupVersions reads the group-versions of an unaggregated discovery document of path, each
// group's preferred version first.
func groupVersions(path string, body []byte) ([]schema.GroupVersion, error) {
	var gvs []schema.GroupVersion
	if path == "/api" {
		var v metav1.APIVersions
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, err
		}
		for _, ver := range v.Versions {
			gvs = append(gvs, schema.GroupVersion{Version: ver})
		}
		return gvs, nil
	}
	var l metav1.APIGroupList
	if err := json.Unmarshal(body, &l); err != nil {
		return nil, err
	}
	for _, g := range l.Groups {
		pref := schema.GroupVersion{Group: g.Name, Version: g.PreferredVersion.Version}
		if pref.Version != "" {
			gvs = append(gvs, pref)
		}
		for _, v := range g.Versions {
			if gv := (schema.GroupVersion{Group: g.Name, Version: v.Version}); gv != pref {
				gvs = append(gvs, gv)
			}
		}
	}
	return gvs, nil
}

// resources GETs the resources of one group-version (unaggregated discovery).
func (d *Discovery) resources(ctx context.Context, path string, gv schema.GroupVersion) (*metav1.APIResourceList, error) {
	body, err := d.rc.Get().AbsPath(path, gv.Group, gv.Version).SetHeader("Accept", acceptUnaggregated).Do(ctx).Raw()
	if err != nil {
		return nil, fmt.Errorf("discovery of %s: %w", gv, err)
	}
	l := &metav1.APIResourceList{}
	if err := json.Unmarshal(body, l); err != nil {
		return nil, fmt.Errorf("discovery of %s: %w", gv, err)
	}
	l.GroupVersion = gv.String()
	return l, nil
}
