package apply

import (
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
	"github.com/flotilla-dev/flotilla/e2e/localkube"
	"github.com/flotilla-dev/flotilla/shared/policy"
)

var shared = localkube.NewShared(localkube.Options{Name: "apply"})

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

func newEnv(t *testing.T) *kubetest.Env {
	t.Helper()
	return kubetest.NewEnv(t, shared.Clusters(t)[0])
}

func newApplier(t *testing.T, e *kubetest.Env) *Applier {
	t.Helper()
	a, err := New(e.Config, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// revision builds a Revision the way the hub and hubclient do (kubetest.Bundle). Its
// spec.policy allows everything (see allowAll); policy_test.go sets its own.
func revision(t *testing.T, app, namespace string, p Policy, docs ...string) *Revision {
	t.Helper()
	objs, _, _ := kubetest.Bundle(t, docs...)
	return &Revision{App: app, Namespace: namespace, Objects: objs, Policy: p, Access: allowAll}
}

// allowAll is a spec.policy that allows every namespace and every cluster-scoped kind.
var allowAll = policy.Access{Namespaces: []string{"*"}, ClusterResources: []schema.GroupKind{{Group: "*", Kind: "*"}}}
