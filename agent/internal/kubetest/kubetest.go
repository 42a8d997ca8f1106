// Package kubetest holds what the agent's package tests share against a real local
// kube-apiserver (e2e/localkube): an environment that counts the requests that can change the
// cluster, manifests built from YAML the way the hub delivers them, and small builders of
// common objects. It is imported by tests only.
package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/agent/internal/kube"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// Writes counts requests that can change the cluster: anything but GET (reads, lists,
// watches) and dry-runs.
type Writes struct {
	Count atomic.Int64
	log   chan string // every write, for diagnostics
	// ConfigMapGets counts GETs of single ConfigMaps (not lists or watches).
	ConfigMapGets atomic.Int64
	// DryRuns counts dry-run requests.
	DryRuns atomic.Int64
}

type countingTransport struct {
	next http.RoundTripper
	w    *Writes
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := c.w
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/configmaps/") && !strings.Contains(r.URL.RawQuery, "watch") {
		w.ConfigMapGets.Add(1)
	}
	if strings.Contains(r.URL.RawQuery, "dryRun=") {
		w.DryRuns.Add(1)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.Contains(r.URL.RawQuery, "dryRun=") {
		w.Count.Add(1)
		select {
		case w.log <- r.Method + " " + r.URL.Path:
		default:
		}
	}
	return c.next.RoundTrip(r)
}

// Env is one test's view of a shared cluster.
type Env struct {
	Config *rest.Config // counts writes
	Writes *Writes
	Client kubernetes.Interface // admin, not counted
	Kube   *kube.Client         // the agent's own client, admin, not counted
}

// NewEnv returns an Env on c.
func NewEnv(t testing.TB, c *localkube.Cluster) *Env {
	t.Helper()
	cfg := rest.CopyConfig(c.Config)
	wc := &Writes{log: make(chan string, 100)}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, w: wc} })
	client, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kube.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{Config: cfg, Writes: wc, Client: client, Kube: kc}
}

// WritesDuring returns how many write requests fn made, and what they were.
func (e *Env) WritesDuring(fn func()) (int64, []string) {
	for len(e.Writes.log) > 0 {
		<-e.Writes.log
	}
	before := e.Writes.Count.Load()
	fn()
	n := e.Writes.Count.Load() - before
	var what []string
	for len(e.Writes.log) > 0 {
		what = append(what, <-e.Writes.log)
	}
	return n, what
}

// BrokenDynamic returns a dynamic client for an address nothing listens on.
func (e *Env) BrokenDynamic(t *testing.T) dynamic.Interface {
	t.Helper()
	cfg := rest.CopyConfig(e.Config)
	cfg.Host = "https://127.0.0.1:1"
	cfg.Timeout = 2 * time.Second
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

// CreateNamespace creates the namespace name unless it exists.
func (e *Env) CreateNamespace(t *testing.T, name string) {
	t.Helper()
	_, err := e.Client.CoreV1().Namespaces().Create(Ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// ConfigMapValue returns the value of key in the ConfigMap ns/name, and whether it exists.
func (e *Env) ConfigMapValue(t *testing.T, ns, name, key string) (string, bool) {
	t.Helper()
	cm, err := e.Client.CoreV1().ConfigMaps(ns).Get(Ctx(t), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data[key], true
}

var uniqSeq atomic.Int64

// Uniq returns a name for one test run (tests may run again on the same cluster with -count).
func Uniq(base string) string {
	return fmt.Sprintf("%s-%d", base, uniqSeq.Add(1))
}

// Ctx is a context for one test, bounded, cancelled when it ends.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Bundle builds objects the way the hub and hubclient do: YAML documents → canonical bundle →
// decoded objects (numbers as float64). It returns the objects, the bundle and its digest.
func Bundle(t testing.TB, docs ...string) ([]*unstructured.Unstructured, []byte, string) {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, doc := range docs {
		for _, part := range strings.Split(doc, "\n---\n") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			js, err := yaml.YAMLToJSON([]byte(part))
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(js, &m); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	b, err := bundle.New(objs)
	if err != nil {
		t.Fatal(err)
	}
	decoded, err := bundle.Decode(b.Data)
	if err != nil {
		t.Fatal(err)
	}
	return decoded, b.Data, b.Digest
}

// ConfigMap is the YAML of a ConfigMap whose data holds value under "value".
func ConfigMap(name, value string, annotations ...string) string {
	s := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n", name)
	if len(annotations) > 0 {
		s += "  annotations:\n"
		for i := 0; i+1 < len(annotations); i += 2 {
			s += fmt.Sprintf("    %s: %q\n", annotations[i], annotations[i+1])
		}
	}
	return s + fmt.Sprintf("data:\n  value: %q\n", value)
}

// ConfigMaps are the YAML of n ConfigMaps cm0, cm1, ... with the value "v1".
func ConfigMaps(n int) []string {
	var docs []string
	for i := range n {
		docs = append(docs, ConfigMap(fmt.Sprintf("cm%d", i), "v1"))
	}
	return docs
}

// Namespace is the YAML of a Namespace.
func Namespace(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", name)
}

// Deployment is the YAML of a Deployment whose pods become Ready through kwok, or never when
// failing.
func Deployment(name string, replicas int, failing bool) string {
	podLabels := "        app: " + name + "\n"
	if failing {
		podLabels += "        " + localkube.FailingPodLabel + ": \"true\"\n"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[2]d
  progressDeadlineSeconds: 10
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
%[3]s    spec:
      containers:
      - name: main
        image: registry.example/%[1]s:v1
`, name, replicas, podLabels)
}

// Job is the YAML of a Job of one pod that completes through kwok, or fails when failing;
// annotations as key, value pairs (hooks: argocd.argoproj.io/hook, ...).
func Job(name string, failing bool, annotations ...string) string {
	s := fmt.Sprintf("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: %s\n", name)
	if len(annotations) > 0 {
		s += "  annotations:\n"
		for i := 0; i+1 < len(annotations); i += 2 {
			s += fmt.Sprintf("    %s: %q\n", annotations[i], annotations[i+1])
		}
	}
	labels := "      labels:\n        hook: " + name + "\n"
	if failing {
		labels += fmt.Sprintf("        %s: \"true\"\n", localkube.ExitingPodLabel)
	}
	return s + fmt.Sprintf(`spec:
  backoffLimit: 0
  template:
    metadata:
%s    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: registry.example/%s:v1
`, labels, name)
}

// Names returns how refs are written for people.
func Names[T fmt.Stringer](refs []T) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

// Has reports whether one of refs is written s.
func Has[T fmt.Stringer](refs []T, s string) bool {
	for _, r := range refs {
		if r.String() == s {
			return true
		}
	}
	return false
}
