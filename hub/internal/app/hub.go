package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/flotilla-dev/flotilla/hub/internal/cli"
	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/gctune"
	"github.com/flotilla-dev/flotilla/hub/internal/metrics"
	"github.com/flotilla-dev/flotilla/hub/internal/notify"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/render"
	"github.com/flotilla-dev/flotilla/hub/internal/rollout"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	"github.com/flotilla-dev/flotilla/hub/internal/webhook"
	"github.com/flotilla-dev/flotilla/shared/httpserve"
	"github.com/flotilla-dev/flotilla/shared/logging"
	"github.com/flotilla-dev/flotilla/shared/version"
)

func newHubCmd() *cobra.Command {
	o := NewOptions()
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Run the hub: pull Git, render every app for every cluster, stream it to the agents",
		Long: `Run the hub server.

On first start the hub creates its CA and serving certificate in --data-dir and writes
DATA_DIR/admin.yaml, the operator config the other flotilla commands use
(flotilla --config DATA_DIR/admin.yaml status, or FLOTILLA_CONFIG=DATA_DIR/admin.yaml).
Register clusters with "flotilla cluster add NAME --labels k=v"; each gets a join token for
its agent.`,
		Example: `  flotilla hub --data-dir /var/lib/flotilla --apps-dir ./apps
  flotilla hub --apps-repo https://git.example.com/org/fleet.git --apps-path apps --listen 0.0.0.0:7443 --tls-san hub.example.com`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			log, err := logging.New(cmd.ErrOrStderr(), o.Log)
			if err != nil {
				return err
			}
			c, err := o.Complete()
			if err != nil {
				return err
			}
			return runHub(cmd.Context(), c, log)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// gcTuner is the tuner of the hub's garbage collection (--gc-idle-percent) by the hub's work,
// or nil when it is off or GOGC is set in the environment.
func gcTuner(o *Options, getenv func(string) string, work func() uint64, log *slog.Logger) *gctune.Tuner {
	if o.GCIdlePercent <= 0 || getenv("GOGC") != "" {
		return nil
	}
	return gctune.New(o.GCIdlePercent, work, log)
}

// runHub runs the hub of the completed options until ctx ends.
func runHub(ctx context.Context, o *completedOptions, log *slog.Logger) error {
	if o.Profiling {
		// A heap profile's figures per connection (a few KiB each) need finer samples than
		// Go's default of one per 512 KiB allocated.
		runtime.MemProfileRate = profilingMemRate
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	ca, err := pki.LoadOrCreate(o.Replicas.CADir)
	if err != nil {
		return fmt.Errorf("certificate authority: %w", err)
	}
	advHost, _, _ := net.SplitHostPort(o.Advertise)
	hosts := append([]string{"localhost", "127.0.0.1", advHost}, o.TLSSANs...)
	serving, err := ca.ServingCert(o.DataDir, hosts)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	st, err := store.Open(filepath.Join(o.DataDir, "flotilla.db"))
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer st.Close()
	st.SetRetention(o.Retention)
	if err := writeAdminConfig(o.Options, ca); err != nil {
		return fmt.Errorf("operator config: %w", err)
	}

	fl := fleet.New(3 * o.Heartbeat)
	fl.SetRemovalGrace(o.RemovalGrace)
	ml, ha, err := startReplica(ctx, o, ca, log)
	if err != nil {
		return fmt.Errorf("hub replicas: %w", err)
	}
	own := cluster.NewOwnership(nil, nil, log) // a hub that runs alone owns every cluster
	if ml != nil {
		defer func() { _ = ml.Leave(leaveTimeout) }()
		own = cluster.NewOwnership(ml, st.ClusterNames, log)
	}
	m := metrics.New(presenceCounter(st, fl, own.Owned, presenceRegistryEvery))
	if ml != nil {
		m.Replicas(func() int { return len(ml.Members()) })
	}
	restoreReports(fl, st, log)
	notifier, err := newNotifier(o, fl, st, ownedClusters(clusterLister(st), ha, own.Owned), m, log)
	if err != nil {
		return err
	}
	fetcher, err := source.New(source.Options{
		CacheDir: filepath.Join(o.DataDir, "git"), AllowLocal: o.AllowLocalRepos, Credentials: o.repoCredentials,
	})
	if err != nil {
		return err
	}
	var rec *fleet.Reconciler
	var rollouts *rollout.Coordinator
	rolloutMetrics := m.Rollouts(rollout.AllStates, func() map[string]int { return rollouts.CountByState() })
	rollouts, err = rollout.New(rollout.Config{
		Store: st, Fleet: fl, Clusters: clusterLister(st), Owns: coordinates(own), Local: own.Owned,
		Trigger: func() { rec.Trigger() }, Logger: log,
		Notify: func(r *rollout.Record, t rollout.Transition) {
			if t.Kind == notify.RolloutStepCompleted {
				rolloutMetrics.StepDone(t.Duration)
			}
			notifier.Rollout(t.Kind, r.App, r.Revision, t.Summary, r.Updated)
		},
	})
	if err != nil {
		return err
	}
	watchFleet(fl, st, notifier, rollouts.Poke, log)
	rec = fleet.NewReconciler(fleet.ReconcilerConfig{
		Rollouts: rollouts,
		AppsDir:  o.AppsDir, AppsRepo: o.AppsRepo, AppsRevision: o.AppsRevision, AppsPath: o.AppsPath,
		PollInterval: o.PollInterval, Fetcher: fetcher, Renderer: render.New(render.Options{}),
		Cache: render.NewCache(0), Clusters: ownedClusters(clusterLister(st), ha, own.Release), Logger: log, Metrics: m,
		IgnoreDifferences: o.ignoreDifferences, Charts: o.charts,
	}, fl)
	srv := server.New(server.Config{
		Fleet: fl, Store: st, Pins: st, Replication: st, CA: ca, Serving: serving, Reconcile: rec, Heartbeat: o.Heartbeat,
		AgentCertTTL: o.AgentCertTTL, RenewalGrace: o.AgentCertRenewalGrace, HubVersion: version.Version, Logger: log, Metrics: m, Git: fetcher, HA: ha,
		Ownership: own, Retention: o.Retention, Rollouts: rollouts, MaxHandshakes: o.MaxHandshakes,
	})

	if ha != nil {
		rollouts.SetPeers(srv)
	}
	lis, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, lis) })
	if t := gcTuner(o.Options, os.Getenv, srv.Work, log); t != nil {
		g.Go(func() error { t.Run(gctx); return nil })
	}
	g.Go(func() error { return rec.Run(gctx) })
	g.Go(func() error { return rollouts.Run(gctx) })
	g.Go(func() error { return notifier.Run(gctx) })
	g.Go(func() error { return pruneRecords(gctx, st, log) })
	if ml != nil {
		ml.OnMessage(srv.OnBroadcast)
		g.Go(func() error { return srv.RunReplica(gctx, ml.Changes()) })
		g.Go(func() error {
			return reloadGossipKeys(gctx, ml, o.Replicas.GossipKeyFile, gossipKeyReload, log)
		})
	}
	if o.HTTPListen != "" {
		hl, err := net.Listen("tcp", o.HTTPListen)
		if err != nil {
			return fmt.Errorf("--http-listen: %w", err)
		}
		mux, err := httpMux(o, fl, rec, m, log)
		if err != nil {
			return err
		}
		if o.UI.Enabled {
			dash, protected, err := dashboard(ctx, o, srv, log)
			if err != nil {
				return err
			}
			mux.Handle("/", protected)
			g.Go(func() error { return dash.Run(gctx) })
		}
		g.Go(func() error { return httpserve.Serve(gctx, httpserve.New(mux, httpserve.Timeouts{}), hl) })
	}
	log.Info("hub started", logging.KeyAddr, lis.Addr().String(), logging.KeyAdvertise, o.Advertise,
		logging.KeyVersion, version.String(), logging.KeyAdminConfig, filepath.Join(o.DataDir, "admin.yaml"))
	return g.Wait()
}

