package apply

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

const gadgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.capabilities.flotilla.dev
spec:
  group: capabilities.flotilla.dev
  scope: Namespaced
  names: {kind: Gadget, plural: gadgets, singular: gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

// TestDiscoverCapabilities: the real API server's version and APIs, sorted, with
// group-version/Kind entries; a CRD's API shows once the CRD is served.
func TestDiscoverCapabilities(t *testing.T) {
	e := newEnv(t)
	d, err := NewCapabilitiesDiscoverer(e.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := kubetest.Ctx(t)
	caps, err := d.Discover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(caps.KubeVersion, "v1.") {
		t.Errorf("kube version %q", caps.KubeVersion)
	}
	for _, want := range []string{"v1", "apps/v1", "apps/v1/Deployment", "v1/ConfigMap", "apiextensions.k8s.io/v1"} {
		if !slices.Contains(caps.APIVersions, want) {
			t.Errorf("API versions lack %q", want)
		}
	}
	if !slices.IsSorted(caps.APIVersions) {
		t.Error("API versions not sorted")
	}
	// The CRD is cluster-wide: a second run of the test (-count 2) finds it there already.
	had := slices.Contains(caps.APIVersions, "capabilities.flotilla.dev/v1/Gadget")
	ns := kubetest.Uniq("t-caps")
	e.CreateNamespace(t, ns)
	if _, err := newApplier(t, e).Apply(ctx, revision(t, "caps", ns, Policy{}, gadgetCRD), nil); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, time.Minute, "the CRD's API in the discovered capabilities", func(ctx context.Context) (bool, error) {
		c, err := d.Discover(ctx)
		return err == nil && slices.Contains(c.APIVersions, "capabilities.flotilla.dev/v1") &&
			slices.Contains(c.APIVersions, "capabilities.flotilla.dev/v1/Gadget") && (had || !c.Equal(caps)), nil
	})
}
