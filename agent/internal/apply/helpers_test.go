package apply

import (
	"context"
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

// runningApplier is newApplier with its watches running until the test ends; ctx is the
// test's.
func runningApplier(t *testing.T, e *kubetest.Env) (*Applier, context.Context) {
	t.Helper()
	a := newApplier(t, e)
	ctx, cancel := context.WithCancel(kubetest.Ctx(t))
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, ctx
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
