package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/promote"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// gitRepos reads and writes the apps' repositories, with the hub's Git credentials.
type gitRepos interface {
	Fetch(ctx context.Context, repoURL, rev string) (*source.Snapshot, error)
	Push(ctx context.Context, repoURL string, c source.Commit) (string, error)
}

// promoteEnvLabel is the cluster label that names a cluster's environment.
const promoteEnvLabel = "env"

// The signature of promotion commits; Promoted-By in the message names the operator.
const (
	promoteAuthorName  = "Flotilla"
	promoteAuthorEmail = "flotilla@flotilla.dev"
)

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
	case s.cfg.Git == nil:
		return nil, toStatus(errPromotionOff)
	}
	soak := time.Duration(req.SoakMs) * time.Millisecond
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
	if len(unreachable) > 0 {
		err := fmt.Errorf("promotion refused: hub replicas %s did not answer: the clusters of env=%s they own cannot vouch unseen; try again once they answer or leave",
			strings.Join(unreachable, ", "), req.FromEnv)
		s.audit(actor, "promote.refused", req.App, fmt.Sprintf("from=%s to=%s: %v", req.FromEnv, req.ToEnv, err))
		return nil, toStatus(err)
	}
	src, err := promote.Vouch(req.FromEnv, witnesses, soak, time.Now())
	if err != nil {
		s.audit(actor, "promote.refused", req.App, fmt.Sprintf("from=%s to=%s: %v", req.FromEnv, req.ToEnv, err))
		return nil, toStatus(err)
	}
	app := &apps.Application{Name: info.Name, Source: apps.Source{RepoURL: info.RepoURL, TargetRevision: info.TargetRevision, Path: info.Path}}
	srcPath, err := overlayPath(app, req.FromEnv, srcVars)
	if err != nil {
		return nil, toStatus(err)
	}
	dstPath, err := overlayPath(app, req.ToEnv, dstVars)
	if err != nil {
		return nil, toStatus(err)
	}
	if srcPath == dstPath {
		return nil, toStatus(&promote.PlanError{Err: fmt.Errorf("env=%s and env=%s both render %s: there is no overlay to promote to", req.FromEnv, req.ToEnv, srcPath)})
	}

	target, err := s.cfg.Git.Fetch(ctx, info.RepoURL, info.TargetRevision)
	if err != nil {
		return nil, toStatus(fmt.Errorf("fetch the target revision: %w", err))
	}
	branch := req.Branch
	switch {
	case req.Push:
		name, ok := strings.CutPrefix(target.Ref, "refs/heads/")
		if !ok {
			return nil, toStatus(&promote.PlanError{Err: fmt.Errorf("the app's target revision %q is no branch to push to: promote to a new branch instead", info.TargetRevision)})
		}
		branch = name
	case branch == "":
		branch = promote.BranchName(req.App, src.Revision)
	}
	srcSnap := target
	if src.Revision != target.Commit {
		if srcSnap, err = s.cfg.Git.Fetch(ctx, info.RepoURL, src.Revision); err != nil {
			return nil, toStatus(fmt.Errorf("fetch the source revision: %w", err))
		}
	}
	srcData, _, err := readKustomization(srcSnap, srcPath)
	if err != nil {
		return nil, toStatus(&promote.PlanError{Err: fmt.Errorf("env=%s at %s: %w", req.FromEnv, promote.ShortRev(src.Revision), err)})
	}
	dstData, dstFile, err := readKustomization(target, dstPath)
	if err != nil {
		return nil, toStatus(&promote.PlanError{Err: fmt.Errorf("env=%s at %s: %w", req.ToEnv, promote.ShortRev(target.Commit), err)})
	}
	out, changes, err := promote.CopyImages(srcData, dstData)
	if err != nil {
		return nil, toStatus(&promote.PlanError{Err: fmt.Errorf("promote %s from %s to %s: %w", req.App, srcPath, dstFile, err)})
	}
	plan := &promote.Plan{
		App: req.App, From: req.FromEnv, To: req.ToEnv, Source: src, SourcePath: srcPath, TargetPath: dstFile,
		Changes: changes, Soak: soak, By: actor,
	}
	commit, err := s.cfg.Git.Push(ctx, info.RepoURL, source.Commit{
		Parent: target.Commit, Files: map[string][]byte{dstFile: out}, Message: plan.CommitMessage(),
		AuthorName: promoteAuthorName, AuthorEmail: promoteAuthorEmail, Branch: branch,
	})
	if err != nil {
		return nil, toStatus(fmt.Errorf("push the promotion: %w", err))
	}

	resp := &flotillav1.PromoteResponse{
		SourceRevision: src.Revision, VouchedBy: src.Clusters, Commit: commit, Branch: branch, PushedToTarget: req.Push,
		SourcePath: srcPath, TargetPath: dstFile,
	}
	var shown []string
	for _, c := range changes {
		resp.Images = append(resp.Images, &flotillav1.ImageChange{Name: c.Name, From: c.From, To: c.To})
		shown = append(shown, c.To)
	}
	s.audit(actor, "promote", req.App, fmt.Sprintf("from=%s to=%s revision=%s vouchedBy=%v commit=%s branch=%s images=%v",
		req.FromEnv, req.ToEnv, src.Revision, src.Clusters, commit, branch, shown))
	result := fmt.Sprintf("Promoted from env=%s at %s: pushed to branch %s (merge it to roll out)", req.FromEnv, promote.ShortRev(src.Revision), branch)
	if req.Push {
		result = fmt.Sprintf("Promoted from env=%s at %s: pushed to %s", req.FromEnv, promote.ShortRev(src.Revision), branch)
	}
	for _, c := range dstVars {
		rec := store.HistoryRecord{
			Time: time.Now(), Cluster: c.Name, App: req.App, Revision: commit,
			Author: promoteAuthorName + " <" + promoteAuthorEmail + ">", Message: subjectLine(plan.CommitMessage()), Result: result,
		}
		if err := s.cfg.Store.AddHistory(rec); err != nil {
			s.log.Warn("record history", logging.KeyCluster, c.Name, logging.KeyApp, req.App, logging.Err(err))
		}
	}
	s.log.Info("promoted", logging.KeyApp, req.App, logging.KeyFrom, req.FromEnv, logging.KeyTo, req.ToEnv,
		logging.KeyRevision, src.Revision, logging.KeyCommit, commit, logging.KeyBranch, branch)
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
	var srcVars, dstVars []apps.ClusterVars
	for _, c := range list {
		if c.Revoked || !slices.Contains(targeted, c.Name) {
			continue
		}
		switch c.Labels[promoteEnvLabel] {
		case from:
			srcVars = append(srcVars, apps.ClusterVars{Name: c.Name, Labels: c.Labels})
		case to:
			dstVars = append(dstVars, apps.ClusterVars{Name: c.Name, Labels: c.Labels})
		}
	}
	return srcVars, dstVars, nil
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

// overlayPath is the app's path for the clusters of env: the one they all render, or, with
// no cluster, the path for a cluster labelled env alone.
func overlayPath(app *apps.Application, env string, vars []apps.ClusterVars) (string, error) {
	if len(vars) == 0 {
		vars = []apps.ClusterVars{{Labels: map[string]string{promoteEnvLabel: env}}}
	}
	paths := map[string]bool{}
	var p string
	for _, v := range vars {
		got, err := app.PathFor(v)
		if err != nil {
			return "", &promote.PlanError{Err: fmt.Errorf("env=%s: %w", env, err)}
		}
		paths[got], p = true, got
	}
	if len(paths) > 1 {
		return "", &promote.PlanError{Err: fmt.Errorf("the clusters of env=%s render different paths of app %q: promotion needs one overlay per environment", env, app.Name)}
	}
	return p, nil
}

// readKustomization returns the kustomization of dir in snap, and its path.
func readKustomization(snap *source.Snapshot, dir string) ([]byte, string, error) {
	fsys, err := snap.FS()
	if err != nil {
		return nil, "", err
	}
	p, data, err := promote.FindKustomization(fsys, dir)
	return data, p, err
}

func subjectLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
