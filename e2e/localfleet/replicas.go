package localfleet

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

// ReplicaOptions configure a set of hub replicas.
type ReplicaOptions struct {
	// Dir holds each replica's data dir, the gossip key and the logs.
	Dir     string
	BinDir  string
	AppsDir string
	// Count is the number of replicas.
	Count        int
	PollInterval time.Duration
	Heartbeat    time.Duration
}

// Replica is one hub replica: its own process, data dir and serving certificate, the CA of
// the first replica, and the gossip key of them all.
type Replica struct {
	Name        string // the node name: its gRPC address
	Addr        string // gRPC, for agents and the CLI
	HTTPAddr    string
	GossipAddr  string
	DataDir     string
	AdminConfig string
	Process     *localkube.Process
	keyFile     string
}

// Replicas are hub replicas started as separate processes, and the agents they serve.
type Replicas struct {
	opts    ReplicaOptions
	Hubs    []*Replica
	KeyFile string
	LogDir  string
	Agents  map[string]*localkube.Process
}

// StartReplicas starts opts.Count hub replicas: the first creates the CA, which is copied
// into the others' data dirs before they start; each joins the gossip of those before it.
// It returns once every replica sees all of them.
func StartReplicas(ctx context.Context, opts ReplicaOptions) (*Replicas, error) {
	if opts.PollInterval == 0 {
		opts.PollInterval = 2 * time.Second
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = time.Second
	}
	r := &Replicas{opts: opts, LogDir: filepath.Join(opts.Dir, "logs"), KeyFile: filepath.Join(opts.Dir, "gossip.key"),
		Agents: map[string]*localkube.Process{}}
	if err := os.MkdirAll(r.LogDir, 0o700); err != nil {
		return nil, err
	}
	if err := WriteGossipKey(r.KeyFile); err != nil {
		return nil, err
	}
	ports, err := localkube.FreePorts(3 * opts.Count)
	if err != nil {
		return nil, err
	}
	for i := range opts.Count {
		h := &Replica{
			Addr:       "127.0.0.1:" + strconv.Itoa(ports[3*i]),
			HTTPAddr:   "127.0.0.1:" + strconv.Itoa(ports[3*i+1]),
			GossipAddr: "127.0.0.1:" + strconv.Itoa(ports[3*i+2]),
			DataDir:    filepath.Join(opts.Dir, fmt.Sprintf("hub-%d", i)),
			keyFile:    r.KeyFile,
		}
		h.Name, h.AdminConfig = h.Addr, filepath.Join(h.DataDir, "admin.yaml")
		r.Hubs = append(r.Hubs, h)
	}
	for i, h := range r.Hubs {
		if i > 0 {
			if err := shareCA(r.Hubs[0].DataDir, h.DataDir); err != nil {
				r.Stop()
				return nil, err
			}
		}
		if err := r.Start(ctx, i); err != nil {
			r.Stop()
			return nil, err
		}
	}
	if err := r.WaitMembers(ctx, time.Minute, r.Hubs, len(r.Hubs)); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

// WriteGossipKey writes a new random gossip key, base64, to path.
func WriteGossipKey(path string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

// shareCA copies the CA of the first replica into dir, as an operator would (or mount one
// Secret in every replica).
func shareCA(from, to string) error {
	if err := os.MkdirAll(to, 0o700); err != nil {
		return err
	}
	for _, f := range []string{"ca.crt", "ca.key"} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			return fmt.Errorf("share the ca: %w", err)
		}
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			return fmt.Errorf("share the ca: %w", err)
		}
	}
	return nil
}

// Start starts (or restarts) replica i, with the same name, ports and data dir, and waits
// until the CLI reaches it. Every replica is given all the others as --peers: the first one
// waits for them, a restarted one rejoins through any.
func (r *Replicas) Start(ctx context.Context, i int) error {
	h := r.Hubs[i]
	args := []string{"hub", "--data-dir", h.DataDir, "--listen", h.Addr, "--http-listen", h.HTTPAddr,
		"--apps-dir", r.opts.AppsDir, "--poll-interval", r.opts.PollInterval.String(),
		"--heartbeat", r.opts.Heartbeat.String(), "--allow-local-repos", "--log-level", "debug",
		"--gossip-listen", h.GossipAddr, "--gossip-key-file", h.keyFile, "--node-name", h.Name}
	var peers []string
	for j, p := range r.Hubs {
		if j != i {
			peers = append(peers, p.GossipAddr)
		}
	}
	args = append(args, "--peers", strings.Join(peers, ","))
	p, err := localkube.StartProcess(fmt.Sprintf("hub-%d", i), filepath.Join(r.opts.BinDir, "flotilla"), args, nil, r.LogDir)
	if err != nil {
		return err
	}
	h.Process = p
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if done, err := p.Exited(); done {
			return false, fmt.Errorf("hub-%d exited: %v\n%s", i, err, p.Tail(4096))
		}
		_, _, err := r.CLI(ctx, i, "clusters")
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("hub-%d did not come up: %w", i, err)
	}
	return nil
}

