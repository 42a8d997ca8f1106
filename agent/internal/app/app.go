// Package app builds the `flotilla-agent` command: options, wiring and run.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/hubclient"
	"github.com/flotilla-dev/flotilla/agent/internal/identity"
	"github.com/flotilla-dev/flotilla/agent/internal/kube"
	"github.com/flotilla-dev/flotilla/agent/internal/metrics"
	"github.com/flotilla-dev/flotilla/agent/internal/syncer"
	"github.com/flotilla-dev/flotilla/shared/agentkey"
	"github.com/flotilla-dev/flotilla/shared/httpserve"
	"github.com/flotilla-dev/flotilla/shared/jointoken"
	"github.com/flotilla-dev/flotilla/shared/logging"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// IdentitySecret is the Secret in the agent's namespace holding its key and certificate.
const IdentitySecret = "flotilla-agent-identity"

// AgeSecret is the Secret in the agent's namespace holding its age identity, which decrypts
// EncryptedSecrets; created on first start.
const AgeSecret = "flotilla-agent-age"

// EnvJoinToken is the environment variable the join token is read from when --join-token is
// not given (the Helm chart sets it from a Secret).
const EnvJoinToken = "FLOTILLA_JOIN_TOKEN"

// Options are the agent's flags. Defaults live here.
type Options struct {
	Hubs         []string
	JoinToken    string
	Kubeconfig   string
	Namespace    string
	HTTPListen   string
	FieldManager string
	// AllowSelfManagement lets desired state modify the agent itself (its namespace, its own
	// ServiceAccount and RBAC objects).
	AllowSelfManagement bool
	// KubeAPIQPS and KubeAPIBurst limit the agent's requests to its API server.
	KubeAPIQPS   float32
	KubeAPIBurst int
	// SyncTimeout bounds one sync of an app (syncer.Config.SyncTimeout).
	SyncTimeout time.Duration
	// Profiling serves Go's pprof profiles under /debug/pprof/ on HTTPListen.
	Profiling bool
	Log       logging.Options
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		Namespace:    "flotilla-system",
		HTTPListen:   "127.0.0.1:8081",
		FieldManager: "flotilla-agent",
		// A first sync costs two requests per object (the dry-run of the whole revision, then
		// the writes): 50/s made the agent's apply of 1,000 objects wait 34 s on its own
		// limiter, slower than kubectl's one request per object. The API server's priority
		// and fairness still protects it.
		KubeAPIQPS:   200,
		KubeAPIBurst: 400,
		SyncTimeout:  syncer.DefaultSyncTimeout,
		Log:          logging.Options{Level: "info", Format: "text"},
	}
}

// AddFlags binds the options to flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&o.Hubs, "hub", o.Hubs, "hub address host:port; repeat or comma-separate for several hub replicas")
	fs.StringVar(&o.JoinToken, "join-token", o.JoinToken, "single-use join token printed by 'flotilla cluster add' (needed on first start only; default $"+EnvJoinToken+", which keeps it off the command line)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig of the cluster to manage (in-cluster config when empty)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "namespace where the agent keeps its identity and state Secrets (created if missing)")
	fs.StringVar(&o.HTTPListen, "http-listen", o.HTTPListen, "address for /healthz, /readyz and /metrics (empty disables)")
	fs.StringVar(&o.FieldManager, "field-manager", o.FieldManager, "server-side apply field manager")
	fs.BoolVar(&o.AllowSelfManagement, "allow-self-management", o.AllowSelfManagement, "let apps modify the agent itself: objects in --namespace and the agent's own ServiceAccount, Roles, ClusterRoles and bindings (refused by default)")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "sustained requests per second to the cluster's API server (the server's priority and fairness has the last word)")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "requests allowed in a burst above --kube-api-qps (a large first sync)")
	fs.DurationVar(&o.SyncTimeout, "sync-timeout", o.SyncTimeout, "how long one sync of an app (apply, prune, self-heal) may take before it is cancelled, reported as failed and retried with backoff")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "also serve Go's pprof profiles (heap, CPU, goroutines) under /debug/pprof/ on --http-listen; off by default, since anyone who reaches that address can read them")
	fs.StringVar(&o.Log.Level, "log-level", o.Log.Level, "debug, info, warn or error")
	fs.StringVar(&o.Log.Format, "log-format", o.Log.Format, "text or json")
}

// Validate checks the options.
func (o *Options) Validate() error {
	var errs []error
	if len(o.Hubs) == 0 {
		errs = append(errs, errors.New("--hub is required"))
	}
	for _, h := range o.Hubs {
		if _, _, err := net.SplitHostPort(h); err != nil {
			errs = append(errs, fmt.Errorf("--hub %q: want host:port", h))
		}
	}
	if o.Namespace == "" {
		errs = append(errs, errors.New("--namespace is required"))
	}
	if o.SyncTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--sync-timeout %s: want a positive duration, e.g. 5m", o.SyncTimeout))
	}
	return errors.Join(errs...)
}

