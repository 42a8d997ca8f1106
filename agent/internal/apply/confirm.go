package apply

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// What the Applier knows to be applied already. Each object it writes, or finds by a dry-run
// to be as it would write it, is confirmed: the live object's resourceVersion then and the
// digest of the object applied. Any later change of the live object (by anyone) changes its
// resourceVersion, and any change of what is applied its digest; while neither changed, a
// server-side apply of it would change nothing, so a sync or drift check takes it as unchanged
// without a dry-run. That is what makes a sync of a revision that changes few of many objects
// cost requests only for those few. An object that is not written needs no dry-run as a
// safety check either: nothing of it is written.

// confirmation is the state in which an object was last confirmed.
type confirmation struct {
	resourceVersion string
	digest          string
}

// digestOf identifies obj as it is applied (its JSON, map keys sorted).
func digestOf(obj *unstructured.Unstructured) (string, error) {
	b, err := json.Marshal(obj.Object)
	if err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16]), nil
}

// confirm records that ref at resourceVersion rv is as the object of digest applies it.
func (a *Applier) confirm(ref ObjectRef, rv, digest string) {
	if rv == "" || digest == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.confirmed[ref.Key()] = confirmation{resourceVersion: rv, digest: digest}
}

// unchangedSince reports whether live (ref's live object, nil when absent) is still in the
// state last confirmed for the object of digest, and applied by this Applier.
func (a *Applier) unchangedSince(ref ObjectRef, live *unstructured.Unstructured, digest string) bool {
	if live == nil {
		return false
	}
	a.mu.Lock()
	c, ok := a.confirmed[ref.Key()]
	a.mu.Unlock()
	return ok && c.digest == digest && c.resourceVersion == live.GetResourceVersion() && a.owns(live)
}
