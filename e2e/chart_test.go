package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/flotilla-dev/flotilla/charts"
	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

// TestAgentFromChartWithItsOwnRBAC installs the rendered agent chart's ServiceAccount, RBAC and
// Secret in a cluster, runs the agent with that ServiceAccount's token (not admin credentials)
// and the chart's arguments and environment, and sees the demo apps sync — the chart's RBAC is
// enough — while an app needing a kind outside that RBAC fails with a clear, reported error.
func TestAgentFromChartWithItsOwnRBAC(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{skipAgents: true})
	staging := e.clusters[0]
	const ns = "flotilla-system"
	client, err := staging.Client()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	objs, err := charts.Render(charts.AgentChart, charts.Release{Name: "flotilla-agent", Namespace: ns}, map[string]any{
		"clusterName": "staging",
		"hub":         map[string]any{"address": e.fleet.HubAddr},
		"joinToken":   e.fleet.Token("staging"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var deploy *unstructured.Unstructured
	var install []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			deploy = o
			continue
		}
		install = append(install, o)
	}
	if deploy == nil {
		t.Fatal("the chart rendered no Deployment")
	}
	applyObjects(t, e.ctx, staging, install)

	// The agent process gets exactly the chart's arguments and environment; only the kubeconfig
	// (the ServiceAccount's token instead of in-cluster config) and the health port differ.
	args, env := containerArgsEnv(t, e.ctx, staging, deploy)
	sa := deploy.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["serviceAccountName"].(string)
	tok, err := client.CoreV1().ServiceAccounts(ns).CreateToken(e.ctx, sa, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(e.dir, "agent-sa.kubeconfig")
	writeTokenKubeconfig(t, kubeconfig, staging, tok.Status.Token)
	for i, a := range args {
		if strings.HasPrefix(a, "--http-listen=") {
			args[i] = "--http-listen=127.0.0.1:0"
		}
	}
	args = append(args, "--kubeconfig="+kubeconfig)
	agent, err := localkube.StartProcess("agent-from-chart", filepath.Join(binDir, "flotilla-agent"), args, env, filepath.Join(e.dir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(agent.Tail(16384))
		}
		agent.Stop(5 * time.Second)
	})

	// An app needing a kind the chart's RBAC does not grant: a cluster-scoped PriorityClass.
	if _, err := e.repo.Commit("a PriorityClass", map[string]string{"extras/priority/priorityclass.yaml": `apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: batch-low
value: 1000
`}); err != nil {
		t.Fatal(err)
	}
	rev, _ := e.repo.Head()
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{"priority.yaml": fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata:
  name: priority
spec:
  source: {repoURL: %s, targetRevision: main, path: extras/priority}
  destination: {clusters: [staging]}
  syncPolicy: {automated: {}}
  policy: {clusterResources: [{group: scheduling.k8s.io, kind: PriorityClass}]}
`, e.git.URL(e.repo.Dir))}); err != nil {
		t.Fatal(err)
	}
	_, err = e.fleet.WaitStatus(e.ctx, 3*time.Minute, func(items []localfleet.StatusItem) bool {
		ok := 0
		for _, it := range items {
			if it.Cluster != "staging" {
				continue
			}
			switch it.App {
			case "api", "worker":
				if it.Sync == "Synced" && it.Health == "Healthy" && it.AppliedRevision == rev {
					ok++
				}
			case "priority":
				if strings.Contains(it.Message, "PriorityClass") && strings.Contains(it.Message, "batch-low") &&
					strings.Contains(strings.ToLower(it.Message), "forbidden") {
					ok++
				}
			}
		}
		return ok == 3
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.SchedulingV1().PriorityClasses().Get(e.ctx, "batch-low", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the forbidden PriorityClass exists (err %v)", err)
	}
	assertAPI(t, e.ctx, staging, 1, "registry.example/api:1.0.0")
}

// applyObjects creates the objects with server-side apply, as `helm install` would.
func applyObjects(t *testing.T, ctx context.Context, c *localkube.Cluster, objs []*unstructured.Unstructured) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	client, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		data, err := runtime.Encode(unstructured.UnstructuredJSONScheme, o)
		if err != nil {
			t.Fatal(err)
		}
		ri := dyn.Resource(m.Resource)
		var target dynamic.ResourceInterface = ri
		if m.Scope.Name() == "namespace" {
			target = ri.Namespace(o.GetNamespace())
		}
		if _, err := target.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "helm", Force: ptr.To(true)}); err != nil {
			t.Fatalf("apply %s %s: %v", gvk.Kind, o.GetName(), err)
		}
	}
}

// containerArgsEnv returns the agent container's args and its environment resolved from the
// Secrets it references.
func containerArgsEnv(t *testing.T, ctx context.Context, c *localkube.Cluster, deploy *unstructured.Unstructured) ([]string, []string) {
	t.Helper()
	client, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	ctr := containers[0].(map[string]any)
	var args, env []string
	for _, a := range ctr["args"].([]any) {
		args = append(args, a.(string))
	}
	envs, _ := ctr["env"].([]any)
	for _, e := range envs {
		ev := e.(map[string]any)
		name := ev["name"].(string)
		if v, ok := ev["value"].(string); ok {
			env = append(env, name+"="+v)
			continue
		}
		ref, _, _ := unstructured.NestedStringMap(ev, "valueFrom", "secretKeyRef")
		sec, err := client.CoreV1().Secrets(deploy.GetNamespace()).Get(ctx, ref["name"], metav1.GetOptions{})
		if err != nil {
			t.Fatalf("env %s: %v", name, err)
		}
		env = append(env, name+"="+string(sec.Data[ref["key"]]))
	}
	return args, env
}

func writeTokenKubeconfig(t *testing.T, path string, c *localkube.Cluster, token string) {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: c.Config.Host, CertificateAuthorityData: c.Config.CAData}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "sa"}
	kc.CurrentContext = "c"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
}