// StartOutsider starts a hub that shares the CA but gossips with keyFile, joining replica 0:
// with another key it must be refused. It returns the process and its HTTP address.
func (r *Replicas) StartOutsider(keyFile string) (*localkube.Process, string, error) {
	ports, err := localkube.FreePorts(3)
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(r.opts.Dir, "outsider")
	if err := shareCA(r.Hubs[0].DataDir, dir); err != nil {
		return nil, "", err
	}
	httpAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	args := []string{"hub", "--data-dir", dir, "--listen", "127.0.0.1:" + strconv.Itoa(ports[0]), "--http-listen", httpAddr,
		"--apps-dir", r.opts.AppsDir, "--allow-local-repos", "--log-level", "debug",
		"--gossip-listen", "127.0.0.1:" + strconv.Itoa(ports[2]), "--gossip-key-file", keyFile,
		"--peers", r.Hubs[0].GossipAddr}
	p, err := localkube.StartProcess("outsider", filepath.Join(r.opts.BinDir, "flotilla"), args, nil, r.LogDir)
	return p, httpAddr, err
}

// Addrs are the replicas' gRPC addresses, starting with replica first (agents get them all).
func (r *Replicas) Addrs(first int) []string {
	var out []string
	for i := range r.Hubs {
		out = append(out, r.Hubs[(first+i)%len(r.Hubs)].Addr)
	}
	return out
}

// CLI runs `flotilla` with replica i's operator config and returns its standard output and
// standard error.
func (r *Replicas) CLI(ctx context.Context, i int, args ...string) (stdout, stderr []byte, err error) {
	return runCLI(ctx, filepath.Join(r.opts.BinDir, "flotilla"), r.Hubs[i].AdminConfig, args...)
}

func runCLI(ctx context.Context, bin, config string, args ...string) ([]byte, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config", config}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, []byte(stderr.String()), fmt.Errorf("flotilla %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, []byte(stderr.String()), nil
}

// Register adds a cluster through replica i and returns its join token.
func (r *Replicas) Register(ctx context.Context, i int, name string, labels map[string]string) (string, error) {
	var parts []string
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	out, _, err := r.CLI(ctx, i, "cluster", "add", name, "--labels", strings.Join(parts, ","))
	return strings.TrimSpace(string(out)), err
}

// StartAgent starts an agent for cluster name on kube, keeping its identity in namespace and
// dialling every replica, replica first.
func (r *Replicas) StartAgent(name string, kube *localkube.Cluster, namespace, token string, first int) error {
	ports, err := localkube.FreePorts(1)
	if err != nil {
		return err
	}
	args := []string{"--hub", strings.Join(r.Addrs(first), ","), "--join-token", token, "--kubeconfig", kube.Kubeconfig,
		"--namespace", namespace, "--http-listen", "127.0.0.1:" + strconv.Itoa(ports[0]), "--log-level", "debug"}
	p, err := localkube.StartProcess("agent-"+name, filepath.Join(r.opts.BinDir, "flotilla-agent"), args, nil, r.LogDir)
	if err != nil {
		return err
	}
	r.Agents[name] = p
	return nil
}

// Status returns `flotilla status -o json` from replica i, and the replicas it warned did
// not answer (none when all did).
func (r *Replicas) Status(ctx context.Context, i int) ([]StatusItem, string, error) {
	out, stderr, err := r.CLI(ctx, i, "status", "-o", "json")
	if err != nil {
		return nil, "", err
	}
	var resp struct {
		Items []StatusItem `json:"items"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, "", fmt.Errorf("status -o json: %w: %s", err, out)
	}
	return resp.Items, warning(stderr), nil
}

// ClusterItem is one row of `flotilla clusters -o json`.
type ClusterItem struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	Connected bool   `json:"connected"`
	Replica   string `json:"replica"`
}

// Clusters returns `flotilla clusters -o json` from replica i, and the unreachable warning.
func (r *Replicas) Clusters(ctx context.Context, i int) ([]ClusterItem, string, error) {
	out, stderr, err := r.CLI(ctx, i, "clusters", "-o", "json")
	if err != nil {
		return nil, "", err
	}
	var resp struct {
		Items []ClusterItem `json:"items"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, "", fmt.Errorf("clusters -o json: %w: %s", err, out)
	}
	return resp.Items, warning(stderr), nil
}

func warning(stderr []byte) string {
	for _, line := range strings.Split(string(stderr), "\n") {
		if strings.HasPrefix(line, "warning: hub replicas did not answer") {
			return line
		}
	}
	return ""
}

// Members returns the flotilla_hub_replicas gauge of the hub serving metrics on httpAddr.
func Members(httpAddr string) (int, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return membersGauge(resp.Body)
}

func membersGauge(body io.Reader) (int, error) {
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "flotilla_hub_replicas "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("no flotilla_hub_replicas gauge")
}

// WaitMembers waits until each hub of hubs sees n replicas.
func (r *Replicas) WaitMembers(ctx context.Context, timeout time.Duration, hubs []*Replica, n int) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		for _, h := range hubs {
			if got, err := Members(h.HTTPAddr); err != nil || got != n {
				return false, nil
			}
		}
		return true, nil
	})
}

// Logs returns the tail of every replica's and agent's log.
func (r *Replicas) Logs() string {
	var procs []*localkube.Process
	for _, h := range r.Hubs {
		procs = append(procs, h.Process)
	}
	for _, a := range r.Agents {
		procs = append(procs, a)
	}
	return tails(procs)
}

// Stop stops the agents and the replicas.
func (r *Replicas) Stop() {
	for _, a := range r.Agents {
		a.Stop(5 * time.Second)
	}
	for _, h := range r.Hubs {
		if h.Process != nil {
			h.Process.Stop(5 * time.Second)
		}
	}
}