// NewRootCommand returns the `flotilla-agent` command.
func NewRootCommand() *cobra.Command {
	o := NewOptions()
	cmd := &cobra.Command{
		Use:   "flotilla-agent",
		Short: "The Flotilla agent: applies what the hub sends to this cluster and reports back",
		Long: `The Flotilla agent runs in each cluster. It dials the hub (outbound only), receives each
app's desired state, applies it with server-side apply, and reports sync status and health.
On first start it enrols with --join-token; its key and certificate then live in a Secret in
--namespace. Before it enrols it reads --kubeconfig, binds --http-listen and checks that it may
create that Secret, so a start that fails for any of these leaves the token usable; a join
whose reply is lost is retried with the same key, which the hub accepts again for 10 minutes.
The certificate is renewed two thirds into its validity; an agent cut off from every hub for
longer renews when a hub is back, within the hub's --agent-cert-renewal-grace.`,
		Version:       version.String(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.JoinToken == "" {
				o.JoinToken = os.Getenv(EnvJoinToken)
			}
			if err := o.Validate(); err != nil {
				return err
			}
			log, err := logging.New(cmd.ErrOrStderr(), o.Log)
			if err != nil {
				return err
			}
			return run(cmd.Context(), o, log)
		},
	}
	o.AddFlags(cmd.Flags())
	cmd.AddCommand(newHealthCommand())
	return cmd
}

func restConfig(o *Options) (*rest.Config, error) {
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst <= 0 {
		return nil, fmt.Errorf("--kube-api-qps and --kube-api-burst must be positive (got %g and %d)", o.KubeAPIQPS, o.KubeAPIBurst)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = o.KubeAPIQPS, o.KubeAPIBurst
	cfg.UserAgent = "flotilla-agent/" + version.Version
	return cfg, nil
}

// prepared is what the agent reads and binds before it has any effect outside its process.
type prepared struct {
	rest *rest.Config
	// health listens on --http-listen; nil when that is empty.
	health net.Listener
}

// prepare reads every file and binds every listener the agent needs, before it touches its
// cluster or a hub: a second agent on one machine, a taken port or a missing kubeconfig
// fails here, and no join token is spent.
func prepare(o *Options) (*prepared, error) {
	cfg, err := restConfig(o)
	if err != nil {
		return nil, err
	}
	p := &prepared{rest: cfg}
	if o.HTTPListen != "" {
		if p.health, err = net.Listen("tcp", o.HTTPListen); err != nil {
			return nil, fmt.Errorf("--http-listen %s: %w (another agent on this machine? give each its own --http-listen)", o.HTTPListen, err)
		}
	}
	return p, nil
}

// defaultGCPercent is the agent's GOGC unless its environment sets one. An agent's heap is
// small and mostly its watch caches, and an agent runs in every cluster: the memory the
// collector leaves between collections (as much again as the heap at Go's default, 100)
// counts for more than the CPU of collecting twice as often, milliseconds each
// (BENCHMARKS.md: the agent managing 1,000 objects).
const defaultGCPercent = 50

// tuneGC sets the garbage collector's target to defaultGCPercent when GOGC is not set.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

func run(ctx context.Context, o *Options, log *slog.Logger) error {
	tuneGC(os.Getenv)
	p, err := prepare(o)
	if err != nil {
		return err
	}
	if p.health != nil {
		defer p.health.Close() // when run fails before serving it
	}
	cfg := p.rest
	client, err := kube.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := identity.EnsureNamespace(ctx, client, o.Namespace); err != nil {
		return fmt.Errorf("namespace %s: %w", o.Namespace, err)
	}
	ageID, created, err := identity.LoadOrCreateAge(ctx, client, o.Namespace, AgeSecret)
	if err != nil {
		return err
	}
	recipient := ageID.Recipient().String()
	id, err := loadOrJoin(ctx, o, client, recipient, log)
	if err != nil {
		return err
	}
	log = log.With(logging.KeyCluster, id.Cluster)
	log.Info("age recipient for EncryptedSecrets", logging.KeyAgeRecipient, recipient, logging.KeyCreated, created)
	creds := hubclient.NewCredentials(id, identity.NewStore(client, o.Namespace, IdentitySecret), log)
	out := hubclient.NewOutbox() // what the controller reports, until the client sends it
	m := metrics.New(version.Version)
	ctrl, err := syncer.NewController(syncer.Config{
		RESTConfig: cfg, Namespace: o.Namespace, FieldManager: o.FieldManager, Reporter: out, Logger: log,
		AllowSelfManagement: o.AllowSelfManagement, AgeIdentity: ageID, Registerer: m.Registerer(),
		SyncTimeout: o.SyncTimeout,
	})
	if err != nil {
		return err
	}
	// Restore what this agent applied before: it keeps serving it, and prunes nothing, until the
	// hub answers.
	if err := ctrl.Load(ctx); err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	discoverer, err := apply.NewCapabilitiesDiscoverer(cfg)
	if err != nil {
		return err
	}
	hc := hubclient.New(hubclient.Config{Addrs: o.Hubs, TLS: creds.TLSConfig, Logger: log, Controller: ctrl, Outbox: out,
		Capabilities: discoverer.Discover})
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return ctrl.Run(gctx) })
	g.Go(func() error { return hc.Run(gctx) })
	g.Go(func() error { return creds.Rotate(gctx, o.Hubs) })
	if p.health != nil {
		g.Go(func() error { return serveHealth(gctx, p.health, m, o.Profiling) })
	}
	log.Info("agent started", logging.KeyVersion, version.String(), logging.KeyHubs, strings.Join(o.Hubs, ","))
	return g.Wait()
}

