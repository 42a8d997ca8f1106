package server

import (
	"context"

	"google.golang.org/grpc"

	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// LocalOperator is the hub's Operator service for a caller in the hub's own process (the
// dashboard of `flotilla hub --ui`), with the gRPC client's signatures. There is no
// certificate in-process: every call is made as the operator named by its context (AsOperator,
// the OIDC identity of whoever signed in), and audited under that name.
type LocalOperator struct{ s *Server }

// Local returns the in-process Operator service of s.
func (s *Server) Local() *LocalOperator { return &LocalOperator{s: s} }

// AsOperator returns ctx for calls of LocalOperator made by the operator name.
func AsOperator(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, identityKey{}, caller{Role: pki.RoleOperator, Name: name})
}

// dashboardName is who an in-process call without AsOperator is made as: the dashboard's own
// reads (its live updates).
const dashboardName = "hub-dashboard"

func (l *LocalOperator) as(ctx context.Context) context.Context {
	if callerFrom(ctx).Name != "" {
		return ctx
	}
	return AsOperator(ctx, dashboardName)
}

func (l *LocalOperator) Status(ctx context.Context, in *flotillav1.StatusRequest, _ ...grpc.CallOption) (*flotillav1.StatusResponse, error) {
	return l.s.Status(l.as(ctx), in)
}

func (l *LocalOperator) ListClusters(ctx context.Context, in *flotillav1.ListClustersRequest, _ ...grpc.CallOption) (*flotillav1.ListClustersResponse, error) {
	return l.s.ListClusters(l.as(ctx), in)
}

func (l *LocalOperator) ListApps(ctx context.Context, in *flotillav1.ListAppsRequest, _ ...grpc.CallOption) (*flotillav1.ListAppsResponse, error) {
	return l.s.ListApps(l.as(ctx), in)
}

func (l *LocalOperator) History(ctx context.Context, in *flotillav1.HistoryRequest, _ ...grpc.CallOption) (*flotillav1.HistoryResponse, error) {
	return l.s.History(l.as(ctx), in)
}

func (l *LocalOperator) Sync(ctx context.Context, in *flotillav1.SyncRequest, _ ...grpc.CallOption) (*flotillav1.SyncResponse, error) {
	return l.s.Sync(l.as(ctx), in)
}

func (l *LocalOperator) Rollback(ctx context.Context, in *flotillav1.RollbackRequest, _ ...grpc.CallOption) (*flotillav1.RollbackResponse, error) {
	return l.s.Rollback(l.as(ctx), in)
}

func (l *LocalOperator) RevokeCluster(ctx context.Context, in *flotillav1.RevokeClusterRequest, _ ...grpc.CallOption) (*flotillav1.RevokeClusterResponse, error) {
	return l.s.RevokeCluster(l.as(ctx), in)
}

func (l *LocalOperator) RolloutStatus(ctx context.Context, in *flotillav1.RolloutStatusRequest, _ ...grpc.CallOption) (*flotillav1.RolloutStatusResponse, error) {
	return l.s.RolloutStatus(l.as(ctx), in)
}

func (l *LocalOperator) RolloutAction(ctx context.Context, in *flotillav1.RolloutActionRequest, _ ...grpc.CallOption) (*flotillav1.RolloutActionResponse, error) {
	return l.s.RolloutAction(l.as(ctx), in)
}

func (l *LocalOperator) FleetPage(ctx context.Context, in *flotillav1.FleetPageRequest, _ ...grpc.CallOption) (*flotillav1.FleetPageResponse, error) {
	return l.s.FleetPage(l.as(ctx), in)
}
