package promote

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// EnvLabel is the cluster label that names a cluster's environment.
const EnvLabel = "env"

// The signature of promotion commits; Promoted-By in the message names the operator.
const (
	authorName  = "Flotilla"
	authorEmail = "flotilla@flotilla.dev"
)

// gitRepos reads and writes the apps' repositories, with the hub's Git credentials.
type gitRepos interface {
	Fetch(ctx context.Context, repoURL, rev string) (*source.Snapshot, error)
	Push(ctx context.Context, repoURL string, c source.Commit) (string, error)
}

// historyStore records a promotion in the history of the target environment's clusters.
type historyStore interface {
	AddHistory(r store.HistoryRecord) error
}

// Writer writes promotions: it judges the source environment, copies the promotable part of
// its overlay to the target's and pushes the commit.
type Writer struct {
	git     gitRepos
	history historyStore
	log     *slog.Logger
}

// NewWriter returns a Writer reading and pushing with git and recording in history.
func NewWriter(git gitRepos, history historyStore, log *slog.Logger) *Writer {
	if log == nil {
		log = slog.Default()
	}
	return &Writer{git: git, history: history, log: log}
}

// Request is one promotion an operator asked for.
type Request struct {
	App      fleet.AppInfo
	From, To string // environments
	Soak     time.Duration
	// Push commits to the app's target branch; otherwise to Branch (default: BranchName).
	Push   bool
	Branch string
	By     string // the operator
}

// Result is a promotion pushed.
type Result struct {
	Source     Source
	Commit     string
	Branch     string
	SourcePath string
	TargetPath string
	Changes    []ImageChange
}

// Environments returns the variables of the registered, unrevoked clusters among targeted
// (those the app targets) in the source environment from and in the target environment to.
func Environments(list []store.Cluster, targeted []string, from, to string) (src, dst []apps.ClusterVars) {
	for _, c := range list {
		if c.Revoked || !slices.Contains(targeted, c.Name) {
			continue
		}
		switch c.Labels[EnvLabel] {
		case from:
			src = append(src, apps.ClusterVars{Name: c.Name, Labels: c.Labels})
		case to:
			dst = append(dst, apps.ClusterVars{Name: c.Name, Labels: c.Labels})
		}
	}
	return src, dst
}

