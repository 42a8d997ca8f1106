// Package promote decides whether an app's revision may be promoted from one environment to
// the next and writes the promotion: the source environment's clusters must all run the same
// revision and have been Healthy on it for the soak time; then what the app declares as
// promotable in the source overlay (kustomize images) is copied to the target overlay, and
// Writer pushes that commit (write.go). The server gathers the reports from every replica
// and hands them in as Witnesses; nothing here knows the gRPC types.
package promote

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
)

// RefusedError says why a promotion was refused; the operator can act on it (wait, fix the
// source environment).
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string { return "promotion refused: " + e.Reason }

// PlanError says why the promotion cannot be written: the app's overlays or repository do
// not allow it (no overlay per environment, no kustomization, nothing to copy).
type PlanError struct {
	Err error
}

func (e *PlanError) Error() string { return e.Err.Error() }
func (e *PlanError) Unwrap() error { return e.Err }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}

// Witness is one cluster of the source environment and what the hub knows of the app there.
type Witness struct {
	Cluster string
	// Connected is the cluster's presence: a Stale cluster vouches for nothing.
	Connected bool
	// Report is the agent's latest report of the app; nil when there is none.
	Report *fleet.Report
}

// Source is the revision the source environment vouches for.
type Source struct {
	Revision string
	// Clusters vouched for it, sorted.
	Clusters []string
	// HealthySince is the latest of the clusters' HealthySince: the whole environment has
	// been Healthy on Revision since then.
	HealthySince time.Time
}

// Vouch returns the revision every witness of env runs, Healthy for at least soak at now, or
// a RefusedError naming every cluster that does not vouch and why.
func Vouch(env string, witnesses []Witness, soak time.Duration, now time.Time) (Source, error) {
	if len(witnesses) == 0 {
		return Source{}, refused("no registered cluster with env=%s runs the app", env)
	}
	var unhealthy, unsoaked []string
	revs := map[string][]string{}
	src := Source{}
	for _, w := range witnesses {
		r := w.Report
		switch {
		case !w.Connected:
			unhealthy = append(unhealthy, w.Cluster+" is Stale or disconnected")
			continue
		case r == nil || r.AppliedRevision == "":
			unhealthy = append(unhealthy, w.Cluster+" has applied nothing")
			continue
		case r.Health != "Healthy" || r.HealthyRevision != r.AppliedRevision || r.HealthySince.IsZero():
			unhealthy = append(unhealthy, fmt.Sprintf("%s is %s at %s", w.Cluster, r.Health, ShortRev(r.AppliedRevision)))
			continue
		case r.RolledBackRevision != "":
			unhealthy = append(unhealthy, fmt.Sprintf("%s rolled back from %s", w.Cluster, ShortRev(r.RolledBackRevision)))
			continue
		case r.Sync != fleet.SyncSynced:
			unhealthy = append(unhealthy, fmt.Sprintf("%s is %s at %s", w.Cluster, r.Sync, ShortRev(r.AppliedRevision)))
			continue
		}
		revs[r.AppliedRevision] = append(revs[r.AppliedRevision], w.Cluster)
		if healthyFor := now.Sub(r.HealthySince); healthyFor < soak {
			unsoaked = append(unsoaked, fmt.Sprintf("%s Healthy for %s", w.Cluster, healthyFor.Round(time.Second)))
		}
		if r.HealthySince.After(src.HealthySince) {
			src.HealthySince = r.HealthySince
		}
		src.Revision = r.AppliedRevision
		src.Clusters = append(src.Clusters, w.Cluster)
	}
	if len(unhealthy) > 0 {
		return Source{}, refused("env=%s is not healthy on all its clusters: %s", env, strings.Join(unhealthy, "; "))
	}
	if len(revs) > 1 {
		var parts []string
		for rev, cs := range revs {
			slices.Sort(cs)
			parts = append(parts, fmt.Sprintf("%s on %s", ShortRev(rev), strings.Join(cs, ",")))
		}
		slices.Sort(parts)
		return Source{}, refused("the clusters of env=%s run different revisions: %s", env, strings.Join(parts, "; "))
	}
	if len(unsoaked) > 0 {
		return Source{}, refused("revision %s is not soaked: %s; the soak time is %s", ShortRev(src.Revision), strings.Join(unsoaked, ", "), soak)
	}
	slices.Sort(src.Clusters)
	return src, nil
}

// ShortRev is the abbreviated revision used in branch names and messages.
func ShortRev(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}
