package fleet

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// Hooks Flotilla does not run. The agent runs Argo CD's PreSync, Sync, PostSync and SyncFail
// hooks and Helm's pre/post-install and -upgrade hooks (agent/internal/plan); objects that are
// hooks of other phases are never applied. `flotilla apps` names each, so that nobody counts
// on them.

// unrunHooks are the hook annotation values the agent never runs, by annotation.
var unrunHooks = []struct {
	key    string
	values []string
}{
	{"argocd.argoproj.io/hook", []string{"PostDelete"}},
	{"helm.sh/hook", []string{"pre-delete", "post-delete", "pre-rollback", "post-rollback"}},
}

// checkHooks returns a warning per object of b that is a hook of a phase Flotilla does not run.
func checkHooks(b *bundle.Bundle) []string {
	if !bytes.Contains(b.Data, []byte("argocd.argoproj.io/hook")) && !bytes.Contains(b.Data, []byte("helm.sh/hook")) {
		return nil // no hooks at all: nothing to decode
	}
	objs, err := bundle.Decode(b.Data)
	if err != nil {
		return nil // the agent reports an undecodable bundle
	}
	var warnings []string
	for _, o := range objs {
		ann := o.GetAnnotations()
		for _, h := range unrunHooks {
			for _, v := range strings.Split(ann[h.key], ",") {
				if v = strings.TrimSpace(v); slices.Contains(h.values, v) {
					warnings = append(warnings, fmt.Sprintf("%s: %s: %s is not supported: the object is never applied", bundle.Ref(o), h.key, v))
				}
			}
		}
	}
	return warnings
}
