package charts

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The Helm CLI of the helm.sh/helm/v4 module in go.mod (a `tool` there, so that its packages
// stay in go.mod), built once per test binary into helmDir, the way Helm's Makefile builds its
// releases: the Kubernetes version it assumes follows k8s.io/client-go.
var (
	helmDir   string
	helmOnce  sync.Once
	helmPath  string
	helmError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "flotilla-charts-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	helmDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helmCLI returns the path of the Helm CLI, building it on first use.
func helmCLI(t *testing.T) string {
	t.Helper()
	helmOnce.Do(func() { helmPath, helmError = buildHelm(helmDir) })
	if helmError != nil {
		t.Fatal(helmError)
	}
	return helmPath
}

// buildHelm builds helm.sh/helm/v4/cmd/helm into dir with the version linker flag of Helm's
// Makefile. Helm v4 takes the Kubernetes version it assumes from the k8s.io/client-go in its
// build information (client-go v0.X.Y is Kubernetes 1.X), so no flag is needed for that.
func buildHelm(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-m", "-f", "{{.Version}}", "helm.sh/helm/v4").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m helm.sh/helm/v4: %w", err)
	}
	version := strings.TrimSpace(string(out))
	path := filepath.Join(dir, "helm")
	ldflags := "-X helm.sh/helm/v4/internal/version.version=" + version
	cmd := exec.Command(goBin, "build", "-ldflags", ldflags, "-o", path, "helm.sh/helm/v4/cmd/helm")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build helm.sh/helm/v4/cmd/helm: %w\n%s", err, out)
	}
	return path, nil
}

// runHelm runs the Helm CLI with args, with its own empty configuration and no cluster, and
// returns its standard output and error.
func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmCLI(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
		"HELM_KUBECONTEXT=", "HELM_NAMESPACE=",
	)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// chartDir is the absolute path of the chart in directory name.
func chartDir(t *testing.T, name string) string {
	t.Helper()
	dir, err := filepath.Abs(name)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// helmLint runs `helm lint` with args and fails on any message: errors, warnings and the
// information ("icon is recommended") chart publishing checks report.
func helmLint(t *testing.T, args ...string) {
	t.Helper()
	stdout, stderr, err := runHelm(t, append([]string{"lint"}, args...)...)
	if err != nil {
		t.Fatalf("helm lint %s: %v\n%s%s", strings.Join(args, " "), err, stdout, stderr)
	}
	for _, sev := range []string{"[ERROR]", "[WARNING]", "[INFO]"} {
		if strings.Contains(stdout, sev) {
			t.Errorf("helm lint %s reports %s:\n%s", strings.Join(args, " "), sev, stdout)
		}
	}
	if !strings.Contains(stdout, "1 chart(s) linted, 0 chart(s) failed") {
		t.Errorf("helm lint %s:\n%s", strings.Join(args, " "), stdout)
	}
}

// helmTemplate runs `helm template release chart -n flotilla-system` with args and decodes
// the manifests it prints.
func helmTemplate(t *testing.T, release, chart string, args ...string) []*unstructured.Unstructured {
	t.Helper()
	args = append([]string{"template", release, chartDir(t, chart), "--namespace", DefaultNamespace}, args...)
	stdout, stderr, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	objs, err := decodeManifests(stdout)
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return objs
}

// decodeManifests decodes the YAML stream `helm template` prints.
func decodeManifests(stream string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for i, doc := range strings.Split(stream, "\n---\n") {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		objs = append(objs, u)
	}
	if len(objs) == 0 {
		return nil, errors.New("no manifests")
	}
	return objs, nil
}

// TestHelmCLILintDefaults: `helm lint` and `helm lint --strict` pass on both charts with their
// default values and report nothing, as chart publishing pipelines require.
func TestHelmCLILintDefaults(t *testing.T) {
	for _, name := range []string{AgentChart, HubChart} {
		t.Run(name, func(t *testing.T) {
			helmLint(t, chartDir(t, name))
			helmLint(t, "--strict", chartDir(t, name))
		})
	}
}

// TestHelmCLITemplateDefaults: with its defaults the hub chart renders, and the agent chart
// stops with a message naming the value to set.
func TestHelmCLITemplateDefaults(t *testing.T) {
	objs := helmTemplate(t, HubReleaseName, HubChart)
	checkCommon(t, objs, DefaultNamespace)
	checkHubPod(t, statefulSet(t, objs))

	_, stderr, err := runHelm(t, "template", AgentReleaseName, chartDir(t, AgentChart), "--namespace", DefaultNamespace)
	if err == nil {
		t.Fatal("helm template rendered the agent chart without a hub address")
	}
	for _, want := range []string{"hub.address is required", "set hub.address=HOST:PORT", "hub.addresses"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("helm template agent: %q lacks %q", stderr, want)
		}
	}
	// The same values with a hub address render.
	objs = helmTemplate(t, AgentReleaseName, AgentChart, "--set", "hub.address=hub.example.com:443")
	checkCommon(t, objs, DefaultNamespace)
	checkAgentPod(t, deployment(t, objs, "flotilla-agent"))
}

