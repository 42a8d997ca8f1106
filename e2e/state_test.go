package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/flotilla-dev/flotilla/e2e/localfleet"
	"github.com/flotilla-dev/flotilla/shared/testwait"
)

// Names of the agent's state Secrets (agent/internal/state, which e2e cannot import).
const (
	stateHead       = "flotilla-app-large"
	stateAppLabel   = "flotilla.dev/app-state=large"
	statePartLabel  = "flotilla.dev/state-part"
	statePartSetKey = "flotilla.dev/state-part-set"
)

// TestAgentKilledMidSave: the staging agent is killed (SIGKILL) while it saves the state of an
// app too large for one Secret: after it wrote a part of the new state and before it switched
// the head to it. The restarted agent reads the whole previous state (none of it is left out as
// unreadable), takes the revision again from the hub, later prunes what Git dropped, and deletes
// the parts of the save that was cut short.
func TestAgentKilledMidSave(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	files, _, _ := largeApp(t, "large", 3, 850<<10)
	files["large/kustomization.yaml"] = "resources: [blob-00.yaml, blob-01.yaml, blob-02.yaml]\n"
	if _, err := e.repo.Commit("large app", files); err != nil {
		t.Fatal(err)
	}
	if err := localfleet.WriteFiles(e.appsDir, map[string]string{
		"large.yaml": flotillaApp("large", e.git.URL(e.repo.Dir), "large", "large"),
	}); err != nil {
		t.Fatal(err)
	}
	rev, _ := e.repo.Head()
	if _, err := e.fleet.WaitStatus(e.ctx, 5*time.Minute, appliedEverywhere("large", rev)); err != nil {
		t.Fatal(err)
	}
	staging := kubeClient(t, e.clusters[0])
	agent := func() string { return e.fleet.Agents["staging"].LogPath }
	unreadable := `msg="some app state could not be read`

	// Each attempt commits a change to the app and kills the agent at the first part of the
	// new state it writes; at least one kill must land before the head switched.
	midSave := 0
	for attempt := 1; attempt <= 5 && midSave == 0; attempt++ {
		oldSet := partSet(t, e.ctx, staging)
		w, err := staging.CoreV1().Secrets(agentNamespace).Watch(e.ctx, metav1.ListOptions{LabelSelector: stateAppLabel})
		if err != nil {
			t.Fatal(err)
		}
		files["large/kustomization.yaml"] = fmt.Sprintf("resources: [blob-00.yaml, blob-01.yaml, blob-02.yaml]\ncommonAnnotations: {attempt: %q}\n", fmt.Sprint(attempt))
		rev, err = e.repo.Commit(fmt.Sprintf("large app, attempt %d", attempt), map[string]string{"large/kustomization.yaml": files["large/kustomization.yaml"]})
		if err != nil {
			t.Fatal(err)
		}
		newPart(t, e.ctx, w, oldSet)
		e.fleet.Agents["staging"].Kill()
		w.Stop()
		if partSet(t, e.ctx, staging) == oldSet {
			midSave++
		}
		loaded := countInFile(t, agent(), `msg="app state loaded"`)
		if err := e.fleet.StartAgent(e.clusters[0]); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, time.Minute, "the restarted agent loaded its state", func(context.Context) (bool, error) {
			return countInFile(t, agent(), `msg="app state loaded"`) > loaded, nil
		})
		if n := countInFile(t, agent(), unreadable); n > 0 {
			t.Fatalf("attempt %d: the restarted agent could not read some state:\n%s", attempt, e.fleet.Agents["staging"].Tail(8192))
		}
		if _, err := e.fleet.WaitStatus(e.ctx, 5*time.Minute, appliedEverywhere("large", rev)); err != nil {
			t.Fatal(err)
		}
	}
	if midSave == 0 {
		t.Fatal("in 5 attempts the agent was never killed between writing a part of the new state and switching the head")
	}
	t.Logf("killed between a part and the head switch %d time(s)", midSave)

	// The state the agent kept names every object it applied: what Git drops is pruned.
	// (A bundle of megabytes takes minutes to apply on a loaded machine: the bounds are wide.)
	// (One of three: dropping more than half would be a large prune, held for confirmation.)
	rev, err := e.repo.Commit("large app: two blobs", map[string]string{"large/kustomization.yaml": "resources: [blob-00.yaml, blob-01.yaml]\n"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.fleet.WaitStatus(e.ctx, 5*time.Minute, appliedEverywhere("large", rev)); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, time.Minute, "blob-02 pruned on staging", func(ctx context.Context) (bool, error) {
		_, err := staging.CoreV1().ConfigMaps("large").Get(ctx, "blob-02", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	// No part is left that the head does not name.
	testwait.For(t, time.Minute, "only the head's parts left", func(ctx context.Context) (bool, error) {
		set := partSet(t, ctx, staging)
		list, err := staging.CoreV1().Secrets(agentNamespace).List(ctx, metav1.ListOptions{LabelSelector: stateAppLabel})
		if err != nil {
			return false, err
		}
		for _, s := range list.Items {
			if _, ok := s.Labels[statePartLabel]; ok && !strings.HasPrefix(s.Name, stateHead+"."+set+".") {
				return false, nil
			}
		}
		return true, nil
	})
}

// partSet is the part set the app's state head names ("" for a state in the head alone).
func partSet(t *testing.T, ctx context.Context, c kubernetes.Interface) string {
	t.Helper()
	head, err := c.CoreV1().Secrets(agentNamespace).Get(ctx, stateHead, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return head.Annotations[statePartSetKey]
}

// newPart waits on w for a part Secret created for a set other than oldSet.
func newPart(t *testing.T, ctx context.Context, w watch.Interface, oldSet string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the watch of the state Secrets ended")
			}
			s, isSecret := ev.Object.(*corev1.Secret)
			if ev.Type != watch.Added || !isSecret {
				continue
			}
			if _, part := s.Labels[statePartLabel]; part && !strings.HasPrefix(s.Name, stateHead+"."+oldSet+".") {
				return
			}
		case <-ctx.Done():
			t.Fatal("the agent wrote no part of a new state within 3 minutes")
		}
	}
}
