package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/bundle"
)

// Limits of the delivery path the large app must cross (hub/internal/server and
// agent/internal/hubclient, which e2e cannot import).
const (
	grpcMaxMessage = 4 << 20 // MaxMessageSize: one gRPC message
	bundleChunk    = 1 << 20 // ChunkSize: one chunk of a compressed bundle
	secretMax      = 1 << 20 // the API server's limit on a Secret's data
	agentNamespace = "flotilla-system"
)

// largeApp is the Git content of an app of count ConfigMaps each holding size bytes of random
// base64 under data.payload, the sha256 of each payload by ConfigMap name, and the objects as
// the hub renders them.
func largeApp(t *testing.T, dir string, count, size int) (files map[string]string, sums map[string]string, objs []*unstructured.Unstructured) {
	t.Helper()
	rng := rand.NewChaCha8([32]byte{'l', 'a', 'r', 'g', 'e'})
	files, sums = map[string]string{}, map[string]string{}
	for i := range count {
		raw := make([]byte, size*3/4)
		_, _ = rng.Read(raw)
		payload := base64.StdEncoding.EncodeToString(raw)
		name := fmt.Sprintf("blob-%02d", i)
		files[fmt.Sprintf("%s/%s.yaml", dir, name)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  payload: %s\n", name, payload)
		sum := sha256.Sum256([]byte(payload))
		sums[name] = hex.EncodeToString(sum[:])
		objs = append(objs, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name},
			"data": map[string]any{"payload": payload},
		}})
	}
	return files, sums, objs
}

// flotillaApp is a flotilla.dev Application sending path to every cluster of the demo fleet.
func flotillaApp(name, repoURL, path, namespace string) string {
	return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata:
  name: %s
spec:
  source:
    repoURL: %s
    targetRevision: main
    path: %s
  destination:
    clusterSelector:
      matchExpressions:
      - {key: env, operator: In, values: [staging, production]}
    namespace: %s
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`, name, repoURL, path, namespace)
}

// TestLargeAppDeliveredInChunks: an app of about 7 MiB (8 ConfigMaps of 850 KiB of random
// base64) goes from Git to both clusters. Its compressed bundle is larger than one gRPC
// message, so it can only arrive in chunks; the agent keeps its state, larger than a Secret,
// in several Secrets.
func TestLargeAppDeliveredInChunks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	files, sums, objs := largeApp(t, "large", 8, 850<<10)
	b, err := bundle.New(objs)
	if err != nil {
		t.Fatal(err)
	}
	compressed := len(bundle.Compress(b.Data))
	if compressed <= grpcMaxMessage {
		t.Fatalf("compressed bundle is %d bytes: not more than one gRPC message (%d), so not a test of chunking", compressed, grpcMaxMessage)
	}
	t.Logf("bundle: %.1f MiB, %.1f MiB compressed: %d chunks of %d bytes", mib(len(b.Data)), mib(compressed),
		(compressed+bundleChunk-1)/bundleChunk, bundleChunk)

	rev, err := e.repo.Commit("large app", files)
	if err != nil {
		t.Fatal(err)
	}
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{
		"large.yaml": flotillaApp("large", e.git.URL(e.repo.Dir), "large", "large"),
	}); err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	// A bound for a loaded machine: the race-built hub's first round for megabytes of YAML has
	// taken over 3 minutes beside the other e2e tests.
	if _, err := e.fleet.WaitStatus(e.ctx, 8*time.Minute, appliedEverywhere("large", rev)); err != nil {
		t.Fatal(err)
	}
	t.Logf("large app applied on both clusters %s after its Application was written", time.Since(added).Round(time.Millisecond))

	for _, c := range e.clusters {
		client, err := c.Client()
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range sums {
			cm, err := client.CoreV1().ConfigMaps("large").Get(e.ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatalf("cluster %s: %v", c.Name, err)
			}
			got := sha256.Sum256([]byte(cm.Data["payload"]))
			if hex.EncodeToString(got[:]) != want {
				t.Errorf("cluster %s: ConfigMap %s payload sha256 %x, want %s", c.Name, name, got, want)
			}
		}
		// The agent's state for the app holds the bundle: more than one Secret can.
		list, err := client.CoreV1().Secrets(agentNamespace).List(e.ctx, metav1.ListOptions{LabelSelector: "flotilla.dev/app-state=large"})
		if err != nil {
			t.Fatal(err)
		}
		var stored int
		for _, s := range list.Items {
			n := 0
			for _, v := range s.Data {
				n += len(v)
			}
			if n >= secretMax {
				t.Errorf("cluster %s: state Secret %s holds %d bytes", c.Name, s.Name, n)
			}
			stored += n
		}
		if len(list.Items) < 2 {
			t.Errorf("cluster %s: the large app's state is in %d Secrets, want several", c.Name, len(list.Items))
		}
		t.Logf("cluster %s: agent state for the app: %.1f MiB in %d Secrets", c.Name, mib(stored), len(list.Items))
	}
	if _, err := e.fleet.WaitStatus(e.ctx, time.Minute, func(items []localfleet.StatusItem) bool {
		for _, it := range items {
			if it.App == "large" && it.Health != "Healthy" {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
}

func mib(n int) float64 { return float64(n) / (1 << 20) }

// argoApp is an Argo CD Application as Argo CD users write it, with extra spec fields.
func argoApp(name, repoURL, namespace, extra string) string {
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: %s
  namespace: argocd
spec:
  project: default
  source:
    repoURL: %s
    targetRevision: main
    path: guestbook
  destination:
    name: staging
    namespace: %s
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
    - CreateNamespace=true
    retry:
      limit: 5
      backoff:
        duration: 5s
        factor: 2
        maxDuration: 3m
%s`, name, repoURL, namespace, extra)
}

