package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
)

// ObjectError is a failure to dry-run, apply or delete one object.
type ObjectError struct {
	Object ObjectRef
	// Op is what failed: "resolve", "dry-run", "apply", "delete", "wait".
	Op string
	// Reason is the API server's reason ("Invalid", "Forbidden", ...), or empty.
	Reason string
	// Rejected is true when the cluster refused the object itself (invalid, forbidden, unknown
	// kind): retrying the same object will fail the same way. Otherwise the failure may be
	// transient (timeouts, unavailable API server, throttling).
	Rejected bool
	Err      error
}

func (e *ObjectError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("%s %s: %s: %v", e.Op, e.Object, e.Reason, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Object, e.Err)
}

func (e *ObjectError) Unwrap() error { return e.Err }

// NamespaceError is a revision whose objects go to a namespace that neither exists nor is in
// the bundle.
type NamespaceError struct {
	Namespace string
	// Destination is true when Namespace is the app's destination namespace, which the
	// CreateNamespace sync option would create.
	Destination bool
}

func (e *NamespaceError) Error() string {
	if e.Destination {
		return fmt.Sprintf("namespace %q not found (set syncOptions CreateNamespace=true)", e.Namespace)
	}
	return fmt.Sprintf("namespace %q not found (not in the bundle and not the destination namespace)", e.Namespace)
}

// IsRejected reports whether err is a revision the cluster refused (an invalid or forbidden
// object, an unknown kind, a missing namespace) or the app's policy refused: the same revision
// will fail again, so it is retried only as the sync policy says. Any other error may be
// transient.
func IsRejected(err error) bool {
	var oe *ObjectError
	if errors.As(err, &oe) {
		return oe.Rejected
	}
	var ne *NamespaceError
	var pe *PolicyError
	return errors.As(err, &ne) || errors.As(err, &pe)
}

func objectError(op string, ref ObjectRef, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: %w", op, ref, err)
	}
	return &ObjectError{Object: ref, Op: op, Reason: string(apierrors.ReasonForError(err)), Rejected: rejected(err), Err: err}
}

// rejected classifies API errors: true for the ones that name a problem with the request.
func rejected(err error) bool {
	switch {
	case meta.IsNoMatchError(err),
		apierrors.IsInvalid(err),
		apierrors.IsBadRequest(err),
		apierrors.IsForbidden(err),
		apierrors.IsMethodNotSupported(err),
		apierrors.IsNotAcceptable(err),
		apierrors.IsUnsupportedMediaType(err),
		apierrors.IsRequestEntityTooLargeError(err):
		return true
	}
	// Server-side apply answers an object that does not fit its type's schema (an unknown or
	// mistyped field) with a 500 and no reason.
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Code == 500 {
		msg := se.Status().Message
		return strings.Contains(msg, "failed to create typed patch object") || strings.Contains(msg, "field not declared in schema")
	}
	return false
}
