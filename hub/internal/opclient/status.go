// Package opclient holds what callers of the hub's Operator API share beyond the generated
// client: reading a large answer a page at a time.
package opclient

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// PriorityALPN is the ALPN protocol that operators' and hub replicas' connections offer beside
// "h2" (which the hub always chooses): the hub then runs their TLS handshake at once, ahead of
// the agents' it bounds, so that an operator's command is answered during a reconnect storm
// of thousands of agents (hub/internal/server: handshakes.go). It asks for priority; it
// grants no access.
const PriorityALPN = "flotilla-priority"

// StatusPageSize is how many rows one Status page asks for: about 1.5 MiB of plain rows, well
// under the hub's message limit (the hub also ends a page at about 2 MiB).
const StatusPageSize = 5000

// Status reads every row req selects into one answer: every page in one call (StatusPages),
// or, from a hub that has no StatusPages, a page per call (a hub that does not page either
// answers everything at once). The unreachable replicas are those of any page.
func Status(ctx context.Context, op flotillav1.OperatorClient, req *flotillav1.StatusRequest) (*flotillav1.StatusResponse, error) {
	page := &flotillav1.StatusRequest{
		App: req.App, Cluster: req.Cluster, Selector: req.Selector, Stale: req.Stale, Drifted: req.Drifted,
		Revision: req.Revision, Resources: req.Resources, PageSize: StatusPageSize,
	}
	out := &answer{seen: map[string]bool{}, StatusResponse: &flotillav1.StatusResponse{}}
	err := out.streamed(ctx, op, page)
	if status.Code(err) == codes.Unimplemented && !out.started {
		err = out.paged(ctx, op, page)
	}
	if err != nil {
		return nil, err
	}
	return out.StatusResponse, nil
}

// answer collects the pages of one Status.
type answer struct {
	*flotillav1.StatusResponse
	seen    map[string]bool // unreachable replicas already named
	started bool            // a page arrived
}

// add takes one page, whose request started after cluster after; more tells whether another
// page follows it.
func (a *answer) add(resp *flotillav1.StatusResponse, after string) (more bool, err error) {
	a.started = true
	a.Items = append(a.Items, resp.Items...)
	for _, p := range resp.UnreachablePeers {
		if !a.seen[p] {
			a.seen[p] = true
			a.UnreachablePeers = append(a.UnreachablePeers, p)
		}
	}
	next := resp.NextAfterCluster
	if next != "" && next <= after {
		return false, fmt.Errorf("status: the hub's next page starts at cluster %q, not after %q", next, after)
	}
	return next != "", nil
}

// streamed reads every page from one StatusPages call.
func (a *answer) streamed(ctx context.Context, op flotillav1.OperatorClient, req *flotillav1.StatusRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := op.StatusPages(ctx, req)
	if err != nil {
		return err
	}
	after := req.AfterCluster
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			if a.started {
				return fmt.Errorf("status: the hub's answer ended after cluster %q, before its last page", after)
			}
			return errors.New("status: the hub's answer ended before its first page")
		}
		if err != nil {
			return err
		}
		more, err := a.add(resp, after)
		if err != nil || !more {
			return err
		}
		after = resp.NextAfterCluster
	}
}

// paged reads the pages one Status call each, moving page's cursor.
func (a *answer) paged(ctx context.Context, op flotillav1.OperatorClient, page *flotillav1.StatusRequest) error {
	for {
		resp, err := op.Status(ctx, page)
		if err != nil {
			return err
		}
		more, err := a.add(resp, page.AfterCluster)
		if err != nil || !more {
			return err
		}
		page.AfterCluster = resp.NextAfterCluster
	}
}