// coordinates says whether this replica coordinates an app's rollouts: it owns the app's key
// on the ring the clusters are shared out on (a hub that runs alone coordinates them all).
func coordinates(own *cluster.Ownership) func(app string) bool {
	return func(app string) bool {
		w, err := own.Now()
		return err == nil && w.Mine(rollout.OwnerKey(app))
	}
}

// watchFleet keeps a snapshot of every agent report in the store (restoreReports reads them
// at the next start), hands reports and held removals to the notifier and pokes the rollouts.
func watchFleet(fl *fleet.Fleet, st *store.Store, notifier *notify.Notifier, poke func(), log *slog.Logger) {
	fl.OnReport(func(cluster string, r *fleet.Report) {
		data, err := json.Marshal(r)
		if err == nil {
			err = st.PutStatus(cluster, r.App, data)
		}
		if err != nil {
			log.Warn("status snapshot not saved", logging.KeyCluster, cluster, logging.KeyApp, r.App, logging.Err(err))
		}
		notifier.Report(cluster, r)
		poke()
	})
	fl.OnForget(func(cluster, app string) {
		if err := st.DeleteStatus(cluster, app); err != nil {
			log.Warn("status snapshot not deleted", logging.KeyCluster, cluster, logging.KeyApp, app, logging.Err(err))
		}
	})
	fl.OnRemovalHold(notifier.RemovalHeld)
}

