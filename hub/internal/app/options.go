package app

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/gctune"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Options are the flags of `flotilla hub`. Defaults live here and nowhere else.
type Options struct {
	DataDir         string
	Listen          string
	HTTPListen      string
	Advertise       string
	TLSSANs         []string
	AppsDir         string
	AppsRepo        string
	AppsRevision    string
	AppsPath        string
	PollInterval    time.Duration
	RemovalGrace    time.Duration
	AllowLocalRepos bool
	Heartbeat       time.Duration
	AgentCertTTL    time.Duration
	// AgentCertRenewalGrace is how long after expiry an agent certificate may still renew.
	AgentCertRenewalGrace time.Duration
	WebhookSecret         string
	RepoCredentials       string
	Notifications         string
	// IgnoreDifferences is a YAML file of ignoreDifferences rules every app gets before its own.
	IgnoreDifferences string
	// Retention bounds the history and audit records kept.
	Retention store.Retention
	Log       logging.Options
	// Replicas make the hub one of several (ha.go).
	Replicas ReplicaOptions
	// Charts configure fetching charts from Helm repositories and OCI registries (charts.go).
	Charts ChartOptions
	// UI serves the dashboard on --http-listen behind OpenID Connect (ui.go).
	UI UIOptions
	// Profiling serves Go's runtime profiles on --http-listen (/debug/pprof/).
	Profiling bool
	// GCIdlePercent is the garbage collector's target while the hub is idle (gctune); 0 leaves
	// it to Go (GOGC) throughout.
	GCIdlePercent int
	// MaxHandshakes bounds the TLS handshakes the hub runs at once (server.Config).
	MaxHandshakes int
}

// NewOptions returns the defaults.
func NewOptions() *Options {
	return &Options{
		DataDir:      "flotilla-data",
		Listen:       "127.0.0.1:7443",
		HTTPListen:   "127.0.0.1:7480",
		AppsRevision: "HEAD",
		PollInterval: 3 * time.Minute,
		RemovalGrace: fleet.DefaultRemovalGrace,
		Heartbeat:    10 * time.Second,
		AgentCertTTL: 24 * time.Hour,
		Retention: store.Retention{
			HistoryPerApp: 100, HistoryMaxAge: 90 * 24 * time.Hour,
			AuditMax: 10000, AuditMaxAge: 365 * 24 * time.Hour,
		},
		// An agent cut off from every hub for a third of the TTL (renewal is due two thirds
		// into it) plus 7 days still renews on its own.
		AgentCertRenewalGrace: 7 * 24 * time.Hour,
		Log:                   logging.Options{Level: "info", Format: "text"},
		Charts:                newChartOptions(),
		GCIdlePercent:         gctune.DefaultIdlePercent,
		MaxHandshakes:         server.DefaultMaxHandshakes,
	}
}

