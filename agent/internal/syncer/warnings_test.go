package syncer

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
