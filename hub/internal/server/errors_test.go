package server

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/promote"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
)

// TestToStatus: each kind of error gets its code, and the caller reads the error's own text.
func TestToStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
		text string
	}{
		{invalidArgument("app is required"), codes.InvalidArgument, "app is required"},
		{fmt.Errorf("app %q is %w", "api", fleet.ErrUnknownApp), codes.NotFound, `app "api" is not known to the hub`},
		{fmt.Errorf("cluster %q is %w", "c1", store.ErrRevoked), codes.FailedPrecondition, `cluster "c1" is revoked`},
		{reword(errDenied, "cluster %q is %v", "c1", store.ErrRevoked), codes.PermissionDenied, `cluster "c1" is revoked`},
		{reword(store.ErrTokenUsed, "join token already used"), codes.PermissionDenied, "join token already used"},
		{fmt.Errorf("cluster %q %w", "c1", store.ErrClusterExists), codes.AlreadyExists, `cluster "c1" already exists`},
		{fmt.Errorf("push the promotion: %w", source.ErrPushRejected), codes.Aborted, "push the promotion: push rejected"},
		{&promote.PlanError{Err: errors.New("no overlay")}, codes.FailedPrecondition, "no overlay"},
		{fmt.Errorf("cluster %s: %w", "c1", &fleet.RevisionError{App: "a", Desired: "abc", Asked: "def"}), codes.FailedPrecondition,
			"cluster c1: the desired revision of a is abc, not def"},
		{errPromotionOff, codes.Unimplemented, "promotion is off: this hub has no Git access"},
		{reword(errTimeout, "no Hello received"), codes.DeadlineExceeded, "no Hello received"},
		{fmt.Errorf("cluster registry: %w", errors.New("disk gone")), codes.Unavailable, "cluster registry: disk gone"},
		{fmt.Errorf("peer: %w", status.Error(codes.FailedPrecondition, "refused")), codes.FailedPrecondition, "peer: rpc error: code = FailedPrecondition desc = refused"},
	} {
		got := status.Convert(toStatus(tc.err))
		if got.Code() != tc.code || got.Message() != tc.text {
			t.Errorf("toStatus(%q) = %s %q, want %s %q", tc.err, got.Code(), got.Message(), tc.code, tc.text)
		}
	}
	if toStatus(nil) != nil {
		t.Error("toStatus(nil) is not nil")
	}
}
