package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

var shared = localkube.NewShared(localkube.Options{Name: "syncer"})

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

// writeCounter counts requests that can change the cluster: anything but GET (reads, lists,
// watches) and dry-runs.
type writeCounter struct {
	count  atomic.Int64
	writes chan string // every write, for diagnostics
	// configMapGets counts GETs of single ConfigMaps (not lists or watches).
	configMapGets atomic.Int64
}

type countingTransport struct {
	next http.RoundTripper
	w    *writeCounter
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := c.w
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/configmaps/") && !strings.Contains(r.URL.RawQuery, "watch") {
		w.configMapGets.Add(1)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !strings.Contains(r.URL.RawQuery, "dryRun=") {
		w.count.Add(1)
		if w.writes != nil {
			select {
			case w.writes <- r.Method + " " + r.URL.Path:
			default:
			}
		}
	}
	return c.next.RoundTrip(r)
}

// env is one test's view of the shared cluster.
type env struct {
	cfg    *rest.Config // counts writes
	writes *writeCounter
	client kubernetes.Interface // admin, not counted
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := shared.Clusters(t)[0]
	cfg := rest.CopyConfig(c.Config)
	wc := &writeCounter{writes: make(chan string, 100)}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, w: wc} })
	client, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	return &env{cfg: cfg, writes: wc, client: client}
}

func (e *env) applier(t *testing.T) *Applier {
	t.Helper()
	a, err := NewApplier(e.cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// writesDuring returns how many write requests fn made, and what they were.
func (e *env) writesDuring(fn func()) (int64, []string) {
	for len(e.writes.writes) > 0 {
		<-e.writes.writes
	}
	before := e.writes.count.Load()
	fn()
	n := e.writes.count.Load() - before
	var what []string
	for len(e.writes.writes) > 0 {
		what = append(what, <-e.writes.writes)
	}
	return n, what
}

var uniqSeq atomic.Int64

// uniq returns a namespace name for one test run (tests may run again on the same cluster
// with -count).
func uniq(base string) string {
	return fmt.Sprintf("%s-%d", base, uniqSeq.Add(1))
}

// brokenDynamic returns a dynamic client for an address nothing listens on.
func brokenDynamic(t *testing.T, e *env) dynamic.Interface {
	t.Helper()
	cfg := rest.CopyConfig(e.cfg)
	cfg.Host = "https://127.0.0.1:1"
	cfg.Timeout = 2 * time.Second
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

func (e *env) createNamespace(t *testing.T, name string) {
	t.Helper()
	_, err := e.client.CoreV1().Namespaces().Create(testCtx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func (e *env) configMapValue(t *testing.T, ns, name, key string) (string, bool) {
	t.Helper()
	cm, err := e.client.CoreV1().ConfigMaps(ns).Get(testCtx(t), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data[key], true
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// desired builds a Desired the way the hub and hubclient do: YAML documents → canonical
// bundle → decoded objects (numbers as float64). Its spec.policy allows everything (see
// allowAll); policy_test.go sets its own.
func desired(t *testing.T, app, namespace string, policy SyncPolicy, docs ...string) *Desired {
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
	return &Desired{
		App: app, Generation: 1, Revision: "rev-" + b.Digest[7:15], Digest: b.Digest,
		Namespace: namespace, Objects: decoded, Bundle: b.Data, Policy: policy, Access: allowAll,
	}
}

// allowAll is a spec.policy that allows every namespace and every cluster-scoped kind.
var allowAll = AccessPolicy{Namespaces: []string{"*"}, ClusterResources: []schema.GroupKind{{Group: "*", Kind: "*"}}}

func configMap(name, value string, annotations ...string) string {
	s := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n", name)
	if len(annotations) > 0 {
		s += "  annotations:\n"
		for i := 0; i+1 < len(annotations); i += 2 {
			s += fmt.Sprintf("    %s: %q\n", annotations[i], annotations[i+1])
		}
	}
	return s + fmt.Sprintf("data:\n  value: %q\n", value)
}

func namespace(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", name)
}

// deployment returns a Deployment whose pods become Ready through kwok, or never when failing.
func deployment(name string, replicas int, failing bool) string {
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

// poll waits for cond, failing t after timeout.
func poll(t *testing.T, what string, timeout time.Duration, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(testCtx(t), 100*time.Millisecond, timeout, true, cond)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func refNames(refs []ObjectRef) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

func hasRef(refs []ObjectRef, s string) bool {
	for _, r := range refs {
		if r.String() == s {
			return true
		}
	}
	return false
}
