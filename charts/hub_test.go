package charts

import (
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

func TestHub(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		check  func(t *testing.T, objs []*unstructured.Unstructured)
	}{{
		name: "defaults",
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			s := statefulSet(t, objs)
			if *s.Spec.Replicas != 1 {
				t.Errorf("replicas = %d, want 1", *s.Spec.Replicas)
			}
			c := s.Spec.Template.Spec.Containers[0]
			want := []string{"hub", "--data-dir=/var/lib/flotilla", "--listen=0.0.0.0:7443", "--http-listen=0.0.0.0:7480",
				"--advertise-address=flotilla-hub.flotilla-system.svc:7443",
				"--tls-san=flotilla-hub", "--tls-san=flotilla-hub.flotilla-system", "--tls-san=flotilla-hub.flotilla-system.svc",
				"--tls-san=flotilla-hub.flotilla-system.svc.cluster.local",
				"--apps-dir=/etc/flotilla/apps", "--poll-interval=3m", "--heartbeat=10s", "--agent-cert-ttl=24h", "--agent-cert-renewal-grace=168h", "--removal-grace=10m",
				"--webhook-secret-file=/etc/flotilla/webhook/secret", "--log-level=info", "--log-format=json"}
			if !slices.Equal(c.Args, want) {
				t.Errorf("args =\n%q\nwant\n%q", c.Args, want)
			}
			if c.Image != "ghcr.io/flotilla-dev/flotilla-hub:"+appVersion(t, HubChart) {
				t.Errorf("image = %q, want the chart's appVersion as tag", c.Image)
			}
			checkMount(t, s, "data", "/var/lib/flotilla")
			checkMount(t, s, "apps", "/etc/flotilla/apps")
			checkMount(t, s, "gossip", "/etc/flotilla/gossip")
			checkMount(t, s, "webhook", "/etc/flotilla/webhook")
			if n := len(s.Spec.VolumeClaimTemplates); n != 1 {
				t.Fatalf("%d volumeClaimTemplates, want 1", n)
			}
			pvc := s.Spec.VolumeClaimTemplates[0]
			if pvc.Name != "data" || pvc.Spec.Resources.Requests.Storage().String() != "1Gi" ||
				!slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) || pvc.Spec.StorageClassName != nil {
				t.Errorf("volumeClaimTemplate %+v", pvc)
			}
			if volume(s, "data") != nil {
				t.Error("data is both a volume and a volumeClaimTemplate")
			}

			grpc := typed[corev1.Service](t, find(t, objs, "Service", "flotilla-hub"))
			if grpc.Spec.Type != corev1.ServiceTypeClusterIP || len(grpc.Spec.Ports) != 1 ||
				grpc.Spec.Ports[0].Port != 7443 || grpc.Spec.Ports[0].TargetPort.String() != "grpc" {
				t.Errorf("grpc Service %+v", grpc.Spec)
			}
			httpSvc := typed[corev1.Service](t, find(t, objs, "Service", "flotilla-hub-http"))
			if len(httpSvc.Spec.Ports) != 1 || httpSvc.Spec.Ports[0].Port != 7480 || httpSvc.Spec.Ports[0].Name != "http" {
				t.Errorf("http Service %+v", httpSvc.Spec)
			}
			peers := typed[corev1.Service](t, find(t, objs, "Service", "flotilla-hub-peers"))
			if peers.Spec.ClusterIP != corev1.ClusterIPNone || !peers.Spec.PublishNotReadyAddresses {
				t.Errorf("peers Service is not headless with publishNotReadyAddresses: %+v", peers.Spec)
			}
			if len(peers.Spec.Ports) == 0 || peers.Spec.Ports[0].Name != "gossip" || peers.Spec.Ports[0].Port != 7946 {
				t.Errorf("peers ports %+v, want gossip 7946", peers.Spec.Ports)
			}
			if s.Spec.ServiceName != "flotilla-hub-peers" {
				t.Errorf("serviceName = %q, want the headless peers Service", s.Spec.ServiceName)
			}

			gossip := typed[corev1.Secret](t, find(t, objs, "Secret", "flotilla-hub-gossip"))
			key, err := base64.StdEncoding.DecodeString(string(gossip.Data["key"]))
			if err != nil || len(key) != 32 {
				t.Errorf("generated gossip key %q: %d bytes, %v; want base64 of 32 bytes", gossip.Data["key"], len(key), err)
			}
			webhook := typed[corev1.Secret](t, find(t, objs, "Secret", "flotilla-hub-webhook"))
			if len(webhook.Data["secret"]) < 32 {
				t.Errorf("generated webhook secret has %d bytes", len(webhook.Data["secret"]))
			}
			cm := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "flotilla-hub-apps"))
			if len(cm.Data) != 0 {
				t.Errorf("apps ConfigMap %v, want empty", cm.Data)
			}
			pdb := typed[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", "flotilla-hub"))
			if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil {
				t.Errorf("PDB %+v", pdb.Spec)
			}
			if has(objs, "Ingress", "flotilla-hub") {
				t.Error("Ingress rendered by default")
			}
			for _, flag := range []string{"gossip-listen", "peers", "node-name", "gossip-key-file", "ca-dir"} {
				if got := flagValues(c.Args, flag); len(got) != 0 {
					t.Errorf("--%s = %q by default: one replica runs alone, with its CA in its data volume", flag, got)
				}
			}
			if volume(s, "ca") != nil {
				t.Error("ca volume mounted without ca.existingSecret")
			}
			sa := typed[corev1.ServiceAccount](t, find(t, objs, "ServiceAccount", "flotilla-hub"))
			if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				t.Error("the hub's ServiceAccount mounts a token; the hub does not use the Kubernetes API")
			}
		},
	}, {
		name: "default ignoreDifferences",
		values: fromYAML(t, `
ignoreDifferences:
- {group: admissionregistration.k8s.io, kind: MutatingWebhookConfiguration, jqPathExpressions: ['.webhooks[]?.clientConfig.caBundle']}
- {group: apps, kind: Deployment, jsonPointers: [/spec/replicas], managedFieldsManagers: [kube-controller-manager]}
`),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			s := statefulSet(t, objs)
			c := s.Spec.Template.Spec.Containers[0]
			if got := flagValues(c.Args, "ignore-differences"); !slices.Equal(got, []string{"/etc/flotilla/ignore/ignore-differences.yaml"}) {
				t.Errorf("--ignore-differences = %q", got)
			}
			checkMount(t, s, "ignore", "/etc/flotilla/ignore")
			cm := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "flotilla-hub-ignore-differences"))
			var rules []map[string]any
			if err := yaml.Unmarshal([]byte(cm.Data["ignore-differences.yaml"]), &rules); err != nil || len(rules) != 2 ||
				rules[1]["kind"] != "Deployment" || fmt.Sprint(rules[0]["jqPathExpressions"]) != "[.webhooks[]?.clientConfig.caBundle]" {
				t.Errorf("ignore-differences.yaml = %q (%v), want the two rules", cm.Data["ignore-differences.yaml"], err)
			}
			if s.Spec.Template.Annotations["checksum/ignore-differences"] == "" {
				t.Error("no checksum of the rules on the pod: changing them would not restart the hub, which reads them at start")
			}
		},
	}, {
		name: "three replicas with ingress",
		values: fromYAML(t, `
replicas: 3
gossip: {existingSecret: hub-gossip}
ca: {existingSecret: hub-ca}
ingress:
  enabled: true
  className: nginx
  annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 1m}
  hosts:
    - host: flotilla.example.com
      paths: [{path: /, pathType: Prefix}]
  tls: [{hosts: [flotilla.example.com], secretName: flotilla-tls}]
advertiseAddress: $(POD_NAME).hub.example.com:443
tlsSANs: [hub.example.com, 203.0.113.7]
service: {type: LoadBalancer, loadBalancerSourceRanges: [10.0.0.0/8]}
podDisruptionBudget: {minAvailable: 2}
`),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			s := statefulSet(t, objs)
			if *s.Spec.Replicas != 3 || s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
				t.Errorf("replicas %d policy %q", *s.Spec.Replicas, s.Spec.PodManagementPolicy)
			}
			args := s.Spec.Template.Spec.Containers[0].Args
			if got := flagValues(args, "advertise-address"); !slices.Equal(got, []string{"$(POD_NAME).hub.example.com:443"}) {
				t.Errorf("--advertise-address = %q", got)
			}
			sans := flagValues(args, "tls-san")
			for _, want := range []string{"hub.example.com", "203.0.113.7", "flotilla-hub.flotilla-system.svc"} {
				if !slices.Contains(sans, want) {
					t.Errorf("--tls-san %q lacks %s", sans, want)
				}
			}
			ing := typed[networkingv1.Ingress](t, find(t, objs, "Ingress", "flotilla-hub"))
			if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
				t.Errorf("ingressClassName %v", ing.Spec.IngressClassName)
			}
			if len(ing.Spec.Rules) != 1 || ing.Spec.Rules[0].Host != "flotilla.example.com" {
				t.Fatalf("rules %+v", ing.Spec.Rules)
			}
			b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service
			if b.Name != "flotilla-hub-http" || b.Port.Name != "http" {
				t.Errorf("backend %+v, want flotilla-hub-http:http", b)
			}
			if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "flotilla-tls" {
				t.Errorf("tls %+v", ing.Spec.TLS)
			}
			svc := typed[corev1.Service](t, find(t, objs, "Service", "flotilla-hub"))
			if svc.Spec.Type != corev1.ServiceTypeLoadBalancer || !slices.Equal(svc.Spec.LoadBalancerSourceRanges, []string{"10.0.0.0/8"}) {
				t.Errorf("Service %+v", svc.Spec)
			}
			pdb := typed[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", "flotilla-hub"))
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Spec.MaxUnavailable != nil {
				t.Errorf("PDB %+v, want minAvailable 2 only", pdb.Spec)
			}
		},
	}, {
		name:   "replicas form one hub",
		values: with(t, haValues(), "replicas=3"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			s := statefulSet(t, objs)
			args := s.Spec.Template.Spec.Containers[0].Args
			peers := "flotilla-hub-peers.flotilla-system.svc"
			for flag, want := range map[string]string{
				"node-name":         "$(POD_NAME)",
				"gossip-listen":     "0.0.0.0:7946",
				"gossip-key-file":   "/etc/flotilla/gossip/key",
				"ca-dir":            "/etc/flotilla/ca",
				"advertise-address": "$(POD_NAME)." + peers + ":7443",
				"peers":             "flotilla-hub-0." + peers + ":7946,flotilla-hub-1." + peers + ":7946,flotilla-hub-2." + peers + ":7946",
			} {
				if got := flagValues(args, flag); !slices.Equal(got, []string{want}) {
					t.Errorf("--%s = %q, want %q", flag, got, want)
				}
			}
			// Each replica's certificate covers its own name, where agents are redirected.
			sans := flagValues(args, "tls-san")
			for _, want := range []string{"flotilla-hub.flotilla-system.svc", "$(POD_NAME)." + peers, "$(POD_NAME)." + peers + ".cluster.local"} {
				if !slices.Contains(sans, want) {
					t.Errorf("--tls-san %q lacks %s", sans, want)
				}
			}
			// The gossip key file and the CA directory are the mounted Secrets.
			checkMount(t, s, "gossip", "/etc/flotilla/gossip")
			checkMount(t, s, "ca", "/etc/flotilla/ca")
			if v := volume(s, "gossip"); v == nil || v.Secret == nil || v.Secret.SecretName != "hub-gossip" || v.Secret.Items[0].Path != "key" {
				t.Errorf("gossip volume %+v, want Secret hub-gossip as key", v)
			}
			v := volume(s, "ca")
			if v == nil || v.Secret == nil || v.Secret.SecretName != "hub-ca" {
				t.Fatalf("ca volume %+v, want Secret hub-ca", v)
			}
			var files []string
			for _, it := range v.Secret.Items {
				files = append(files, it.Key+"="+it.Path)
			}
			if !slices.Equal(files, []string{"ca.crt=ca.crt", "ca.key=ca.key"}) {
				t.Errorf("ca files %q, want ca.crt and ca.key", files)
			}
			if n := len(ofKind(objs, "Secret")); n != 1 {
				t.Errorf("%d Secrets rendered, want only the webhook's (the gossip key and CA are given)", n)
			}
			// The pods' names resolve through the headless Service, which carries gRPC too.
			headless := typed[corev1.Service](t, find(t, objs, "Service", "flotilla-hub-peers"))
			var ports []string
			for _, p := range headless.Spec.Ports {
				ports = append(ports, fmt.Sprintf("%s/%d/%s", p.Name, p.Port, p.Protocol))
			}
			if want := []string{"gossip/7946/TCP", "gossip-udp/7946/UDP", "grpc/7443/TCP"}; !slices.Equal(ports, want) {
				t.Errorf("peers Service ports %q, want %q", ports, want)
			}
			if s.Spec.ServiceName != headless.Name || s.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
				t.Errorf("serviceName %q, policy %q", s.Spec.ServiceName, s.Spec.PodManagementPolicy)
			}
		},
	}, {
		name:   "one replica with a given CA",
		values: with(t, nil, "ca.existingSecret=hub-ca"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			s := statefulSet(t, objs)
			args := s.Spec.Template.Spec.Containers[0].Args
			if got := flagValues(args, "ca-dir"); !slices.Equal(got, []string{"/etc/flotilla/ca"}) {
				t.Errorf("--ca-dir = %q", got)
			}
			for _, flag := range []string{"gossip-listen", "peers", "node-name", "gossip-key-file"} {
				if got := flagValues(args, flag); len(got) != 0 {
					t.Errorf("--%s = %q with one replica, which runs alone", flag, got)
				}
			}
			checkMount(t, s, "ca", "/etc/flotilla/ca")
		},
	}, {
		name:   "apps from git",
		values: with(t, nil, "apps.repo=https://git.example.com/org/fleet.git,apps.revision=main,apps.path=apps"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			s := statefulSet(t, objs)
			args := s.Spec.Template.Spec.Containers[0].Args
			for flag, want := range map[string]string{
				"apps-repo": "https://git.example.com/org/fleet.git", "apps-revision": "main", "apps-path": "apps",
			} {
				if got := flagValues(args, flag); !slices.Equal(got, []string{want}) {
					t.Errorf("--%s = %q, want %q", flag, got, want)
				}
			}
			if len(flagValues(args, "apps-dir")) != 0 {
				t.Errorf("--apps-dir passed with apps.repo: %q", args)
			}
			if has(objs, "ConfigMap", "flotilla-hub-apps") || volume(s, "apps") != nil {
				t.Error("apps ConfigMap rendered or mounted with apps.repo")
			}
		},
	}, {
		name: "apps from values",
		values: fromYAML(t, `
apps:
  manifests:
    guestbook.yaml:
      apiVersion: flotilla.dev/v1alpha1
      kind: Application
      metadata: {name: guestbook}
      spec:
        source: {repoURL: "https://git.example.com/org/apps.git", path: guestbook}
        destination: {namespace: guestbook, clusters: [c1]}
    api.yaml: |
      apiVersion: flotilla.dev/v1alpha1
      kind: Application
      metadata:
        name: api
`),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			s := statefulSet(t, objs)
			if got := flagValues(s.Spec.Template.Spec.Containers[0].Args, "apps-dir"); !slices.Equal(got, []string{"/etc/flotilla/apps"}) {
				t.Errorf("--apps-dir = %q", got)
			}
			cm := typed[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "flotilla-hub-apps"))
			if got := slices.Sorted(maps.Keys(cm.Data)); !slices.Equal(got, []string{"api.yaml", "guestbook.yaml"}) {
				t.Fatalf("ConfigMap files %q", got)
			}
			for file, name := range map[string]string{"guestbook.yaml": "guestbook", "api.yaml": "api"} {
				var app map[string]any
				if err := yaml.Unmarshal([]byte(cm.Data[file]), &app); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				md, _ := app["metadata"].(map[string]any)
				if app["kind"] != "Application" || md["name"] != name {
					t.Errorf("%s = %v", file, app)
				}
			}
			v := volume(s, "apps")
			if v == nil || v.ConfigMap == nil || v.ConfigMap.Name != "flotilla-hub-apps" {
				t.Errorf("apps volume %+v", v)
			}
		},
	}, {
		name:   "existing secrets",
		values: with(t, nil, "gossip.existingSecret=hub-gossip,gossip.existingSecretKey=gossip.key,webhook.existingSecret=hub-webhook"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			if n := len(ofKind(objs, "Secret")); n != 0 {
				t.Errorf("%d Secrets rendered with existing secrets", n)
			}
			s := statefulSet(t, objs)
			for name, want := range map[string][2]string{
				"gossip": {"hub-gossip", "gossip.key"}, "webhook": {"hub-webhook", "secret"},
			} {
				v := volume(s, name)
				if v == nil || v.Secret == nil || v.Secret.SecretName != want[0] || len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != want[1] {
					t.Errorf("%s volume %+v, want secret %s key %s", name, v, want[0], want[1])
				}
			}
		},
	}, {
		name:   "given secrets",
		values: with(t, nil, "gossip.key=c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYiE=,webhook.secret=hook"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			g := typed[corev1.Secret](t, find(t, objs, "Secret", "flotilla-hub-gossip"))
			if got := string(g.Data["key"]); got != "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYiE=" {
				t.Errorf("gossip key %q", got)
			}
			w := typed[corev1.Secret](t, find(t, objs, "Secret", "flotilla-hub-webhook"))
			if got := string(w.Data["secret"]); got != "hook" {
				t.Errorf("webhook secret %q", got)
			}
		},
	}, {
		name:   "no persistence, extra args",
		values: with(t, nil, "persistence.enabled=false,podDisruptionBudget.enabled=false,extraArgs={--allow-local-repos},logLevel=debug"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			s := statefulSet(t, objs)
			if len(s.Spec.VolumeClaimTemplates) != 0 {
				t.Error("volumeClaimTemplates with persistence.enabled=false")
			}
			if v := volume(s, "data"); v == nil || v.EmptyDir == nil {
				t.Errorf("data volume %+v, want emptyDir", v)
			}
			args := s.Spec.Template.Spec.Containers[0].Args
			if args[len(args)-1] != "--allow-local-repos" || !slices.Contains(args, "--log-level=debug") {
				t.Errorf("args %q", args)
			}
			if n := len(ofKind(objs, "PodDisruptionBudget")); n != 0 {
				t.Error("PDB rendered when disabled")
			}
		},
	}, {
		name:   "storage class",
		values: with(t, nil, "persistence.storageClassName=fast,persistence.size=10Gi"),
		check: func(t *testing.T, objs []*unstructured.Unstructured) {
			pvc := statefulSet(t, objs).Spec.VolumeClaimTemplates[0]
			if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast" || pvc.Spec.Resources.Requests.Storage().String() != "10Gi" {
				t.Errorf("volumeClaimTemplate %+v", pvc.Spec)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := RenderHub(tt.values)
			if err != nil {
				t.Fatal(err)
			}
			checkCommon(t, objs, DefaultNamespace)
			checkHubPod(t, statefulSet(t, objs))
			tt.check(t, objs)
		})
	}
}

