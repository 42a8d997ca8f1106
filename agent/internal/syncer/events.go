package syncer

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	"github.com/flotilla-dev/flotilla/agent/internal/state"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Event reasons, for Kubernetes Events and Config.OnEvent.
const (
	EventSynced         = "Synced"
	EventSyncFailed     = "SyncFailed"
	EventDriftCorrected = "DriftCorrected"
	EventRolledBack     = "RolledBack"
	EventRollbackFailed = "RollbackFailed"
)

// eventComponent is the source of the Kubernetes Events the agent records.
const eventComponent = "flotilla-agent"

// Event is a notification about an app: a sync, a drift correction, an automatic rollback.
// Config.OnEvent is told of rollbacks only.
type Event struct {
	App    string
	Reason string // one of the Event* reasons
	// Revision is the revision synced, corrected or rolled back from; Target the last
	// healthy one a rollback re-applied.
	Revision string
	Target   string
	Message  string // for people: what happened and why
	Time     time.Time
}

// warning reports whether ev is recorded as a Warning Event (Normal otherwise).
func (ev Event) warning() bool {
	return ev.Reason == EventSyncFailed || ev.Reason == EventRolledBack || ev.Reason == EventRollbackFailed
}

// eventTarget picks the object an Event about refs is recorded on: the first namespaced one
// (so that `kubectl get events -n NAMESPACE` lists it), or none.
func eventTarget(refs []apply.ObjectRef) apply.ObjectRef {
	for _, r := range refs {
		if r.Namespace != "" {
			return r
		}
	}
	return apply.ObjectRef{}
}

// recordEvent records ev as a Kubernetes Event about ref, or about the app's state Secret in
// the agent's namespace when ref is zero. A failure is logged, never returned.
func (c *Controller) recordEvent(ctx context.Context, ev Event, ref apply.ObjectRef) {
	involved := corev1.ObjectReference{
		APIVersion: apiVersion(ref.Group, ref.Version), Kind: ref.Kind, Namespace: ref.Namespace, Name: ref.Name,
	}
	eventNS := involved.Namespace
	switch {
	case ref.Name == "":
		involved = corev1.ObjectReference{APIVersion: "v1", Kind: "Secret", Namespace: c.cfg.Namespace, Name: state.SecretName(ev.App)}
		eventNS = c.cfg.Namespace
	case ref.Namespace == "":
		eventNS = metav1.NamespaceDefault
	}
	typ := corev1.EventTypeNormal
	if ev.warning() {
		typ = corev1.EventTypeWarning
	}
	msg := ev.Message
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	t := metav1.NewTime(ev.Time)
	e := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: involved.Name + ".", Namespace: eventNS,
			Labels: map[string]string{apply.LabelApp: ev.App},
		},
		InvolvedObject: involved, Reason: ev.Reason, Message: msg, Type: typ,
		Source: corev1.EventSource{Component: eventComponent}, FirstTimestamp: t, LastTimestamp: t, Count: 1,
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.kube.Events(eventNS).Create(ctx, e, metav1.CreateOptions{}); err != nil {
		c.log.Warn("recording an event failed", logging.KeyApp, ev.App, keyReason, ev.Reason, logging.Err(err))
	}
}

func apiVersion(group, version string) string {
	if group == "" {
		return version
	}
	return group + "/" + version
}
