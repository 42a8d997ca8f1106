package apps

import (
	"fmt"
	"strings"

	"github.com/flotilla-dev/flotilla/hub/internal/render"
)

// kustomizeDoc is a source's kustomize block as written. Flotilla reads its patches, with
// Argo CD's field names (patch, target), and applies them to the chart's rendered output:
// post-rendering a chart with Kustomize.
type kustomizeDoc struct {
	Patches []render.Patch `json:"patches,omitempty"`
}

// kustomizeKnown lists the kustomize fields Flotilla reads, for Argo CD's lenient decoding.
var kustomizeKnown = known{"patches": nil}

// patches converts d's patches; field is where the block stands ("spec.source.kustomize").
func (d *kustomizeDoc) patches(field string, errAt errorf) ([]render.Patch, []error) {
	if d == nil {
		return nil, nil
	}
	var errs []error
	for i, p := range d.Patches {
		if strings.TrimSpace(p.Patch) == "" {
			errs = append(errs, errAt(fmt.Sprintf("%s.patches[%d].patch", field, i), fmt.Errorf("%w (an inline patch; path is not supported)", ErrRequired)))
		}
	}
	return d.Patches, errs
}
