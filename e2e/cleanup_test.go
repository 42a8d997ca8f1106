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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, c := range cs {
		client, err := c.Client()
		if err != nil {
			t.Error(err)
			continue
		}
		for _, ns := range testNamespaces {
			err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete namespace %s on %s: %v", ns, c.Name, err)
			}
		}
		for _, ns := range testNamespaces {
			err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
				_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			})
			if err != nil {
				t.Errorf("namespace %s on %s not gone: %v", ns, c.Name, err)
			}
		}
	}
}
