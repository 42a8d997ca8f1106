package e2e

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

// testNamespaces are the namespaces a test's fleet creates: the demo apps' and the agent's.
var testNamespaces = []string{"api", "worker", "flotilla-system"}

// cleanupClusters deletes what a test's fleet left in the shared clusters and waits until it is
// gone, so the next test starts from empty clusters.
func cleanupClusters(t *testing.T, cs []*localkube.Cluster) {
	deleteNamespaces(t, cs, testNamespaces)
}

// deleteNamespacesAfter deletes namespaces from the clusters when the test ends. Called before
// newEnv, it runs after the fleet has stopped (cleanups run last-registered first), so no
// agent recreates what it deletes.
func deleteNamespacesAfter(tb testing.TB, cs []*localkube.Cluster, namespaces ...string) {
	tb.Cleanup(func() { deleteNamespaces(tb, cs, namespaces) })
}

// deleteNamespaces deletes the namespaces on every cluster and waits until they are gone.
func deleteNamespaces(tb testing.TB, cs []*localkube.Cluster, names []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, c := range cs {
		client, err := c.Client()
		if err != nil {
			tb.Error(err)
			continue
		}
		for _, ns := range names {
			if err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				tb.Errorf("delete namespace %s on %s: %v", ns, c.Name, err)
			}
		}
		for _, ns := range names {
			err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
				_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			})
			if err != nil {
				tb.Errorf("namespace %s on %s not gone: %v", ns, c.Name, err)
			}
		}
	}
}
