package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/promote"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// gitRepos reads and writes the apps' repositories, with the hub's Git credentials.
type gitRepos interface {
	Fetch(ctx context.Context, repoURL, rev string) (*source.Snapshot, error)
	Push(ctx context.Context, repoURL string, c source.Commit) (string, error)
}

// Promote copies what an app declares as promotable (the kustomize images of its overlay)
// from the overlay of one environment to another's, once every cluster of the source
// environment has been Healthy on one revision for the soak time, and pushes the commit to a
// new branch (or, asked to, straight to the app's target branch). Any replica takes the
// request: it judges the source environment from the fleet-wide status, as each cluster's
// owner reports it, and refuses while a replica does not answer.
func (s *Server) Promote(ctx context.Context, req *flotillav1.PromoteRequest) (*flotillav1.PromoteResponse, error) {
	actor := callerFrom(ctx).Name
	switch {
	case req.App == "" || req.FromEnv == "" || req.ToEnv == "":
		return nil, toStatus(invalidArgument("app, source and target environments are required"))
	case req.FromEnv == req.ToEnv:
		return nil, toStatus(invalidArgument("source and target are both env=%s", req.FromEnv))
	case req.SoakMs < 0:
		return nil, toStatus(invalidArgument("the soak time is negative"))
	case req.Push && req.Branch != "":
		return nil, toStatus(invalidArgument("a branch and push to the target branch exclude each other"))
	case s.promoter == nil:
		return nil, toStatus(errPromotionOff)
	}
	info, ok := s.appInfo(req.App)
	if !ok {
		return nil, toStatus(fmt.Errorf("app %q is %w", req.App, fleet.ErrUnknownApp))
	}
	srcVars, dstVars, err := s.environments(info, req.FromEnv, req.ToEnv)
	if err != nil {
		return nil, toStatus(err)
	}
	witnesses, unreachable, err := s.witnesses(ctx, req.App, srcVars)
	if err != nil {
		return nil, toStatus(err)
	}
	refuse := func(err error) {
		s.audit(actor, "promote.refused", req.App, fmt.Sprintf("from=%s to=%s: %v", req.FromEnv, req.ToEnv, err))
	}
	if len(unreachable) > 0 {
		err := fmt.Errorf("promotion refused: hub replicas %s did not answer: the clusters of env=%s they own cannot vouch unseen; try again once they answer or leave",
			strings.Join(unreachable, ", "), req.FromEnv)
		refuse(err)
		return nil, toStatus(err)
	}
	res, err := s.promoter.Write(ctx, promote.Request{
		App: info, From: req.FromEnv, To: req.ToEnv, Soak: time.Duration(req.SoakMs) * time.Millisecond,
		Push: req.Push, Branch: req.Branch, By: actor,
	}, srcVars, dstVars, witnesses)
	if refused := (*promote.RefusedError)(nil); errors.As(err, &refused) {
		refuse(err)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &flotillav1.PromoteResponse{
		SourceRevision: res.Source.Revision, VouchedBy: res.Source.Clusters, Commit: res.Commit, Branch: res.Branch, PushedToTarget: req.Push,
		SourcePath: res.SourcePath, TargetPath: res.TargetPath,
	}
	var shown []string
	for _, c := range res.Changes {
		resp.Images = append(resp.Images, &flotillav1.ImageChange{Name: c.Name, From: c.From, To: c.To})
		shown = append(shown, c.To)
	}
	s.audit(actor, "promote", req.App, fmt.Sprintf("from=%s to=%s revision=%s vouchedBy=%v commit=%s branch=%s images=%v",
		req.FromEnv, req.ToEnv, res.Source.Revision, res.Source.Clusters, res.Commit, res.Branch, shown))
	if req.Push && s.cfg.Reconcile != nil {
		s.cfg.Reconcile.Trigger()
	}
	return resp, nil
}

func (s *Server) appInfo(name string) (fleet.AppInfo, bool) {
	for _, a := range s.cfg.Fleet.Apps() {
		if a.Name == name && a.RepoURL != "" {
			return a, true
		}
	}
	return fleet.AppInfo{}, false
}

// environments returns the variables of the registered clusters the app targets (on every
// replica) in the source and in the target environment.
func (s *Server) environments(info fleet.AppInfo, from, to string) ([]apps.ClusterVars, []apps.ClusterVars, error) {
	targeted, err := s.targeted(info)
	if err != nil {
		return nil, nil, err
	}
	list, err := s.cfg.Store.ListClusters()
	if err != nil {
		return nil, nil, fmt.Errorf("list clusters: %w", err)
	}
	src, dst := promote.Environments(list, targeted, from, to)
	return src, dst, nil
}

// witnesses returns what the fleet-wide status and cluster list (those of `flotilla status`
// and `flotilla clusters`, gathered from every replica) say of app on each of clusters, and
// the replicas that did not answer: their clusters' rows are only this replica's last view.
func (s *Server) witnesses(ctx context.Context, app string, clusters []apps.ClusterVars) ([]promote.Witness, []string, error) {
	if len(clusters) == 0 {
		return nil, nil, nil
	}
	st, err := s.Status(ctx, &flotillav1.StatusRequest{App: app})
	if err != nil {
		return nil, nil, err
	}
	if len(st.UnreachablePeers) > 0 {
		return nil, st.UnreachablePeers, nil
	}
	cl, err := s.ListClusters(ctx, &flotillav1.ListClustersRequest{})
	if err != nil {
		return nil, nil, err
	}
	if len(cl.UnreachablePeers) > 0 {
		return nil, cl.UnreachablePeers, nil
	}
	connected := map[string]bool{}
	for _, c := range cl.Items {
		connected[c.Name] = c.Connected
	}
	rows := map[string]*flotillav1.AppClusterStatus{}
	for _, it := range st.Items {
		rows[it.Cluster] = it
	}
	out := make([]promote.Witness, 0, len(clusters))
	for _, c := range clusters {
		w := promote.Witness{Cluster: c.Name, Connected: connected[c.Name]}
		if it := rows[c.Name]; it != nil {
			w.Report = reportOf(it)
		}
		out = append(out, w)
	}
	return out, nil, nil
}

// reportOf is the report of an app on a cluster that a status row shows.
func reportOf(it *flotillav1.AppClusterStatus) *fleet.Report {
	r := &fleet.Report{
		App: it.App, Sync: it.Sync, Health: it.Health, Message: it.Message,
		AppliedRevision: it.AppliedRevision, HealthyRevision: it.HealthyRevision, RolledBackRevision: it.RolledBackRevision,
	}
	if it.HealthySinceUnixMs > 0 {
		r.HealthySince = time.UnixMilli(it.HealthySinceUnixMs)
	}
	return r
}
