package syncer

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/kubetest"
)

// TestWarningEventsReported: the Warning Events of an app's objects, as the API server holds
// them, reach the app's status: the ten most recent, newest first, messages cut short;
// neither Normal Events nor Events of objects that are not the app's.
func TestWarningEventsReported(t *testing.T) {
	ns := kubetest.Uniq("t-ctl-events")
	e := newEnv(t)
	c, rec := startController(t, e, kubetest.Uniq("t-agent-events"))
	d := desired(t, "evs", ns, SyncPolicy{Automated: true, CreateNamespace: true}, kubetest.ConfigMap("settings", "v1"))
	c.SetDesired(d)
	rec.waitAck(t, "evs", 1, time.Minute)

	ctx := kubetest.Ctx(t)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	event := func(name, kind, object, typ, reason, msg string, at time.Time) {
		t.Helper()
		ev := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: ns},
			InvolvedObject: corev1.ObjectReference{APIVersion: "v1", Kind: kind, Namespace: ns, Name: object},
			Type:           typ, Reason: reason, Message: msg, Count: 3,
			FirstTimestamp: metav1.NewTime(at), LastTimestamp: metav1.NewTime(at),
			Source: corev1.EventSource{Component: "test"},
		}
		if _, err := e.Client.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 12 {
		event(fmt.Sprintf("w%02d", i), "ConfigMap", "settings", corev1.EventTypeWarning, fmt.Sprintf("Reason%02d", i), "warning "+fmt.Sprint(i), base.Add(time.Duration(i)*time.Minute))
	}
	long := "<script>alert(1)</script>" + strings.Repeat("é", 400)
	event("newest", "ConfigMap", "settings", corev1.EventTypeWarning, "Newest", long, base.Add(30*time.Minute))
	event("normal", "ConfigMap", "settings", corev1.EventTypeNormal, "Fine", "all good", base.Add(40*time.Minute))
	event("elsewhere", "ConfigMap", "other", corev1.EventTypeWarning, "NotOurs", "another app's", base.Add(40*time.Minute))

	s := rec.waitStatus(t, "evs", time.Minute, "its Warning Events", func(s AppStatus) bool {
		return len(s.Events) == maxWarnings && s.Events[0].Reason == "Newest"
	})
	first := s.Events[0]
	if first.Object.Kind != "ConfigMap" || first.Object.Name != "settings" || first.Count != 3 || !first.LastSeen.Equal(base.Add(30*time.Minute)) ||
		len(first.Message) > maxWarningMessage || !strings.HasPrefix(first.Message, "<script>") || !strings.HasSuffix(first.Message, "…") {
		t.Errorf("newest event %+v", first)
	}
	for i, ev := range s.Events[1:] {
		if want := fmt.Sprintf("Reason%02d", 11-i); ev.Reason != want || ev.Type != corev1.EventTypeWarning {
			t.Errorf("event %d: %s %s, want Warning %s (newest first)", i+1, ev.Type, ev.Reason, want)
		}
	}

	// A new Warning Event is reported again, once.
	event("later", "ConfigMap", "settings", corev1.EventTypeWarning, "Later", "later", base.Add(50*time.Minute))
	rec.waitStatus(t, "evs", time.Minute, "the later Warning Event", func(s AppStatus) bool {
		return len(s.Events) == maxWarnings && s.Events[0].Reason == "Later" && s.Events[1].Reason == "Newest"
	})
}

// TestCompactEventKeepsTheSummary: an Event compacted for the informer gives the same summary
// and index key as the Event itself, and keeps no more than the summary's message.
func TestCompactEventKeepsTheSummary(t *testing.T) {
	long := strings.Repeat("x", 4*maxWarningMessage)
	e := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: "web.1", Namespace: "shop", ResourceVersion: "7",
			Annotations: map[string]string{"big": long}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}}},
		InvolvedObject: corev1.ObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: "web", FieldPath: "spec"},
		Type:           corev1.EventTypeWarning, Reason: "FailedCreate", Message: long, Count: 3,
		LastTimestamp: metav1.Now(),
		Source:        corev1.EventSource{Component: "deployment-controller", Host: "node-1"},
	}
	got, err := compactEvent(e)
	if err != nil {
		t.Fatal(err)
	}
	c := got.(*corev1.Event)
	ref := apply.ObjectRef{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "shop", Name: "web"}
	if a, b := objectEvent(ref, e), objectEvent(ref, c); !reflect.DeepEqual(a, b) {
		t.Errorf("summary of the compacted Event %+v, of the Event %+v", b, a)
	}
	ka, _ := indexInvolved(e)
	kb, _ := indexInvolved(c)
	if !slices.Equal(ka, kb) {
		t.Errorf("index key %v, want %v", kb, ka)
	}
	if len(c.Message) > maxWarningMessage || c.Annotations != nil || c.ManagedFields != nil || c.Source.Host != "" {
		t.Errorf("compacted Event keeps more than the summary: %d-byte message, annotations %v, managedFields %v, source %+v",
			len(c.Message), len(c.Annotations), len(c.ManagedFields), c.Source)
	}
}