// TestHelmCLIRejectsBadValues: the real CLI applies the schema too (wrong types, bad values).
func TestHelmCLIRejectsBadValues(t *testing.T) {
	tests := []struct {
		chart string
		set   string
		want  string
	}{
		{AgentChart, "hub.address=hub.example.com", "/hub/address"},
		{AgentChart, "hub.address=hub.example.com:443,replicas=2", "/replicas"},
		{AgentChart, "hub.address=hub.example.com:443,kubeAPI.burst=many", "/kubeAPI/burst"},
		{HubChart, "replicas=three", "/replicas"},
		{HubChart, "gossip.key=short", "/gossip/key"},
	}
	for _, tt := range tests {
		t.Run(tt.chart+" "+tt.set, func(t *testing.T) {
			for _, cmd := range []string{"lint", "template"} {
				// helm lint prints its findings on standard output, helm template on standard error.
				stdout, stderr, err := runHelm(t, cmd, chartDir(t, tt.chart), "--set", tt.set)
				if err == nil {
					t.Errorf("helm %s --set %s: accepted", cmd, tt.set)
				}
				if !strings.Contains(stdout+stderr, tt.want) {
					t.Errorf("helm %s --set %s: output does not name %s:\n%s%s", cmd, tt.set, tt.want, stdout, stderr)
				}
			}
		})
	}
}

// ciChecks check what each chart-testing values file (CHART/ci/*-values.yaml) is there for.
var ciChecks = map[string]func(t *testing.T, objs []*unstructured.Unstructured){
	"agent/ci/single-hub-values.yaml": func(t *testing.T, objs []*unstructured.Unstructured) {
		c := deployment(t, objs, "flotilla-agent").Spec.Template.Spec.Containers[0]
		if got := flagValues(c.Args, "hub"); !reflect.DeepEqual(got, []string{"hub.example.com:443"}) {
			t.Errorf("--hub = %q", got)
		}
		if !has(objs, "Secret", "flotilla-agent-join-token") || !has(objs, "ClusterRole", "flotilla-agent-apps") {
			t.Errorf("want the join token Secret and the cluster-wide apps ClusterRole: %s", describe(objs))
		}
	},
	"agent/ci/hub-replicas-values.yaml": func(t *testing.T, objs []*unstructured.Unstructured) {
		c := deployment(t, objs, "flotilla-agent").Spec.Template.Spec.Containers[0]
		want := []string{"hub-0.example.com:443", "hub-1.example.com:443", "hub-2.example.com:443"}
		if got := flagValues(c.Args, "hub"); !reflect.DeepEqual(got, want) {
			t.Errorf("--hub = %q, want %q", got, want)
		}
		ref := envByName(c)["FLOTILLA_JOIN_TOKEN"].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "cluster-c1-token" || ref.SecretKeyRef.Key != "token" {
			t.Errorf("FLOTILLA_JOIN_TOKEN from %+v, want cluster-c1-token/token", ref)
		}
		if len(ofKind(objs, "Secret")) != 0 {
			t.Error("a Secret rendered with joinTokenSecret")
		}
	},
	"agent/ci/namespaced-rbac-values.yaml": func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, ns := range []string{"team-a", "team-b"} {
			findIn(t, objs, "Role", ns, "flotilla-agent-apps")
			findIn(t, objs, "RoleBinding", ns, "flotilla-agent-apps")
		}
		if has(objs, "ClusterRole", "flotilla-agent-apps") {
			t.Error("scope namespaces renders the cluster-wide apps ClusterRole")
		}
		if c := deployment(t, objs, "flotilla-agent").Spec.Template.Spec.Containers[0]; len(c.Env) != 0 {
			t.Errorf("env %+v without a join token", c.Env)
		}
	},
	"agent/ci/full-control-values.yaml": func(t *testing.T, objs []*unstructured.Unstructured) {
		find(t, objs, "ClusterRole", "flotilla-agent-full-control")
		if n := len(ofKind(objs, "ClusterRole")); n != 1 {
			t.Errorf("%d ClusterRoles, want only the full-control one", n)
		}
	},
	"agent/ci/no-rbac-values.yaml": func(t *testing.T, objs []*unstructured.Unstructured) {
		for _, k := range []string{"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"} {
			if n := len(ofKind(objs, k)); n != 0 {
				t.Errorf("%d %s rendered with rbac.create=false", n, k)
			}
		}
		spec := deployment(t, objs, "flotilla-agent").Spec.Template.Spec
		if spec.ServiceAccountName != "flotilla-agent-managed" {
			t.Errorf("serviceAccountName %q", spec.ServiceAccountName)
		}
		if got := flagValues(spec.Containers[0].Args, "hub"); !reflect.DeepEqual(got, []string{"[2001:db8::1]:7443"}) {
			t.Errorf("--hub = %q", got)
		}
	},
	"hub/ci/single-values.yaml": func(t *testing.T, objs []*unstructured.Unstructured) {
		s := statefulSet(t, objs)
		if *s.Spec.Replicas != 1 || len(flagValues(s.Spec.Template.Spec.Containers[0].Args, "peers")) != 0 {
			t.Errorf("replicas %d args %q, want one replica running alone", *s.Spec.Replicas, s.Spec.Template.Spec.Containers[0].Args)
		}
		cm := find(t, objs, "ConfigMap", "flotilla-hub-apps")
		if data, _, _ := unstructured.NestedStringMap(cm.Object, "data"); !strings.Contains(data["guestbook.yaml"], "name: guestbook") {
			t.Errorf("apps ConfigMap data %v", data)
		}
		find(t, objs, "Ingress", "flotilla-hub")
	},
	"hub/ci/replicas-values.yaml": func(t *testing.T, objs []*unstructured.Unstructured) {
		s := statefulSet(t, objs)
		args := s.Spec.Template.Spec.Containers[0].Args
		if *s.Spec.Replicas != 3 || len(strings.Split(strings.Join(flagValues(args, "peers"), ""), ",")) != 3 {
			t.Errorf("replicas %d --peers %q, want 3 peers", *s.Spec.Replicas, flagValues(args, "peers"))
		}
		for flag, want := range map[string]string{
			"advertise-address": "$(POD_NAME).hub.example.com:443", "ca-dir": "/etc/flotilla/ca",
			"gossip-key-file": "/etc/flotilla/gossip/key", "apps-repo": "https://git.example.com/fleet.git",
		} {
			if got := flagValues(args, flag); !reflect.DeepEqual(got, []string{want}) {
				t.Errorf("--%s = %q, want %s", flag, got, want)
			}
		}
		if n := len(ofKind(objs, "Secret")); n != 0 {
			t.Errorf("%d Secrets rendered, want none: every secret is given", n)
		}
		if typ, _, _ := unstructured.NestedString(find(t, objs, "Service", "flotilla-hub").Object, "spec", "type"); typ != "LoadBalancer" {
			t.Errorf("gRPC Service type %q", typ)
		}
	},
	"hub/ci/replicas-gossip-key-values.yaml": func(t *testing.T, objs []*unstructured.Unstructured) {
		s := statefulSet(t, objs)
		if *s.Spec.Replicas != 2 || len(s.Spec.VolumeClaimTemplates) != 0 {
			t.Errorf("replicas %d, %d volumeClaimTemplates; want 2 and none", *s.Spec.Replicas, len(s.Spec.VolumeClaimTemplates))
		}
		key, _, _ := unstructured.NestedString(find(t, objs, "Secret", "flotilla-hub-gossip").Object, "data", "key")
		if key == "" {
			t.Error("no gossip key Secret")
		}
	},
}