// AddFlags binds the options to flags.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "directory for the hub's store, CA, certificates, git cache and chart cache")
	fs.StringVar(&o.Listen, "listen", o.Listen, "gRPC address for agents and the CLI (TLS)")
	fs.StringVar(&o.HTTPListen, "http-listen", o.HTTPListen, "HTTP address for health (/healthz, /readyz), metrics and webhooks")
	fs.StringVar(&o.Advertise, "advertise-address", o.Advertise, "host:port agents and the CLI use to reach the hub (default: --listen, with 127.0.0.1 for an unspecified host); written to DATA_DIR/admin.yaml")
	fs.StringSliceVar(&o.TLSSANs, "tls-san", o.TLSSANs, "extra DNS names or IPs for the hub's serving certificate (localhost and 127.0.0.1 are always included)")
	fs.StringVar(&o.AppsDir, "apps-dir", o.AppsDir, "directory of Application manifests")
	fs.StringVar(&o.AppsRepo, "apps-repo", o.AppsRepo, "Git repository holding Application manifests (app of apps), instead of --apps-dir; without credentials in the URL (see --repo-credentials)")
	fs.StringVar(&o.AppsRevision, "apps-revision", o.AppsRevision, "branch, tag or commit of --apps-repo")
	fs.StringVar(&o.AppsPath, "apps-path", o.AppsPath, "directory inside --apps-repo holding the manifests")
	fs.DurationVar(&o.PollInterval, "poll-interval", o.PollInterval, "how often repositories are fetched (±20% jitter)")
	fs.DurationVar(&o.RemovalGrace, "removal-grace", o.RemovalGrace, "how long an app that no longer targets a cluster shows as Removing there before its agent deletes its objects; an Application that comes back within it cancels the deletion")
	fs.BoolVar(&o.AllowLocalRepos, "allow-local-repos", o.AllowLocalRepos, "allow file paths and file:// URLs as repoURL (development only)")
	fs.DurationVar(&o.Heartbeat, "heartbeat", o.Heartbeat, "heartbeat interval on agent streams; a cluster silent for three intervals is Stale")
	fs.DurationVar(&o.AgentCertTTL, "agent-cert-ttl", o.AgentCertTTL, "validity of the client certificates issued to agents (renewed two thirds into it; at least 1s)")
	fs.DurationVar(&o.AgentCertRenewalGrace, "agent-cert-renewal-grace", o.AgentCertRenewalGrace, "how long after its certificate expired an agent cut off from the hubs may still renew it (renewal only, never after revocation; 0 disables); later it needs a new join token")
	fs.StringVar(&o.WebhookSecret, "webhook-secret-file", o.WebhookSecret, "file holding the shared secret that signs Git push webhooks on POST /api/webhook (GitHub, GitLab, Gitea, Bitbucket); without it the endpoint is off")
	fs.StringVar(&o.RepoCredentials, "repo-credentials", o.RepoCredentials, "YAML file of credentials by URL prefix for Git repositories, Helm repositories and OCI registries (basic auth or bearer token from files, SSH keys with a pinned known_hosts)")
	fs.StringVar(&o.Notifications, "notifications", o.Notifications, "YAML file of notification sinks (generic webhook or Slack; each URL read from a file) and the events each takes")
	fs.StringVar(&o.IgnoreDifferences, "ignore-differences", o.IgnoreDifferences, "YAML file of default ignoreDifferences rules (a list in the syntax of an Application's spec.ignoreDifferences: group, kind, name, namespace, jsonPointers, jqPathExpressions, managedFieldsManagers) that every app gets before its own: fields that are never drift")
	fs.IntVar(&o.Retention.HistoryPerApp, "history-keep", o.Retention.HistoryPerApp, "history entries kept per app and cluster, the newest (0: no limit)")
	fs.DurationVar(&o.Retention.HistoryMaxAge, "history-max-age", o.Retention.HistoryMaxAge, "history entries older than this are deleted (0: no limit)")
	fs.IntVar(&o.Retention.AuditMax, "audit-keep", o.Retention.AuditMax, "audit records kept, the newest (0: no limit)")
	fs.DurationVar(&o.Retention.AuditMaxAge, "audit-max-age", o.Retention.AuditMaxAge, "audit records older than this are deleted (0: no limit)")
	fs.BoolVar(&o.Profiling, "profiling", o.Profiling, "serve Go's runtime profiles (heap, goroutines, CPU) on --http-listen under /debug/pprof/, to see where the hub's memory and time go (the heap sampled every 16 KiB allocated, finer than Go's default); they reveal internals, so keep --http-listen on a private address")
	fs.IntVar(&o.GCIdlePercent, "gc-idle-percent", o.GCIdlePercent, "the garbage collector's target (as GOGC) while the hub is idle (for 30s at most 10 agent streams opened and desired-state messages sent a second) and its live heap is 64 MiB or more (about 2,000 agents): less memory per agent, for collections an idle hub has the CPU for; while busy (reconnects, a restart, a delivery to every cluster), Go's default or GOGC. 0: GOGC throughout; GOGC set in the environment also turns this off")
	fs.IntVar(&o.MaxHandshakes, "max-handshakes", o.MaxHandshakes, "TLS handshakes of agents the hub runs at once; more wait, without taking CPU, so that a reconnect storm of thousands of agents leaves the hub responsive. Operators' CLI and dashboard and hub replicas skip the queue. Each handshake holds a slot for one round trip to its agent: raise it for agents far away (the hub then welcomes at most this many agents per round trip)")
	fs.StringVar(&o.Log.Level, "log-level", o.Log.Level, "debug, info, warn or error")
	fs.StringVar(&o.Log.Format, "log-format", o.Log.Format, "text or json")
	o.Replicas.AddFlags(fs)
	o.Charts.AddFlags(fs)
	o.UI.AddFlags(fs)
}

