// Package localkube starts real, throwaway Kubernetes control planes on loopback: etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok with fake nodes, so that
// workloads roll out and pods become Ready without a kubelet or a container runtime.
//
// The binaries come from `make k8s-bins` (see BinDir). Each cluster lives in its own temp
// directory with its own certificates, ports and logs, and writes a kubeconfig there so a person
// can `kubectl --kubeconfig` into it.
package localkube

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubernetesVersion is the version of the control-plane binaries the harness runs.
const KubernetesVersion = "v1.37.2"

// FailingPodLabel marks pods that never become Ready: put it (any value) on a pod template and
// the workload's pods stay Running with Ready=False and containers in CrashLoopBackOff.
const FailingPodLabel = "flotilla.dev/e2e-fail"

// ExitingPodLabel marks pods that fail: put it (any value) on a pod template and its pods end
// in phase Failed, their containers exited with code 1; a Job of them fails.
const ExitingPodLabel = "flotilla.dev/e2e-exit"

//go:embed stages/stages.yaml
var stagesYAML []byte

// Options configure one cluster.
type Options struct {
	// Name names the cluster; it is the kubeconfig context and part of its directory name.
	Name string
	// Nodes is the number of fake nodes (default 1).
	Nodes int
	// BinDir holds the control-plane binaries (default BinDir()).
	BinDir string
	// BaseDir is where the cluster's directory is made (default os.TempDir()).
	BaseDir string
	// AuditLog, when set, makes the API server write an audit log of every write request
	// (metadata level) to Cluster.AuditLogPath.
	AuditLog bool
}

// Cluster is one running control plane.
type Cluster struct {
	Name string
	// Dir holds certificates, data, logs and the kubeconfig; it is removed by Stop.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig for this cluster.
	Kubeconfig string
	// Config is an admin rest.Config for this cluster.
	Config *rest.Config
	// AuditLogPath is the API server's audit log when Options.AuditLog is set.
	AuditLogPath string
	// StartupTime is how long Start took until the cluster could run pods.
	StartupTime time.Duration

	procs []*Process
}

// BinDir returns where `make k8s-bins` puts the binaries: $FLOTILLA_K8S_BIN_DIR, else
// $XDG_CACHE_HOME/flotilla/k8s/<version>, else ~/.cache/flotilla/k8s/<version>.
func BinDir() string {
	if d := os.Getenv("FLOTILLA_K8S_BIN_DIR"); d != "" {
		return d
	}
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "flotilla", "k8s", KubernetesVersion)
}

var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// CheckBinaries returns an error naming every missing control-plane binary.
func CheckBinaries(dir string) error {
	var missing []string
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("control-plane binaries missing in %s: %s (run `make k8s-bins`)", dir, strings.Join(missing, ", "))
	}
	return nil
}

