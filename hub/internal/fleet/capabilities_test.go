package fleet

import (
	"slices"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/render"
)

// TestSetCapabilities: a change is reported once (the order of API versions does not count),
// and clusters with the same APIs share one list.
func TestSetCapabilities(t *testing.T) {
	f := New(time.Minute)
	c := render.Capabilities{KubeVersion: "v1.33.0", APIVersions: []string{"v1", "apps/v1"}}
	if !f.SetCapabilities("a", c) {
		t.Error("first report: no change")
	}
	if f.SetCapabilities("a", render.Capabilities{KubeVersion: "v1.33.0", APIVersions: []string{"apps/v1", "v1", "v1"}}) {
		t.Error("the same APIs in another order: a change")
	}
	if !f.SetCapabilities("a", render.Capabilities{KubeVersion: "v1.33.1", APIVersions: c.APIVersions}) {
		t.Error("a new Kubernetes version: no change")
	}
	f.SetCapabilities("b", c)
	a, b := f.Capabilities("a"), f.Capabilities("b")
	if !slices.Equal(a.APIVersions, []string{"apps/v1", "v1"}) || &a.APIVersions[0] != &b.APIVersions[0] {
		t.Errorf("a %v and b %v do not share one sorted list", a.APIVersions, b.APIVersions)
	}
	if got := f.Capabilities("unknown"); got.KubeVersion != "" || got.APIVersions != nil {
		t.Errorf("unreported cluster: %+v", got)
	}
}