// Write promotes req.App from the source environment, whose clusters are src and whose
// witnesses say what runs there, to the target environment, whose clusters are dst. It
// returns a RefusedError when the source environment does not vouch for a revision, a
// PlanError when the overlays do not allow the promotion, an error wrapping
// source.ErrPushRejected when the branch moved meanwhile, or a failure of Git.
func (w *Writer) Write(ctx context.Context, req Request, src, dst []apps.ClusterVars, witnesses []Witness) (Result, error) {
	info := req.App
	vouched, err := Vouch(req.From, witnesses, req.Soak, time.Now())
	if err != nil {
		return Result{}, err
	}
	app := &apps.Application{Name: info.Name, Source: apps.Source{RepoURL: info.RepoURL, TargetRevision: info.TargetRevision, Path: info.Path}}
	srcPath, err := overlayPath(app, req.From, src)
	if err != nil {
		return Result{}, err
	}
	dstPath, err := overlayPath(app, req.To, dst)
	if err != nil {
		return Result{}, err
	}
	if srcPath == dstPath {
		return Result{}, planError("env=%s and env=%s both render %s: there is no overlay to promote to", req.From, req.To, srcPath)
	}

	target, err := w.git.Fetch(ctx, info.RepoURL, info.TargetRevision)
	if err != nil {
		return Result{}, fmt.Errorf("fetch the target revision: %w", err)
	}
	branch := req.Branch
	switch {
	case req.Push:
		name, ok := strings.CutPrefix(target.Ref, "refs/heads/")
		if !ok {
			return Result{}, planError("the app's target revision %q is no branch to push to: promote to a new branch instead", info.TargetRevision)
		}
		branch = name
	case branch == "":
		branch = BranchName(info.Name, vouched.Revision)
	}
	srcSnap := target
	if vouched.Revision != target.Commit {
		if srcSnap, err = w.git.Fetch(ctx, info.RepoURL, vouched.Revision); err != nil {
			return Result{}, fmt.Errorf("fetch the source revision: %w", err)
		}
	}
	srcData, _, err := readKustomization(srcSnap, srcPath)
	if err != nil {
		return Result{}, planError("env=%s at %s: %w", req.From, ShortRev(vouched.Revision), err)
	}
	dstData, dstFile, err := readKustomization(target, dstPath)
	if err != nil {
		return Result{}, planError("env=%s at %s: %w", req.To, ShortRev(target.Commit), err)
	}
	out, changes, err := CopyImages(srcData, dstData)
	if err != nil {
		return Result{}, planError("promote %s from %s to %s: %w", info.Name, srcPath, dstFile, err)
	}
	plan := &Plan{
		App: info.Name, From: req.From, To: req.To, Source: vouched, SourcePath: srcPath, TargetPath: dstFile,
		Changes: changes, Soak: req.Soak, By: req.By,
	}
	commit, err := w.git.Push(ctx, info.RepoURL, source.Commit{
		Parent: target.Commit, Files: map[string][]byte{dstFile: out}, Message: plan.CommitMessage(),
		AuthorName: authorName, AuthorEmail: authorEmail, Branch: branch,
	})
	if err != nil {
		return Result{}, fmt.Errorf("push the promotion: %w", err)
	}
	w.record(req, plan, dst, commit, branch)
	w.log.Info("promoted", logging.KeyApp, info.Name, logging.KeyFrom, req.From, logging.KeyTo, req.To,
		logging.KeyRevision, vouched.Revision, logging.KeyCommit, commit, logging.KeyBranch, branch)
	return Result{Source: vouched, Commit: commit, Branch: branch, SourcePath: srcPath, TargetPath: dstFile, Changes: changes}, nil
}

// record writes the promotion into the history of the target environment's clusters.
func (w *Writer) record(req Request, plan *Plan, dst []apps.ClusterVars, commit, branch string) {
	rev := ShortRev(plan.Source.Revision)
	result := fmt.Sprintf("Promoted from env=%s at %s: pushed to branch %s (merge it to roll out)", req.From, rev, branch)
	if req.Push {
		result = fmt.Sprintf("Promoted from env=%s at %s: pushed to %s", req.From, rev, branch)
	}
	subject, _, _ := strings.Cut(plan.CommitMessage(), "\n")
	for _, c := range dst {
		rec := store.HistoryRecord{
			Time: time.Now(), Cluster: c.Name, App: plan.App, Revision: commit,
			Author: authorName + " <" + authorEmail + ">", Message: subject, Result: result,
		}
		if err := w.history.AddHistory(rec); err != nil {
			w.log.Warn("record history", logging.KeyCluster, c.Name, logging.KeyApp, plan.App, logging.Err(err))
		}
	}
}

func planError(format string, args ...any) error {
	return &PlanError{Err: fmt.Errorf(format, args...)}
}

// overlayPath is the app's path for the clusters of env: the one they all render, or, with
// no cluster, the path for a cluster labelled env alone.
func overlayPath(app *apps.Application, env string, vars []apps.ClusterVars) (string, error) {
	if len(vars) == 0 {
		vars = []apps.ClusterVars{{Labels: map[string]string{EnvLabel: env}}}
	}
	paths := map[string]bool{}
	var p string
	for _, v := range vars {
		got, err := app.PathFor(v)
		if err != nil {
			return "", planError("env=%s: %w", env, err)
		}
		paths[got], p = true, got
	}
	if len(paths) > 1 {
		return "", planError("the clusters of env=%s render different paths of app %q: promotion needs one overlay per environment", env, app.Name)
	}
	return p, nil
}

// readKustomization returns the kustomization of dir in snap, and its path.
func readKustomization(snap *source.Snapshot, dir string) ([]byte, string, error) {
	fsys, err := snap.FS()
	if err != nil {
		return nil, "", err
	}
	p, data, err := FindKustomization(fsys, dir)
	return data, p, err
}