// TestHelmCLICIValues lints (--strict) and renders every CHART/ci/*-values.yaml with the Helm
// CLI, checks the objects, and checks that the in-process renderer (Render) gives the same.
func TestHelmCLICIValues(t *testing.T) {
	var files []string
	for _, name := range []string{AgentChart, HubChart} {
		found, err := filepath.Glob(filepath.Join(name, "ci", "*-values.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if len(found) == 0 {
			t.Errorf("chart %s has no ci/*-values.yaml", name)
		}
		files = append(files, found...)
	}
	for f := range ciChecks {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("ciChecks names %s: %v", f, err)
		}
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			check, ok := ciChecks[filepath.ToSlash(f)]
			if !ok {
				t.Fatalf("%s has no entry in ciChecks", f)
			}
			name := strings.Split(filepath.ToSlash(f), "/")[0]
			release := map[string]string{AgentChart: AgentReleaseName, HubChart: HubReleaseName}[name]
			values, err := filepath.Abs(f)
			if err != nil {
				t.Fatal(err)
			}
			helmLint(t, "--strict", chartDir(t, name), "--values", values)
			objs := helmTemplate(t, release, name, "--values", values)
			checkCommon(t, objs, DefaultNamespace)
			if name == AgentChart {
				checkAgentPod(t, deployment(t, objs, "flotilla-agent"))
			} else {
				checkHubPod(t, statefulSet(t, objs))
			}
			check(t, objs)

			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			sdk, err := Render(name, Release{Name: release, Namespace: DefaultNamespace}, fromYAML(t, string(data)))
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if !reflect.DeepEqual(byID(objs), byID(sdk)) {
				t.Errorf("helm template and Render differ:\nhelm:%s\nRender:%s", describe(objs), describe(sdk))
			}
		})
	}
}

// byID indexes objects by kind, namespace and name.
func byID(objs []*unstructured.Unstructured) map[string]map[string]any {
	out := make(map[string]map[string]any, len(objs))
	for _, o := range objs {
		out[o.GetKind()+" "+o.GetNamespace()+"/"+o.GetName()] = o.Object
	}
	return out
}