// Validate checks the options and fills derived defaults.
func (o *Options) Validate() error {
	var errs []error
	if o.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	}
	if o.GCIdlePercent < 0 {
		errs = append(errs, fmt.Errorf("--gc-idle-percent %d: want 0 (off) or a percentage", o.GCIdlePercent))
	}
	if o.MaxHandshakes < 1 {
		errs = append(errs, fmt.Errorf("--max-handshakes %d: want at least 1", o.MaxHandshakes))
	}
	if (o.AppsDir == "") == (o.AppsRepo == "") {
		errs = append(errs, errors.New("exactly one of --apps-dir and --apps-repo is required"))
	}
	if o.AppsRepo != "" {
		if err := apps.CheckRepoURL(o.AppsRepo); err != nil {
			errs = append(errs, fmt.Errorf("--apps-repo %w", err))
		}
	}
	if o.AppsDir != "" {
		if st, err := os.Stat(o.AppsDir); err != nil || !st.IsDir() {
			errs = append(errs, fmt.Errorf("--apps-dir %q: not a directory", o.AppsDir))
		}
	}
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", o.Listen, err))
	}
	if o.HTTPListen != "" {
		if _, _, err := net.SplitHostPort(o.HTTPListen); err != nil {
			errs = append(errs, fmt.Errorf("--http-listen %q: %w", o.HTTPListen, err))
		}
	}
	if o.PollInterval < time.Second {
		errs = append(errs, fmt.Errorf("--poll-interval %s: at least 1s", o.PollInterval))
	}
	if o.RemovalGrace < 0 {
		errs = append(errs, fmt.Errorf("--removal-grace %s: must not be negative", o.RemovalGrace))
	}
	if o.Heartbeat < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("--heartbeat %s: at least 100ms", o.Heartbeat))
	}
	if r := o.Retention; r.HistoryPerApp < 0 || r.HistoryMaxAge < 0 || r.AuditMax < 0 || r.AuditMaxAge < 0 {
		errs = append(errs, errors.New("--history-keep, --history-max-age, --audit-keep and --audit-max-age: negative (0 sets no limit)"))
	}
	if o.AgentCertTTL < time.Second {
		errs = append(errs, fmt.Errorf("--agent-cert-ttl %s: at least 1s", o.AgentCertTTL))
	}
	if o.AgentCertRenewalGrace < 0 {
		errs = append(errs, fmt.Errorf("--agent-cert-renewal-grace %s: not negative", o.AgentCertRenewalGrace))
	}
	if o.Notifications != "" {
		if _, err := os.Stat(o.Notifications); err != nil {
			errs = append(errs, fmt.Errorf("--notifications: %w", err))
		}
	}
	if o.Advertise == "" {
		host, port, _ := net.SplitHostPort(o.Listen)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		o.Advertise = net.JoinHostPort(host, port)
	}
	errs = append(errs, o.Replicas.validate(o.DataDir, o.Advertise), o.Charts.validate(), o.UI.validate(o.HTTPListen))
	return errors.Join(errs...)
}
