package apply

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Two apps that render the same object would apply it with the same field manager: neither
// would see a conflict and the object's app label would flip with every sync. The first app
// keeps it: an object labelled for another app that lists it in its inventory is not written
// for a second app, whose sync fails naming both (and is retried: the conflict ends when one
// of them stops rendering it or leaves the cluster).

// Inventories tells whether an app lists an object in its inventory.
type Inventories interface {
	Holds(app string, ref ObjectRef) bool
}

// ownedByOther returns the app other than app that owns live: it carries that app's label and
// that app lists it in its inventory. "" when there is none.
func (a *Applier) ownedByOther(app string, ref ObjectRef, live *unstructured.Unstructured) string {
	if live == nil || a.owners == nil {
		return ""
	}
	other := live.GetLabels()[LabelApp]
	if other == "" || other == app || !a.owners.Holds(other, ref) {
		return ""
	}
	return other
}

// ownerConflict is the error of app's write of ref, which app other owns.
func ownerConflict(app, other string, ref ObjectRef) error {
	return &ObjectError{Object: ref, Op: "apply", Err: fmt.Errorf(
		"apps %q and %q both render it; it belongs to app %q (in its inventory) and is not written for app %q: render it in one app only", other, app, other, app)}
}
