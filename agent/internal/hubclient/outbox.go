package hubclient

import (
	"sync"

	"github.com/flotilla-dev/flotilla/agent/internal/syncer"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// Outbox holds what the agent has to tell the hub until a stream carries it: ACKs and NACKs in
// order (at most maxQueued while no hub is reachable), and the latest status of each app. It is
// the syncer's Reporter, made before the controller and the client, which both use it.
type Outbox struct {
	mu       sync.Mutex
	queue    []*flotillav1.AgentMessage          // ACKs and NACKs, in order
	statuses map[string]*flotillav1.AgentMessage // latest status per app
	order    []string                            // apps in the order their status changed
	wake     chan struct{}
}

var _ syncer.Reporter = (*Outbox)(nil)

// NewOutbox returns an empty outbox.
func NewOutbox() *Outbox {
	return &Outbox{statuses: map[string]*flotillav1.AgentMessage{}, wake: make(chan struct{}, 1)}
}

// next is the message to send now: the oldest ACK or NACK, else the status of the app whose
// status changed first; nil when there is none.
func (o *Outbox) next() *flotillav1.AgentMessage {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) > 0 {
		m := o.queue[0]
		o.queue = o.queue[1:]
		return m
	}
	for len(o.order) > 0 {
		app := o.order[0]
		o.order = o.order[1:]
		if m, ok := o.statuses[app]; ok {
			delete(o.statuses, app)
			return m
		}
	}
	return nil
}

// requeue puts back a message whose send failed, to go out on the next stream.
func (o *Outbox) requeue(m *flotillav1.AgentMessage) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := m.GetStatus(); s != nil {
		if _, newer := o.statuses[s.App]; !newer {
			o.statuses[s.App] = m
			o.order = append([]string{s.App}, o.order...)
		}
		return
	}
	o.queue = append([]*flotillav1.AgentMessage{m}, o.queue...)
}

// enqueue adds an ACK or NACK, dropping the oldest beyond maxQueued.
func (o *Outbox) enqueue(m *flotillav1.AgentMessage) {
	o.mu.Lock()
	if len(o.queue) >= maxQueued {
		o.queue = o.queue[1:] // the hub re-learns applied state from Hello and statuses
	}
	o.queue = append(o.queue, m)
	o.mu.Unlock()
	o.signal()
}

// signal wakes the send loop.
func (o *Outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Ack reports that a generation was applied.
func (o *Outbox) Ack(app string, generation uint64, revision, digest string) {
	o.enqueue(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Ack{Ack: &flotillav1.Ack{
		App: app, Generation: generation, Revision: revision, Digest: digest,
	}}})
}

// Nack reports that a generation failed; reason is already scrubbed by the caller.
func (o *Outbox) Nack(app string, generation uint64, reason string) {
	o.enqueue(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Nack{Nack: &flotillav1.Nack{
		App: app, Generation: generation, Error: reason,
	}}})
}

// Status queues an app's status; an older queued status of the same app is replaced.
func (o *Outbox) Status(s syncer.AppStatus) {
	m := &flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Status{Status: statusToProto(s)}}
	o.mu.Lock()
	if _, queued := o.statuses[s.App]; !queued {
		o.order = append(o.order, s.App)
	}
	o.statuses[s.App] = m
	o.mu.Unlock()
	o.signal()
}

// Hook reports the outcome of a hook, queued in order with ACKs and NACKs.
func (o *Outbox) Hook(r syncer.HookRun) {
	o.enqueue(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_HookRun{HookRun: &flotillav1.HookRun{
		App: r.App, Generation: r.Generation, Revision: r.Revision, Phase: r.Phase, Object: refToProto(r.Object),
		Result: r.Result, Message: r.Message, StartedUnixMs: r.Started.UnixMilli(), FinishedUnixMs: r.Finished.UnixMilli(),
	}}})
}
