// Command demo runs the whole system locally (`make demo`): two local clusters labelled
// env=staging and env=production, a Git repository with the seed layout served by git daemon,
// the hub and one agent per cluster. It waits until everything is Synced and Healthy, prints
// `flotilla status`, tells the user what to try, and cleans everything up on Ctrl-C.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run() error {
	binDir := flag.String("bin-dir", "bin", "directory with flotilla and flotilla-agent (make build)")
	poll := flag.Duration("poll-interval", 5*time.Second, "the hub's Git poll interval")
	flag.Parse()
	bins, err := filepath.Abs(*binDir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "flotilla-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	say("starting two local Kubernetes clusters (etcd, kube-apiserver, controller-manager, scheduler, kwok)...")
	clusters, err := localkube.StartAll(ctx,
		localkube.Options{Name: "staging", BaseDir: dir}, localkube.Options{Name: "production", BaseDir: dir})
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range clusters {
			c.Stop()
		}
	}()
	for _, c := range clusters {
		say("  cluster %-10s ready in %s", c.Name, c.StartupTime.Round(time.Millisecond))
	}

	repo, git, err := localfleet.ServeDemo(ctx, dir, "1.0.0")
	if err != nil {
		return err
	}
	defer git.Stop()
	appsDir := filepath.Join(dir, "apps")
	if err := localfleet.WriteFiles(appsDir, localfleet.DemoApplications(git.URL(repo.Dir))); err != nil {
		return err
	}
	if err := localfleet.WriteFiles(appsDir, localfleet.DemoPlatformApplications(git.URL(repo.Dir))); err != nil {
		return err
	}
	say("starting the hub and one agent per cluster...")
	fleet, err := localfleet.Start(ctx, localfleet.Options{
		Dir: dir, BinDir: bins, AppsDir: appsDir, PollInterval: *poll, Heartbeat: 2 * time.Second,
		Members: []localfleet.Member{
			{Cluster: clusters[0], Labels: map[string]string{"env": "staging"}},
			{Cluster: clusters[1], Labels: map[string]string{"env": "production"}},
		},
	})
	if err != nil {
		return err
	}
	defer fleet.Stop()
	rev, err := repo.Head()
	if err != nil {
		return err
	}
	say("waiting until api, worker and platform-ingress (a Helm chart) are Synced and Healthy on both clusters...")
	_, err = fleet.WaitStatus(ctx, 5*time.Minute, func(items []localfleet.StatusItem) bool {
		if len(items) != 6 {
			return false
		}
		for _, it := range items {
			if it.Sync != "Synced" || it.Health != "Healthy" || it.AppliedRevision != rev {
				return false
			}
		}
		return true
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, fleet.Logs())
		return err
	}
	out, err := fleet.CLI(ctx, "status")
	if err != nil {
		return err
	}
	fmt.Printf("\n$ flotilla status\n%s\n", out)
	flotilla := filepath.Join(bins, "flotilla")
	say(`The fleet is up. In another terminal:

  # the operator CLI
  export FLOTILLA_CONFIG=%[1]s
  %[2]s status
  %[2]s status -o json
  %[2]s clusters
  %[2]s apps
  %[2]s dashboard --open   # the web dashboard on 127.0.0.1, with the same credentials

  # look into a cluster
  kubectl --kubeconfig %[3]s -n api get deploy,svc,hpa,pods
  kubectl --kubeconfig %[4]s -n api get deploy,svc,hpa,pods
  kubectl --kubeconfig %[4]s -n platform-ingress get deploy,svc,cm   # the platform/ingress chart

  # the platform/ layer is a Helm chart rendered by the hub: bump it and watch both clusters
  cd %[5]s
  sed -i 's/^version: 0.1.0/version: 0.2.0/; s/^appVersion: "1.0.0"/appVersion: "1.1.0"/' platform/ingress/Chart.yaml
  git -c user.name=you -c user.email=you@example.com commit -qam "ingress 1.1.0"
  %[2]s apps          # PATH shows platform/ingress (chart 0.2.0)

  # change the api image in Git and watch it roll out to both clusters
  cd %[5]s
  sed -i 's/newTag: "1.0.0"/newTag: "1.1.0"/' base/api/kustomization.yaml
  git -c user.name=you -c user.email=you@example.com commit -am "api 1.1.0"
  %[2]s status        # within about %[6]s

Logs: %[7]s
Press Ctrl-C to stop everything and clean up.`,
		fleet.AdminConfig, flotilla, clusters[0].Kubeconfig, clusters[1].Kubeconfig, repo.Dir, *poll, fleet.LogDir)
	<-ctx.Done()
	say("\nstopping the agents, the hub, git and the clusters...")
	return nil
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }
