package charts

import (
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// The flags each binary has today (hub/internal/app/options.go, agent/internal/app/app.go).
// A chart must not pass any other flag by default: the binary would refuse to start.
var (
	hubFlags = []string{"data-dir", "listen", "http-listen", "advertise-address", "tls-san",
		"apps-dir", "apps-repo", "apps-revision", "apps-path", "poll-interval", "removal-grace", "allow-local-repos",
		"heartbeat", "agent-cert-ttl", "agent-cert-renewal-grace", "webhook-secret-file", "repo-credentials", "log-level", "log-format",
		"ignore-differences", "ca-dir", "node-name", "gossip-listen", "peers", "gossip-key-file"}
	agentFlags = []string{"hub", "join-token", "kubeconfig", "namespace", "http-listen",
		"field-manager", "log-level", "log-format", "kube-api-qps", "kube-api-burst", "sync-timeout"}
)

// agentRequired are the values without which the agent chart does not render.
func agentRequired() map[string]any {
	return map[string]any{
		"clusterName": "c1",
		"hub":         map[string]any{"address": "hub.example.com:443"},
		"joinToken":   "x",
	}
}

// with returns base with the dotted-path values of set (helm's --set syntax) merged over it.
func with(t *testing.T, base map[string]any, set string) map[string]any {
	t.Helper()
	vals := base
	if vals == nil {
		vals = map[string]any{}
	}
	if set != "" {
		if err := strvals.ParseInto(set, vals); err != nil {
			t.Fatalf("--set %s: %v", set, err)
		}
	}
	return vals
}

// fromYAML parses a values document.
func fromYAML(t *testing.T, doc string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &vals); err != nil {
		t.Fatalf("values: %v", err)
	}
	return vals
}

func TestLint(t *testing.T) {
	kv, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		chart  string
		values map[string]any
	}{
		{"agent defaults", AgentChart, nil},
		{"agent required values", AgentChart, agentRequired()},
		{"agent namespaced rbac", AgentChart, with(t, agentRequired(), "rbac.scope=namespaces,rbac.namespaces={team-a,team-b}")},
		{"agent full control", AgentChart, with(t, agentRequired(), "rbac.fullControl=true")},
		{"hub defaults", HubChart, nil},
		{"hub replicas and ingress", HubChart, with(t, haValues(), "replicas=3,ingress.enabled=true,apps.repo=https://git.example.com/fleet.git")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := lint.RunAll(tt.chart, tt.values, DefaultNamespace, lint.WithKubeVersion(kv))
			// Chart publishing checks read every message, INFO ("icon is recommended") too.
			for _, m := range l.Messages {
				t.Errorf("lint %s: %s", tt.chart, m)
			}
		})
	}
}

