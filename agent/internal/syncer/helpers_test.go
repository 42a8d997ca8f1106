package syncer

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
)

var shared = localkube.NewShared(localkube.Options{Name: "syncer"})

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

func newEnv(t testing.TB) *kubetest.Env {
	t.Helper()
	return kubetest.NewEnv(t, shared.Clusters(t)[0])
}

// desired builds a Desired the way the hub and hubclient do (kubetest.Bundle). Its
// spec.policy allows everything (see allowAll); policy_test.go sets its own.
func desired(t testing.TB, app, namespace string, policy SyncPolicy, docs ...string) *Desired {
	t.Helper()
	objs, data, digest := kubetest.Bundle(t, docs...)
	return &Desired{
		App: app, Generation: 1, Revision: "rev-" + digest[7:15], Digest: digest,
		Namespace: namespace, Objects: objs, Bundle: data, Policy: policy, Access: allowAll,
	}
}

// allowAll is a spec.policy that allows every namespace and every cluster-scoped kind.
var allowAll = AccessPolicy{Namespaces: []string{"*"}, ClusterResources: []schema.GroupKind{{Group: "*", Kind: "*"}}}