// presenceCounter counts, at scrape time, the agents connected to this hub and its stale
// clusters: the registered, unrevoked clusters it owns (owned is asked at every scrape; a hub
// that runs alone owns them all) whose agent is not connected here. The cluster of another
// replica is that replica's to count, so that the counts of all replicas add up to the fleet's.
// The registry is read at most every registryEvery (a scrape asks twice, once per gauge, and
// reading 10,000 clusters' records costs tens of milliseconds); presence is read live.
func presenceCounter(st *store.Store, fl *fleet.Fleet, owned func() func(cluster string) bool, registryEvery time.Duration) metrics.Presence {
	var mu sync.Mutex
	var registered []string // unrevoked, as last read
	var read time.Time
	return func() (connected, stale int) {
		mu.Lock()
		if registered == nil || time.Since(read) >= registryEvery {
			list, err := st.ListClusters()
			if err != nil {
				mu.Unlock()
				return 0, 0
			}
			registered = make([]string, 0, len(list))
			for _, c := range list {
				if !c.Revoked {
					registered = append(registered, c.Name)
				}
			}
			read = time.Now()
		}
		names := registered
		mu.Unlock()
		mine := owned()
		for _, name := range names {
			switch _, state := fl.Presence(name); {
			case state == fleet.StateConnected:
				connected++
			case mine(name):
				stale++
			}
		}
		return connected, stale
	}
}

// presenceRegistryEvery is how often the presence metrics read the cluster registry.
const presenceRegistryEvery = 10 * time.Second

// clusterLister lists the registered, non-revoked clusters for the reconciler.
func clusterLister(st *store.Store) func() ([]fleet.ClusterVars, error) {
	return func() ([]fleet.ClusterVars, error) {
		list, err := st.ListClusters()
		if err != nil {
			return nil, err
		}
		out := make([]fleet.ClusterVars, 0, len(list))
		for _, c := range list {
			if !c.Revoked {
				out = append(out, fleet.ClusterVars{Name: c.Name, Labels: c.Labels})
			}
		}
		return out, nil
	}
}

func restoreReports(fl *fleet.Fleet, st *store.Store, log *slog.Logger) {
	recs, err := st.ListStatus()
	if err != nil {
		log.Warn("status snapshots not restored", logging.Err(err))
		return
	}
	for _, rec := range recs {
		var r fleet.Report
		if err := json.Unmarshal(rec.Data, &r); err != nil {
			continue
		}
		fl.RestoreReport(rec.Cluster, &r)
	}
}

// writeAdminConfig writes DATA_DIR/admin.yaml with a fresh operator certificate unless one
// exists for the same hub address.
func writeAdminConfig(o *Options, ca *pki.CA) error {
	path := filepath.Join(o.DataDir, "admin.yaml")
	if c, err := cli.LoadConfig(path); err == nil && c.Hub == o.Advertise && c.CA == string(ca.CertPEM()) {
		return nil
	}
	cert, key, err := ca.IssueAdmin("admin", 365*24*time.Hour)
	if err != nil {
		return err
	}
	return cli.WriteConfig(path, &cli.Config{Hub: o.Advertise, CA: string(ca.CertPEM()), Cert: string(cert), Key: string(key)})
}

// profilingMemRate is the heap profile's sampling with --profiling: one sample per 16 KiB.
const profilingMemRate = 16 << 10

// httpMux serves health, metrics, with --profiling the runtime profiles, and, with a webhook
// secret, POST /api/webhook.
func httpMux(o *completedOptions, fl *fleet.Fleet, rec *fleet.Reconciler, m *metrics.Hub, log *slog.Logger) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	if o.Profiling {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	if o.webhookSecret == nil {
		mux.HandleFunc("/api/webhook", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "webhooks are off: start the hub with --webhook-secret-file", http.StatusNotFound)
		})
		return mux, nil
	}
	mux.Handle("/api/webhook", webhook.New(o.webhookSecret, func(p webhook.Push) int {
		pushed := map[string]bool{}
		for _, u := range p.URLs {
			pushed[webhook.Normalize(u)] = true
		}
		n := 0
		for _, a := range fl.Apps() {
			if pushed[webhook.Normalize(a.RepoURL)] {
				n++
			}
		}
		if o.AppsRepo != "" && pushed[webhook.Normalize(o.AppsRepo)] {
			n++
		}
		if n > 0 {
			rec.Trigger()
		}
		return n
	}, log))
	return mux, nil
}

// pruneInterval is how often history and audit records past their retention are deleted.
const pruneInterval = 10 * time.Minute

// pruneRecords applies the retention to history and audit records now and every pruneInterval.
func pruneRecords(ctx context.Context, st *store.Store, log *slog.Logger) error {
	t := time.NewTicker(pruneInterval)
	defer t.Stop()
	for {
		if n, err := st.Prune(time.Now()); err != nil {
			log.Warn("history and audit records not pruned", logging.Err(err))
		} else if n > 0 {
			log.Info("history and audit records past their retention deleted", logging.KeyCount, n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