// StartAll starts the clusters in parallel. On error, the ones that started are stopped.
func StartAll(ctx context.Context, opts ...Options) ([]*Cluster, error) {
	clusters := make([]*Cluster, len(opts))
	g, gctx := errgroup.WithContext(ctx)
	for i, o := range opts {
		g.Go(func() error {
			c, err := Start(gctx, o)
			clusters[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		for _, c := range clusters {
			if c != nil {
				c.Stop()
			}
		}
		return nil, err
	}
	return clusters, nil
}

// Start starts one cluster and returns once it can run pods. A port taken between choosing
// and binding it is retried with new ports.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var c *Cluster
		c, err = start(ctx, opts)
		if err == nil {
			return c, nil
		}
		if !strings.Contains(err.Error(), "address already in use") || ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

func start(ctx context.Context, opts Options) (c *Cluster, err error) {
	begin := time.Now()
	if opts.Name == "" {
		opts.Name = "local"
	}
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	if opts.BinDir == "" {
		opts.BinDir = BinDir()
	}
	if opts.BaseDir == "" {
		opts.BaseDir = os.TempDir()
	}
	if err := CheckBinaries(opts.BinDir); err != nil {
		return nil, err
	}
	sweepStale(opts.BaseDir)
	dir, err := os.MkdirTemp(opts.BaseDir, "localkube-"+opts.Name+"-")
	if err != nil {
		return nil, err
	}
	c = &Cluster{Name: opts.Name, Dir: dir}
	defer func() {
		if err != nil {
			err = fmt.Errorf("start cluster %s: %w%s", opts.Name, err, c.logTails(2048))
			c.Stop()
			c = nil
		}
	}()
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		return c, err
	}
	logDir := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		return c, err
	}
	p, err := newPKI(dir)
	if err != nil {
		return c, err
	}
	ports, err := FreePorts(3)
	if err != nil {
		return c, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	bin := func(name string) string { return filepath.Join(opts.BinDir, name) }
	file := func(name string) string { return filepath.Join(dir, name) }

	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdClient)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPeer)
	if err := c.run("etcd", bin("etcd"), []string{
		"--name=" + opts.Name,
		"--data-dir=" + file("etcd"),
		"--listen-client-urls=" + etcdURL,
		"--advertise-client-urls=" + etcdURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=" + opts.Name + "=" + peerURL,
		"--unsafe-no-fsync",
		"--quota-backend-bytes=4294967296",
		"--log-level=warn",
	}, nil, logDir); err != nil {
		return c, err
	}
	if err := c.waitHTTP(ctx, "etcd", etcdURL+"/health", 30*time.Second); err != nil {
		return c, err
	}

	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--tls-cert-file=" + file("apiserver.crt"),
		"--tls-private-key-file=" + file("apiserver.key"),
		"--client-ca-file=" + file("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + file("sa.pub"),
		"--service-account-signing-key-file=" + file("sa.key"),
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	}
	if opts.AuditLog {
		c.AuditLogPath = file("audit.log")
		policy := "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n" +
			"- level: Metadata\n  verbs: [create, update, patch, delete, deletecollection]\n"
		if err := os.WriteFile(file("audit-policy.yaml"), []byte(policy), 0o600); err != nil {
			return c, err
		}
		apiArgs = append(apiArgs, "--audit-policy-file="+file("audit-policy.yaml"),
			"--audit-log-path="+c.AuditLogPath, "--audit-log-mode=blocking", "--audit-log-format=json")
	}
	if err := c.run("kube-apiserver", bin("kube-apiserver"), apiArgs, nil, logDir); err != nil {
		return c, err
	}
	c.Config = &rest.Config{
		Host: fmt.Sprintf("https://127.0.0.1:%d", apiPort),
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   p.caPEM,
			CertData: p.adminPEM,
			KeyData:  p.adminKey,
		},
		QPS:   200,
		Burst: 400,
	}
	client, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return c, err
	}
	// A bound, not a speed check: on a loaded 2-core machine (parallel packages each starting
	// control planes) kube-apiserver has taken over 90 s to become ready.
	if err := c.waitReady(ctx, client, 3*time.Minute); err != nil {
		return c, err
	}
	c.Kubeconfig = file("kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, opts.Name, c.Config); err != nil {
		return c, err
	}

	if err := c.run("kube-controller-manager", bin("kube-controller-manager"), []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--service-account-private-key-file=" + file("sa.key"),
		"--root-ca-file=" + file("ca.crt"),
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers=*",
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
		"--v=1",
	}, nil, logDir); err != nil {
		return c, err
	}
	if err := c.run("kube-scheduler", bin("kube-scheduler"), []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--v=1",
	}, nil, logDir); err != nil {
		return c, err
	}
	if err := os.WriteFile(file("kwok-stages.yaml"), stagesYAML, 0o600); err != nil {
		return c, err
	}
	if err := c.run("kwok", bin("kwok"), []string{
		"--kubeconfig=" + c.Kubeconfig,
		"--config=" + file("kwok-stages.yaml"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.0/16",
		"--node-ip=10.240.0.1",
	}, []string{"KWOK_WORKDIR=" + file("kwok")}, logDir); err != nil {
		return c, err
	}
	for i := 0; i < opts.Nodes; i++ {
		if err := createNode(ctx, client, fmt.Sprintf("%s-node-%d", opts.Name, i)); err != nil {
			return c, err
		}
	}
	if err := c.waitSchedulable(ctx, client, opts.Nodes, 90*time.Second); err != nil {
		return c, err
	}
	c.StartupTime = time.Since(begin)
	return c, nil
}

// Client returns an admin clientset for the cluster.
func (c *Cluster) Client() (kubernetes.Interface, error) {
	return kubernetes.NewForConfig(c.Config)
}

// Stop stops every process of the cluster and removes its directory.
func (c *Cluster) Stop() {
	c.StopProcesses()
	_ = os.RemoveAll(c.Dir)
}

