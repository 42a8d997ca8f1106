package server

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/pins"
	"github.com/flotilla-dev/flotilla/hub/internal/promote"
	"github.com/flotilla-dev/flotilla/hub/internal/rollout"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	"github.com/flotilla-dev/flotilla/shared/jointoken"
)

// This file is where the hub's errors become gRPC statuses: handlers return the errors of
// the domain packages (wrapped with what failed) and of the few kinds below, and toStatus
// picks the code. The message is always the error's text.

// Kinds of failure that belong to the gRPC edge rather than to a domain package.
var (
	errInvalid         = errors.New("invalid argument")
	errUnauthenticated = errors.New("unauthenticated")
	errDenied          = errors.New("permission denied")
	errProtocol        = errors.New("unsupported agent protocol")
	errTooMuch         = errors.New("more than a hub takes")
	errPromotionOff    = errors.New("promotion is off: this hub has no Git access")
	errInternal        = errors.New("internal error")
	errTimeout         = errors.New("timed out")
)

// toStatus returns err as a gRPC status error. An error that already carries a status (a
// peer's answer) keeps its code; anything unclassified is a failure of the store, of Git or of a replica, and Unavailable: the caller
// may try again.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return st.Err()
	}
	return status.Error(codeOf(err), err.Error())
}

// codeOf is the gRPC code of a domain error. The first kind that matches wins, so a kind of
// the edge (errDenied: who asks) is checked before the domain's (store.ErrRevoked: what).
func codeOf(err error) codes.Code {
	var (
		refused *promote.RefusedError
		plan    *promote.PlanError
		rev     *fleet.RevisionError
	)
	switch {
	case errors.Is(err, errInvalid), errors.Is(err, jointoken.ErrMalformed), errors.Is(err, rollout.ErrBadAction):
		return codes.InvalidArgument
	case errors.Is(err, errUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, errDenied), errors.Is(err, store.ErrTokenInvalid),
		errors.Is(err, store.ErrTokenExpired), errors.Is(err, store.ErrTokenUsed):
		return codes.PermissionDenied
	case errors.Is(err, fleet.ErrUnknownApp), errors.Is(err, fleet.ErrNoDesiredState),
		errors.Is(err, store.ErrNotRegistered), errors.Is(err, pins.ErrNoMatchingCluster),
		errors.Is(err, rollout.ErrNoRollout), errors.Is(err, rollout.ErrUnknownCluster):
		return codes.NotFound
	case errors.Is(err, store.ErrClusterExists):
		return codes.AlreadyExists
	case errors.Is(err, store.ErrRevoked), errors.Is(err, fleet.ErrNoRemovalHeld), errors.Is(err, errProtocol),
		errors.As(err, &refused), errors.As(err, &plan), errors.As(err, &rev),
		errors.Is(err, rollout.ErrNotActive), errors.Is(err, rollout.ErrNotWaiting):
		return codes.FailedPrecondition
	case errors.Is(err, source.ErrPushRejected):
		return codes.Aborted
	case errors.Is(err, errTooMuch):
		return codes.ResourceExhausted
	case errors.Is(err, errPromotionOff), errors.Is(err, errRolloutsOff):
		return codes.Unimplemented
	case errors.Is(err, errInternal):
		return codes.Internal
	case errors.Is(err, errTimeout):
		return codes.DeadlineExceeded
	}
	return codes.Unavailable
}

// mapped is resp and err as a handler returns them: err as toStatus maps it.
func mapped[T any](resp T, err error) (T, error) { return resp, toStatus(err) }

// worded is an error of the kind of err, in the words the caller reads.
type worded struct {
	msg string
	err error
}

func (w *worded) Error() string { return w.msg }
func (w *worded) Unwrap() error { return w.err }

// reword returns an error of the kind of err (what toStatus maps) whose text is format.
func reword(err error, format string, args ...any) error {
	return &worded{msg: fmt.Sprintf(format, args...), err: err}
}

// invalidArgument is a request that fails validation.
func invalidArgument(format string, args ...any) error {
	return reword(errInvalid, format, args...)
}