// TestHubRefusesReplicasThatCannotFormOneHub: with several replicas the chart fails, naming
// what is missing, unless the replicas share a given gossip key and CA and each has an
// address of its own.
func TestHubRefusesReplicasThatCannotFormOneHub(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
		want   []string
	}{
		{"no gossip key", with(t, nil, "replicas=3,ca.existingSecret=hub-ca"), []string{"replicas=3", "gossip.existingSecret"}},
		{"no CA", with(t, nil, "replicas=2,gossip.existingSecret=hub-gossip"), []string{"replicas=2", "ca.existingSecret", "ca.crt and ca.key"}},
		{"one address for all", with(t, haValues(), "replicas=3,advertiseAddress=hub.example.com:443"), []string{"advertiseAddress", "$(POD_NAME)"}},
		{"an ignoreDifferences pointer without its slash", fromYAML(t, "ignoreDifferences: [{kind: Deployment, jsonPointers: [spec/replicas]}]"), []string{"ignoreDifferences"}},
		{"an ignoreDifferences rule naming no field", fromYAML(t, "ignoreDifferences: [{kind: Deployment}]"), []string{"ignoreDifferences"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := RenderHub(tt.values)
			if err == nil {
				t.Fatal("rendered; want the chart to refuse the values")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// The same values with one replica render: it runs alone.
	if _, err := RenderHub(with(t, nil, "replicas=1")); err != nil {
		t.Errorf("one replica: %v", err)
	}
	if _, err := RenderHub(with(t, nil, "replicas=3,gossip.key=c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTMyYiE=,ca.existingSecret=hub-ca")); err != nil {
		t.Errorf("three replicas with a given gossip key: %v", err)
	}
}

// checkHubPod checks what every rendering of the hub must have.
func checkHubPod(t *testing.T, s *appsv1.StatefulSet) {
	t.Helper()
	if n := len(s.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%d containers, want 1", n)
	}
	c := s.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "hub" {
		t.Errorf("args %q do not start with the hub subcommand", c.Args)
	}
	checkFlags(t, c.Args[1:], hubFlags)
	if (len(flagValues(c.Args, "apps-dir")) == 1) == (len(flagValues(c.Args, "apps-repo")) == 1) {
		t.Errorf("want exactly one of --apps-dir and --apps-repo: %q", c.Args)
	}
	checkEnvExpansion(t, c)
	checkSecurity(t, s.Spec.Template.Spec)
	checkProbes(t, c, 7480)
	checkMount(t, s, "tmp", "/tmp")
	// --webhook-secret-file names the file the webhook Secret volume provides.
	if v := volume(s, "webhook"); v == nil || v.Secret == nil || len(v.Secret.Items) != 1 {
		t.Errorf("webhook volume %+v, want one Secret item", v)
	} else {
		checkMount(t, s, "webhook", "/etc/flotilla/webhook")
		want := "/etc/flotilla/webhook/" + v.Secret.Items[0].Path
		if got := flagValues(c.Args, "webhook-secret-file"); !slices.Equal(got, []string{want}) {
			t.Errorf("--webhook-secret-file = %q, want %s", got, want)
		}
	}
}

// haValues are the values several replicas need: a gossip key and a CA, from Secrets.
func haValues() map[string]any {
	return map[string]any{
		"gossip": map[string]any{"existingSecret": "hub-gossip"},
		"ca":     map[string]any{"existingSecret": "hub-ca"},
	}
}

func checkMount(t *testing.T, s *appsv1.StatefulSet, volumeName, path string) {
	t.Helper()
	for _, m := range s.Spec.Template.Spec.Containers[0].VolumeMounts {
		if m.Name == volumeName {
			if m.MountPath != path {
				t.Errorf("volume %s mounted at %s, want %s", volumeName, m.MountPath, path)
			}
			return
		}
	}
	t.Errorf("volume %s not mounted", volumeName)
}

func volume(s *appsv1.StatefulSet, name string) *corev1.Volume {
	for i := range s.Spec.Template.Spec.Volumes {
		if v := &s.Spec.Template.Spec.Volumes[i]; v.Name == name {
			return v
		}
	}
	return nil
}

func statefulSet(t *testing.T, objs []*unstructured.Unstructured) *appsv1.StatefulSet {
	t.Helper()
	return typed[appsv1.StatefulSet](t, find(t, objs, "StatefulSet", "flotilla-hub"))
}
