package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// action is one thing the dashboard can ask of the hub: a confirmation page first, then a
// form POST with the session's CSRF token.
type action struct {
	Title string
	// Describe says what will happen, for the confirmation page.
	Describe func(f target) string
	// Needs is what the form must carry besides the target: "prune" (a checkbox confirming
	// deletions), "revision" (an input), "name" (the cluster's name typed again), "rollback"
	// (a checkbox: abort also returns the updated clusters to the revision they had).
	Needs string
	Do    func(ctx context.Context, b Backend, f target) (string, error)
}

// target is what an action is about, from the query (confirmation) or the form (POST).
type target struct {
	App, Cluster, Revision string
	Prune                  bool
	Name                   string
	Rollback               bool
}

func targetOf(v url.Values) target {
	return target{App: v.Get("app"), Cluster: v.Get("cluster"), Revision: strings.TrimSpace(v.Get("revision")),
		Prune: v.Get("confirm_prune") == "yes", Name: v.Get("name"),
		Rollback: v.Get("rollback") == "yes"}
}

func where(f target) string {
	if f.Cluster == "" {
		return "every cluster it targets"
	}
	return "cluster " + f.Cluster
}

var actions = map[string]action{
	"sync": {
		Title:    "Sync",
		Describe: func(f target) string { return "Send the desired state of " + f.App + " again to " + where(f) + "." },
		Do:       syncing(false),
	},
	"sync-prune": {
		Title: "Sync with prune",
		Describe: func(f target) string {
			return "Sync " + f.App + " on " + where(f) + " and let the deletions held for confirmation go ahead (more than half of the app, Namespaces, PersistentVolumeClaims, CRDs)."
		},
		Needs: "prune",
		Do:    syncing(true),
	},
	"pin": {
		Title: "Pin a revision (rollback)",
		Describe: func(f target) string {
			return "Pin " + f.App + " on " + where(f) + " to a revision until the pin is cleared."
		},
		Needs: "revision",
		Do: func(ctx context.Context, b Backend, f target) (string, error) {
			resp, err := b.Rollback(ctx, &flotillav1.RollbackRequest{App: f.App, Cluster: f.Cluster, ToRevision: f.Revision})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s pinned to %s on %s", f.App, f.Revision, strings.Join(resp.Clusters, ", ")), nil
		},
	},
	"unpin": {
		Title:    "Clear the pin",
		Describe: func(f target) string { return "Let " + f.App + " follow Git again on " + where(f) + "." },
		Do: func(ctx context.Context, b Backend, f target) (string, error) {
			resp, err := b.Rollback(ctx, &flotillav1.RollbackRequest{App: f.App, Cluster: f.Cluster, Clear: true})
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s follows Git again on %s", f.App, strings.Join(resp.Clusters, ", ")), nil
		},
	},
	"revoke": {
		Title: "Revoke the cluster",
		Describe: func(f target) string {
			return "Revoke cluster " + f.Cluster + ": its agent's certificate is refused from now on, and it must join again with a new token."
		},
		Needs: "name",
		Do: func(ctx context.Context, b Backend, f target) (string, error) {
			if f.Name != f.Cluster {
				return "", badQuery("type the cluster's name to confirm")
			}
			if _, err := b.RevokeCluster(ctx, &flotillav1.RevokeClusterRequest{Name: f.Cluster}); err != nil {
				return "", err
			}
			return "cluster " + f.Cluster + " revoked", nil
		},
	},
	"rollout-approve": {
		Title: "Approve the rollout's step",
		Describe: func(f target) string {
			return "Give the approval the active step of " + f.App + "'s rollout waits for."
		},
		Do: rollingOut("approve"),
	},
	"rollout-pause": {
		Title: "Pause the rollout",
		Describe: func(f target) string {
			return "Pause the rollout of " + f.App + ": no further cluster is admitted until it is resumed (those updating carry on)."
		},
		Do: rollingOut("pause"),
	},
	"rollout-resume": {
		Title:    "Resume the rollout",
		Describe: func(f target) string { return "Resume the paused rollout of " + f.App + "." },
		Do:       rollingOut("resume"),
	},
	"rollout-abort": {
		Title: "Abort the rollout",
		Describe: func(f target) string {
			return "End the rollout of " + f.App + ": no further cluster gets its revision."
		},
		Needs: "rollback",
		Do:    rollingOut("abort"),
	},
	"rollout-skip": {
		Title: "Skip a cluster in the rollout",
		Describe: func(f target) string {
			return "Move the rollout of " + f.App + " on without cluster " + f.Cluster + ": its step no longer waits for it (it still gets the revision with its step)."
		},
		Do: rollingOut("skip"),
	},
}

// syncing sends an app's desired state again; with prune, the deletions held for
// confirmation go ahead, once the form's box is ticked.
func syncing(prune bool) func(context.Context, Backend, target) (string, error) {
	return func(ctx context.Context, b Backend, f target) (string, error) {
		if prune && !f.Prune {
			return "", badQuery("tick the box to confirm the deletions")
		}
		resp, err := b.Sync(ctx, &flotillav1.SyncRequest{App: f.App, Cluster: f.Cluster, ConfirmPrune: prune})
		if err != nil {
			return "", err
		}
		what := "sync of " + f.App
		if prune {
			what += " with confirmed prune"
		}
		return fmt.Sprintf("%s sent to %s", what, strings.Join(resp.Clusters, ", ")), nil
	}
}

// confirmView is the confirmation page of an action.
type confirmView struct {
	Action   string
	Title    string
	Describe string
	Needs    string
	Target   target
	Back     string
}

// back is the page an action returns to: a rollout's actions, its app's page.
func back(name string, f target) string {
	switch {
	case strings.HasPrefix(name, "rollout-") && f.App != "":
		return "/apps/" + url.PathEscape(f.App)
	case f.App != "" && f.Cluster != "":
		return cellHref(f.Cluster, f.App)
	case f.App != "":
		return "/apps/" + url.PathEscape(f.App)
	case f.Cluster != "":
		return "/clusters/" + url.PathEscape(f.Cluster)
	}
	return "/"
}

func (h *Handler) confirmPage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("action")
	a, ok := actions[name]
	if !ok {
		h.fail(w, r, notFound("no action "+name))
		return
	}
	f := targetOf(r.URL.Query())
	h.render(w, r, http.StatusOK, "confirm", a.Title, "", &confirmView{
		Action: name, Title: a.Title, Describe: a.Describe(f), Needs: a.Needs, Target: f, Back: back(name, f),
	})
}

// doneView is the page after an action.
type doneView struct {
	Message string
	Back    string
}

func (h *Handler) act(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("action")
	a, ok := actions[name]
	if !ok {
		h.fail(w, r, notFound("no action "+name))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := h.csrf.check(r); err != nil {
		h.render(w, r, http.StatusForbidden, "error", "Error", "", err.Error())
		return
	}
	f := targetOf(r.PostForm)
	ctx := r.Context()
	if h.cfg.Acting != nil {
		ctx = h.cfg.Acting(r)
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	msg, err := a.Do(ctx, h.cfg.Backend, f)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("dashboard action", logging.KeyAction, name, logging.KeyApp, f.App, logging.KeyCluster, f.Cluster, logging.KeyActor, h.identity(r))
	h.render(w, r, http.StatusOK, "done", a.Title, "", &doneView{Message: msg, Back: back(name, f)})
}
