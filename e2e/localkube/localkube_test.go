package localkube_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

var shared = localkube.NewShared(localkube.Options{Name: "alpha"}, localkube.Options{Name: "beta"})

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

func deployment(name string, replicas int32, podLabels map[string]string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	for k, v := range podLabels {
		labels[k] = v
	}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas:                ptr.To(replicas),
			ProgressDeadlineSeconds: ptr.To[int32](10),
			Selector:                &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "registry.example/app:v1"}}},
			},
		},
	}
}

// TestDeploymentsBecomeAvailable starts two clusters in parallel and rolls out a Deployment with
// two replicas on each.
func TestDeploymentsBecomeAvailable(t *testing.T) {
	clusters := shared.Clusters(t)
	if len(clusters) != 2 {
		t.Fatalf("want 2 clusters, got %d", len(clusters))
	}
	for _, c := range clusters {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			client, err := c.Client()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.AppsV1().Deployments("default").Create(ctx, deployment("web", 2, nil), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				d, err := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				return d.Status.ReadyReplicas == 2 && available(d), nil
			})
			if err != nil {
				t.Fatalf("deployment web on %s not Available with 2 ready replicas: %v", c.Name, err)
			}
		})
	}
}

// TestFailingPodsKeepDeploymentUnavailable marks a Deployment's pods as failing and sees the
// rollout miss its progress deadline with no pod Ready.
func TestFailingPodsKeepDeploymentUnavailable(t *testing.T) {
	c := shared.Clusters(t)[0]
	client, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := deployment("broken", 2, map[string]string{localkube.FailingPodLabel: "true"})
	if _, err := client.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The deployment controller reports ProgressDeadlineExceeded once the 10s deadline passes.
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments("default").Get(ctx, "broken", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if available(d) || d.Status.ReadyReplicas > 0 {
			return false, fmt.Errorf("deployment with failing pods became ready: %+v", d.Status)
		}
		for _, cond := range d.Status.Conditions {
			if cond.Type == appsv1.DeploymentProgressing && cond.Reason == "ProgressDeadlineExceeded" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	assertPodsCrashLooping(ctx, t, client, "app=broken", 2)
}

func assertPodsCrashLooping(ctx context.Context, t *testing.T, client kubernetes.Interface, selector string, want int) {
	t.Helper()
	pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) < want {
		t.Fatalf("want at least %d pods, got %d", want, len(pods.Items))
	}
	for _, p := range pods.Items {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
				t.Errorf("pod %s is Ready", p.Name)
			}
		}
		if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil ||
			p.Status.ContainerStatuses[0].State.Waiting.Reason != "CrashLoopBackOff" {
			t.Errorf("pod %s: want container waiting in CrashLoopBackOff, got %+v", p.Name, p.Status.ContainerStatuses)
		}
	}
}

// TestKubeconfigWorksWithKubectl checks the kubeconfig on disk is usable by a person.
func TestKubeconfigWorksWithKubectl(t *testing.T) {
	c := shared.Clusters(t)[1]
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is needed by this test and the README's instructions: %v", err)
	}
	out, err := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "get", "nodes", "-o", "name").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get nodes: %v\n%s", err, out)
	}
	if want := "node/" + c.Name + "-node-0\n"; string(out) != want {
		t.Fatalf("kubectl get nodes = %q, want %q", out, want)
	}
}

func available(d *appsv1.Deployment) bool {
	for _, cond := range d.Status.Conditions {
		if cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// BenchmarkStartCluster reports the time to start one and three clusters and the RSS of a
// control plane.
func BenchmarkStartCluster(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				opts := make([]localkube.Options, n)
				for j := range opts {
					opts[j] = localkube.Options{Name: fmt.Sprintf("bench%d", j)}
				}
				start := time.Now()
				clusters, err := localkube.StartAll(context.Background(), opts...)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/start")
				rss, err := clusters[0].RSS()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(rss)/(1<<20), "MiB-rss/cluster")
				for _, c := range clusters {
					c.Stop()
				}
			}
		})
	}
}