// StopProcesses stops the processes and keeps the directory, so the logs can still be read.
func (c *Cluster) StopProcesses() {
	// Reverse order: clients of the API server first, etcd last.
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].Stop(10 * time.Second)
	}
}

// Logs returns the tail of each process log.
func (c *Cluster) Logs() string { return c.logTails(8192) }

func (c *Cluster) logTails(n int64) string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "\n--- %s/%s (%s) ---\n%s", c.Name, p.name, p.LogPath, p.Tail(n))
	}
	return b.String()
}

func (c *Cluster) run(name, bin string, args, env []string, logDir string) error {
	p, err := StartProcess(name, bin, args, env, logDir)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	return nil
}

// checkAlive fails when a process of the cluster has exited.
func (c *Cluster) checkAlive() error {
	for _, p := range c.procs {
		if done, err := p.Exited(); done {
			msg := p.Tail(1024)
			if strings.Contains(msg, "address already in use") {
				return fmt.Errorf("%s: address already in use", p.name)
			}
			return fmt.Errorf("%s: %w (%v)", p.name, errExited, err)
		}
	}
	return nil
}

func (c *Cluster) poll(ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := c.checkAlive(); err != nil {
			return false, err
		}
		return cond(ctx)
	})
	if err != nil {
		return fmt.Errorf("wait for %s: %w", what, err)
	}
	return nil
}

func (c *Cluster) waitHTTP(ctx context.Context, what, url string, timeout time.Duration) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	return c.poll(ctx, what, timeout, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

func (c *Cluster) waitReady(ctx context.Context, client kubernetes.Interface, timeout time.Duration) error {
	return c.poll(ctx, "kube-apiserver /readyz", timeout, func(ctx context.Context) (bool, error) {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	})
}

// waitSchedulable waits until the fake nodes are Ready and the default ServiceAccount exists,
// so that a Deployment created now rolls out at once.
func (c *Cluster) waitSchedulable(ctx context.Context, client kubernetes.Interface, nodes int, timeout time.Duration) error {
	return c.poll(ctx, "fake nodes Ready and default ServiceAccount", timeout, func(ctx context.Context) (bool, error) {
		if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range list.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready >= nodes, nil
	})
}

func createNode(ctx context.Context, client kubernetes.Interface, name string) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"type": "kwok",
			},
		},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
				corev1.ResourcePods: resource.MustParse("500"),
			},
		},
	}
	_, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func writeKubeconfig(path, name string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	kc.CurrentContext = name
	return clientcmd.WriteToFile(*kc, path)
}

// FreePorts asks the kernel for n distinct free loopback ports. A port is handed out once per
// process, so tests running in parallel never choose the same one.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	handedOut.Lock()
	defer handedOut.Unlock()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		port := l.Addr().(*net.TCPAddr).Port
		if handedOut.ports[port] {
			continue // held open until return, so the kernel offers another
		}
		handedOut.ports[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}

// handedOut are the ports FreePorts has returned in this process.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// sweepStale removes cluster directories left by processes that no longer exist (a test binary
// killed before its cleanup ran). Their children died with them (Pdeathsig).
func sweepStale(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "localkube-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// RSS returns the summed resident memory of the cluster's processes, in bytes.
func (c *Cluster) RSS() (int64, error) {
	var total int64
	for _, p := range c.procs {
		n, err := p.RSS()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// namespaces lists the cluster's namespaces by name.
func (c *Cluster) namespaces(ctx context.Context) ([]string, error) {
	client, err := c.Client()
	if err != nil {
		return nil, err
	}
	list, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("cluster %s: list namespaces: %w", c.Name, err)
	}
	names := make([]string, len(list.Items))
	for i, ns := range list.Items {
		names[i] = ns.Name
	}
	return names, nil
}

// deleteNamespacesExcept deletes every namespace not in keep and waits until they are gone.
func (c *Cluster) deleteNamespacesExcept(ctx context.Context, keep []string) error {
	client, err := c.Client()
	if err != nil {
		return err
	}
	names, err := c.namespaces(ctx)
	if err != nil {
		return err
	}
	var gone []string
	for _, ns := range names {
		if slices.Contains(keep, ns) {
			continue
		}
		if err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("cluster %s: delete namespace %s: %w", c.Name, ns, err)
		}
		gone = append(gone, ns)
	}
	for _, ns := range gone {
		err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
		if err != nil {
			return fmt.Errorf("cluster %s: namespace %s not gone: %w", c.Name, ns, err)
		}
	}
	return nil
}