// loadOrJoin returns the identity kept in the cluster, or enrols with the join token.
// The agent's namespace exists (run made sure of it).
func loadOrJoin(ctx context.Context, o *Options, client *kube.Client, ageRecipient string, log *slog.Logger) (*identity.Identity, error) {
	st := identity.NewStore(client, o.Namespace, IdentitySecret)
	id, found, err := st.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	if found {
		if o.JoinToken != "" {
			log.Info("identity found in the cluster; --join-token ignored", logging.KeyCluster, id.Cluster)
		}
		return id, nil
	}
	if o.JoinToken == "" {
		return nil, fmt.Errorf("no identity in secret %s/%s: pass --join-token from `flotilla cluster add`", o.Namespace, IdentitySecret)
	}
	if _, err := jointoken.Parse(o.JoinToken); err != nil {
		return nil, fmt.Errorf("--join-token: %w", err)
	}
	// Everything that can be checked is checked before the token is spent.
	if err := st.CheckWritable(ctx); err != nil {
		return nil, fmt.Errorf("%w (checked before joining: the join token was not used)", err)
	}
	id, addr, err := join(ctx, o.Hubs, o.JoinToken, ageRecipient, log)
	if err != nil {
		return nil, err
	}
	// The hub spent the token; the identity exists only in memory until it is saved.
	err = st.SaveRetrying(ctx, id, enrolBackoff, func(err error) {
		log.Warn("identity not saved; retrying", logging.KeyCluster, id.Cluster, logging.Err(err))
	})
	if err != nil {
		return nil, fmt.Errorf("joined hub %s as cluster %s but the identity was not saved: %w; "+
			"the join token is used now: create a new one with `flotilla token create --cluster %s` and start the agent with it",
			addr, id.Cluster, err, id.Cluster)
	}
	log.Info("joined hub", logging.KeyAddr, addr, logging.KeyCluster, id.Cluster)
	return id, nil
}

// enrolBackoff paces the retries of a join whose hubs are unreachable or failing, and of the
// identity save after it: about two minutes in all.
var enrolBackoff = wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.5, Steps: 8, Cap: 30 * time.Second}

// join enrols with the first hub that answers, retrying (enrolBackoff) while every hub is
// unreachable or failing, with one key: a hub that spent the token and whose reply was lost
// accepts the same request again. A hub that refuses the token or the request ends it.
func join(ctx context.Context, hubs []string, token, ageRecipient string, log *slog.Logger) (*identity.Identity, string, error) {
	keyPEM, csrPEM, err := agentkey.New()
	if err != nil {
		return nil, "", err
	}
	var (
		id   *identity.Identity
		addr string
		last error
	)
	err = wait.ExponentialBackoffWithContext(ctx, enrolBackoff, func(ctx context.Context) (bool, error) {
		var errs []error
		retry := true
		for _, a := range hubs {
			got, err := hubclient.Join(ctx, a, token, ageRecipient, keyPEM, csrPEM)
			if err == nil {
				id, addr = got, a
				return true, nil
			}
			errs = append(errs, err)
			retry = retry && hubclient.JoinRetryable(err)
		}
		last = errors.Join(errs...)
		if !retry {
			return false, last
		}
		log.Warn("join failed; retrying with the same key", logging.Err(last))
		return false, nil
	})
	switch {
	case id != nil:
		return id, addr, nil
	case last != nil:
		return nil, "", last
	}
	return nil, "", err
}

func serveHealth(ctx context.Context, l net.Listener, m *metrics.Agent, profiling bool) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	if profiling {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /readyz", ok)
	return httpserve.Serve(ctx, httpserve.New(mux, httpserve.Timeouts{}), l)
}
