package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// BenchmarkReplicaRehome kills the hub replica owning the most clusters of four, and reports
// how long its agents took to stream from a new owner (from the agents' logs: the first
// "connected to hub" after the kill), then restarts it and reports how long until every
// cluster is back with its first owner. Run with -benchtime 1x: each iteration kills and
// restarts a replica.
func BenchmarkReplicaRehome(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	f := startHAFleet(b, ctx)
	rev, _ := f.repo.Head()
	for i := range f.hubs.Hubs {
		if _, err := waitReplicaStatus(ctx, f.hubs, i, 3*time.Minute, fleetAt(f.names, rev)); err != nil {
			b.Fatal(err)
		}
	}
	owners := waitOwners(b, ctx, f.hubs, 0, f.names, nil)
	var rehome, rebalance []time.Duration
	for b.Loop() {
		victim := mostOwning(f.hubs, owners)
		dead := f.hubs.Hubs[victim]
		var moved []string
		for c, o := range owners {
			if o == dead.Name {
				moved = append(moved, c)
			}
		}
		dead.Process.Kill()
		killed := time.Now()
		var worst time.Duration
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			worst = 0
			for _, c := range moved {
				at, ok := connectedSince(f.hubs.Agents[c].LogPath, killed)
				if !ok {
					return false, nil
				}
				worst = max(worst, at.Sub(killed))
			}
			return true, nil
		})
		if err != nil {
			b.Fatalf("agents of %v did not reconnect: %v", moved, err)
		}
		rehome = append(rehome, worst)
		if err := f.hubs.Start(ctx, victim); err != nil {
			b.Fatal(err)
		}
		restarted := time.Now()
		waitOwners(b, ctx, f.hubs, victim, f.names, func(c, owner string) bool { return owner == owners[c] })
		rebalance = append(rebalance, time.Since(restarted))
	}
	slices.Sort(rehome)
	slices.Sort(rebalance)
	b.ReportMetric(rehome[len(rehome)/2].Seconds(), "s-rehome-median")
	b.ReportMetric(rehome[len(rehome)-1].Seconds(), "s-rehome-max")
	b.ReportMetric(rebalance[len(rebalance)/2].Seconds(), "s-rebalance-median")
}