func TestSchemaRejects(t *testing.T) {
	tests := []struct {
		name   string
		chart  string
		values map[string]any
		want   []string // substrings of the error, naming the field
	}{
		{"agent bad hub.address", AgentChart, with(t, nil, "hub.address=hub.example.com"), []string{"/hub/address", "does not match"}},
		{"agent hub.address of another type", AgentChart, with(t, nil, "hub.address=443"), []string{"/hub/address", "string"}},
		{"agent hub.addresses not a list", AgentChart, with(t, nil, "hub.addresses=hub.example.com:443"), []string{"/hub/addresses", "array"}},
		{"agent bad hub.addresses item", AgentChart, with(t, nil, "hub.addresses={a:1,nope}"), []string{"/hub/addresses/1"}},
		{"agent two replicas", AgentChart, with(t, agentRequired(), "replicas=2"), []string{"/replicas", "maximum"}},
		{"agent loud", AgentChart, with(t, agentRequired(), "logLevel=loud"), []string{"/logLevel", "'debug', 'info', 'warn', 'error'"}},
		{"agent kube api qps zero", AgentChart, with(t, agentRequired(), "kubeAPI.qps=0"), []string{"/kubeAPI/qps"}},
		{"agent log format", AgentChart, with(t, agentRequired(), "logFormat=xml"), []string{"/logFormat"}},
		{"agent rbac scope", AgentChart, with(t, agentRequired(), "rbac.scope=namespace"), []string{"/rbac/scope", "'cluster', 'namespaces'"}},
		{"agent scope namespaces without namespaces", AgentChart, with(t, agentRequired(), "rbac.scope=namespaces"), []string{"/rbac/namespaces", "minItems"}},
		{"agent rule without verbs", AgentChart, with(t, agentRequired(), "rbac.extraRules[0].resources={pods}"), []string{"/rbac/extraRules/0", "verbs"}},
		{"agent cluster name", AgentChart, with(t, agentRequired(), "clusterName=Prod_1"), []string{"/clusterName"}},
		{"agent typo", AgentChart, with(t, agentRequired(), "logLevl=debug"), []string{"logLevl", "not allowed"}},
		{"agent extra arg", AgentChart, with(t, agentRequired(), "extraArgs={debug}"), []string{"/extraArgs/0"}},
		{"hub apps repo and manifests", HubChart, fromYAML(t, "apps: {repo: 'https://x/y.git', manifests: {a.yaml: 'kind: Application'}}"), []string{"/apps/manifests"}},
		{"hub manifest file name", HubChart, fromYAML(t, "apps: {manifests: {'a/b.yaml': x}}"), []string{"a/b.yaml"}},
		{"hub ingress without hosts", HubChart, fromYAML(t, "ingress: {enabled: true, hosts: []}"), []string{"/ingress/hosts", "minItems"}},
		{"hub gossip key", HubChart, with(t, nil, "gossip.key=short"), []string{"/gossip/key"}},
		{"hub gossip key of 16 bytes", HubChart, with(t, nil, "gossip.key=c2VjcmV0LXNlY3JldC0xNg=="), []string{"/gossip/key"}},
		{"hub ca secret name", HubChart, with(t, nil, "ca.existingSecret=Hub_CA"), []string{"/ca/existingSecret"}},
		{"hub ca typo", HubChart, with(t, nil, "ca.secret=hub-ca"), []string{"secret", "not allowed"}},
		{"hub advertise address with another variable", HubChart, with(t, nil, "advertiseAddress=$(POD_IP):7443"), []string{"/advertiseAddress"}},
		{"hub duration", HubChart, with(t, nil, "pollInterval=3 minutes"), []string{"/pollInterval"}},
		{"hub log level", HubChart, with(t, nil, "logLevel=loud"), []string{"/logLevel"}},
		{"hub service type", HubChart, with(t, nil, "service.type=External"), []string{"/service/type"}},
		{"hub advertise address", HubChart, with(t, nil, "advertiseAddress=hub.example.com"), []string{"/advertiseAddress"}},
		{"hub replicas", HubChart, with(t, nil, "replicas=-1"), []string{"/replicas"}},
		{"hub pvc size", HubChart, with(t, nil, "persistence.size=lots"), []string{"/persistence/size"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(tt.chart, Release{Name: "r", Namespace: DefaultNamespace}, tt.values)
			if err == nil {
				t.Fatal("rendered; want the schema to reject the values")
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") {
				t.Errorf("not a schema error: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestAgentRequiresHub: without a hub address the agent chart does not render, and says which
// value to set. The schema does not require it, so that the chart's defaults lint.
func TestAgentRequiresHub(t *testing.T) {
	for _, vals := range []map[string]any{
		nil,
		with(t, nil, "joinToken=x,clusterName=c1"),
		with(t, nil, "hub.addresses=null"),
		fromYAML(t, "hub: {address: '', addresses: []}"),
	} {
		_, err := RenderAgent(vals)
		if err == nil {
			t.Errorf("values %v rendered without a hub address", vals)
			continue
		}
		for _, want := range []string{"hub.address is required", "set hub.address=HOST:PORT", "hub.addresses"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("values %v: error %q does not mention %q", vals, err, want)
			}
		}
	}
}

// TestChartMetadata checks what chart repositories and Artifact Hub show: icon, home, sources,
// maintainers, and the images the chart runs, which must be the ones values.yaml names.
func TestChartMetadata(t *testing.T) {
	for _, name := range []string{AgentChart, HubChart} {
		t.Run(name, func(t *testing.T) {
			ch, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			md := ch.Metadata
			if err := md.Validate(); err != nil {
				t.Errorf("Chart.yaml: %v", err)
			}
			if !strings.HasPrefix(md.Icon, "https://") || !strings.HasPrefix(md.Home, "https://") || len(md.Sources) == 0 {
				t.Errorf("icon %q home %q sources %q: want https URLs", md.Icon, md.Home, md.Sources)
			}
			// The icon is the file charts/flotilla.svg of the repository.
			if !strings.HasSuffix(md.Icon, "/charts/flotilla.svg") {
				t.Errorf("icon %q is not charts/flotilla.svg", md.Icon)
			} else if _, err := os.Stat("flotilla.svg"); err != nil {
				t.Errorf("icon: %v", err)
			}
			if len(md.Maintainers) == 0 {
				t.Error("no maintainers")
			}
			for _, m := range md.Maintainers {
				if m.Name == "" || (m.URL == "" && m.Email == "") {
					t.Errorf("maintainer %+v: want a name and a URL or email", m)
				}
			}
			var images []struct {
				Name  string `json:"name"`
				Image string `json:"image"`
			}
			if err := yaml.UnmarshalStrict([]byte(md.Annotations["artifacthub.io/images"]), &images); err != nil {
				t.Fatalf("annotation artifacthub.io/images: %v", err)
			}
			image := ch.Values["image"].(map[string]any)
			want := fmt.Sprintf("%s:%s", image["repository"], md.AppVersion)
			if len(images) != 1 || images[0].Image != want || images[0].Name != path.Base(image["repository"].(string)) {
				t.Errorf("artifacthub.io/images %+v, want the one image %s", images, want)
			}
			for k := range md.Annotations {
				if !strings.HasPrefix(k, "artifacthub.io/") {
					t.Errorf("annotation %s: not an Artifact Hub one", k)
				}
			}
			if links := md.Annotations["artifacthub.io/links"]; links != "" {
				var l []struct {
					Name string `json:"name"`
					URL  string `json:"url"`
				}
				if err := yaml.UnmarshalStrict([]byte(links), &l); err != nil || len(l) == 0 || l[0].URL == "" {
					t.Errorf("artifacthub.io/links %q: %v", links, err)
				}
			}
		})
	}
}

// TestNotes renders NOTES.txt, which Render drops, for the common cases.
func TestNotes(t *testing.T) {
	tests := []struct {
		chart  string
		values map[string]any
		want   string
	}{
		{AgentChart, agentRequired(), "hub.example.com:443"},
		{AgentChart, with(t, agentRequired(), "joinToken="), "No join token was given"},
		{HubChart, nil, "cluster add NAME"},
		{HubChart, with(t, haValues(), "replicas=2"), "Its 2 replicas form one hub"},
		{HubChart, with(t, haValues(), "replicas=2"), "hub.address=r-flotilla-hub.flotilla-system.svc:7443"},
	}
	for _, tt := range tests {
		t.Run(tt.chart+" "+tt.want, func(t *testing.T) {
			ch, err := Load(tt.chart)
			if err != nil {
				t.Fatal(err)
			}
			files, err := RenderFiles(ch, Release{Name: "r", Namespace: DefaultNamespace}, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			notes := files[ch.Name()+"/templates/NOTES.txt"]
			if !strings.Contains(notes, tt.want) {
				t.Errorf("NOTES.txt lacks %q:\n%s", tt.want, notes)
			}
		})
	}
}

// TestReadmeDocumentsEveryValue checks that each chart's README.md names every value of its
// values.yaml and of its schema.
func TestReadmeDocumentsEveryValue(t *testing.T) {
	for _, name := range []string{AgentChart, HubChart} {
		t.Run(name, func(t *testing.T) {
			ch, err := Load(name)
			if err != nil {
				t.Fatal(err)
			}
			var readme string
			for _, f := range ch.Files {
				if f.Name == "README.md" {
					readme = string(f.Data)
				}
			}
			if readme == "" {
				t.Fatal("no README.md")
			}
			var schema struct {
				Properties map[string]struct {
					Properties map[string]any `json:"properties"`
				} `json:"properties"`
			}
			if err := yaml.Unmarshal(ch.Schema, &schema); err != nil {
				t.Fatalf("values.schema.json: %v", err)
			}
			paths := leafPaths("", ch.Values)
			for top, p := range schema.Properties {
				if top == "global" {
					continue
				}
				if len(p.Properties) == 0 {
					paths = append(paths, top)
				}
				for sub := range p.Properties {
					paths = append(paths, top+"."+sub)
				}
			}
			slices.Sort(paths)
			for _, p := range slices.Compact(paths) {
				if !strings.Contains(readme, "`"+p+"`") {
					t.Errorf("README.md does not document `%s`", p)
				}
			}
			for _, p := range leafPaths("", ch.Values) {
				top, _, _ := strings.Cut(p, ".")
				if _, ok := schema.Properties[top]; !ok {
					t.Errorf("values.yaml has %s, which the schema does not describe", p)
				}
			}
		})
	}
}

// leafPaths lists the dotted paths of values: maps are walked, anything else (lists, empty
// maps, scalars) is a leaf.
func leafPaths(prefix string, values map[string]any) []string {
	var out []string
	for k, v := range values {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		if m, ok := v.(map[string]any); ok && len(m) > 0 && !freeForm[p] {
			out = append(out, leafPaths(p, m)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

// freeForm are values that are Kubernetes objects or free maps, documented as a whole.
var freeForm = map[string]bool{
	"resources": true, "podSecurityContext": true, "securityContext": true,
}