var guestbookFiles = map[string]string{
	"guestbook/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: guestbook-ui
  labels: {app: guestbook-ui}
spec:
  replicas: 1
  progressDeadlineSeconds: 60
  selector:
    matchLabels: {app: guestbook-ui}
  template:
    metadata:
      labels: {app: guestbook-ui}
    spec:
      containers:
      - name: guestbook-ui
        image: registry.example/guestbook-ui:0.2
        ports:
        - containerPort: 80
`,
	"guestbook/service.yaml": `apiVersion: v1
kind: Service
metadata:
  name: guestbook-ui
spec:
  selector: {app: guestbook-ui}
  ports:
  - port: 80
    targetPort: 80
`,
}

type argoAppItem struct {
	Name      string   `json:"name"`
	Revision  string   `json:"revision"`
	Clusters  []string `json:"clusters"`
	RepoState string   `json:"repoState"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
}

// TestArgoCDApplication: an Argo CD Application manifest works unmodified (destination.name
// is one cluster, CreateNamespace, automated prune and self-heal, retry backoff); one with
// ignoreDifferences and a field Flotilla does not support is applied too, and `flotilla apps`
// names only the unsupported field.
func TestArgoCDApplication(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	rev, err := e.repo.Commit("guestbook", guestbookFiles)
	if err != nil {
		t.Fatal(err)
	}
	repoURL := e.git.URL(e.repo.Dir)
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{
		"guestbook.yaml": argoApp("guestbook", repoURL, "guestbook", ""),
		"guestbook-ignored.yaml": argoApp("guestbook-ignored", repoURL, "guestbook-ignored", `  ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers: [/spec/replicas]
  revisionHistoryLimit: 5
`),
	}); err != nil {
		t.Fatal(err)
	}
	onStagingOnly := func(items []localfleet.StatusItem) bool {
		for _, app := range []string{"guestbook", "guestbook-ignored"} {
			n := 0
			for _, it := range items {
				if it.App != app {
					continue
				}
				if it.Cluster != "staging" || it.AppliedRevision != rev || it.Sync != "Synced" || it.Health != "Healthy" {
					return false
				}
				n++
			}
			if n != 1 {
				return false
			}
		}
		return true
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 3*time.Minute, onStagingOnly); err != nil {
		t.Fatal(err)
	}

	out, err := e.fleet.CLI(e.ctx, "apps", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Items []argoAppItem `json:"items"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("apps -o json: %v\n%s", err, out)
	}
	byName := map[string]argoAppItem{}
	for _, it := range resp.Items {
		byName[it.Name] = it
	}
	for _, name := range []string{"guestbook", "guestbook-ignored"} {
		it, ok := byName[name]
		if !ok {
			t.Fatalf("apps -o json lacks %s:\n%s", name, out)
		}
		if it.Error != "" || it.RepoState != "Current" || it.Revision != rev || !slices.Equal(it.Clusters, []string{"staging"}) {
			t.Errorf("apps: %s = %+v, want no error, Current at %s, clusters [staging]", name, it, rev)
		}
	}
	if w := byName["guestbook"].Warnings; len(w) != 0 {
		t.Errorf("the unmodified Argo CD Application has warnings: %q", w)
	}
	// ignoreDifferences works now: only the field Flotilla does not support is named.
	w := byName["guestbook-ignored"].Warnings
	if !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "spec.revisionHistoryLimit") }) ||
		slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "ignoreDifferences") }) {
		t.Errorf("warnings of the Application with ignoreDifferences and revisionHistoryLimit = %q, want one naming spec.revisionHistoryLimit and none ignoreDifferences", w)
	}

	// The objects are on staging, in namespaces the agent created; production has none.
	staging, err := e.clusters[0].Client()
	if err != nil {
		t.Fatal(err)
	}
	production, err := e.clusters[1].Client()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"guestbook", "guestbook-ignored"} {
		if _, err := staging.AppsV1().Deployments(ns).Get(e.ctx, "guestbook-ui", metav1.GetOptions{}); err != nil {
			t.Errorf("staging: %v", err)
		}
		if _, err := staging.CoreV1().Services(ns).Get(e.ctx, "guestbook-ui", metav1.GetOptions{}); err != nil {
			t.Errorf("staging: %v", err)
		}
		if _, err := production.CoreV1().Namespaces().Get(e.ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("production: namespace %s: %v, want not found", ns, err)
		}
	}

	// Self-heal, as the manifest asks: a deleted Service comes back.
	if err := staging.CoreV1().Services("guestbook").Delete(e.ctx, "guestbook-ui", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, time.Minute, false, func(ctx context.Context) (bool, error) {
		_, err := staging.CoreV1().Services("guestbook").Get(ctx, "guestbook-ui", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Errorf("deleted Service not restored (selfHeal): %v", err)
	}
}
