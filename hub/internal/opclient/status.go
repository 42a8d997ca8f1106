// Package opclient holds what callers of the hub's Operator API share beyond the generated
// client: reading a large answer a page at a time.
package opclient

import (
	"context"
	"fmt"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// StatusPageSize is how many rows one Status page asks for: about 1.5 MiB of plain rows, well
// under the hub's message limit (the hub also ends a page at about 2 MiB).
const StatusPageSize = 5000

// Status reads every row req selects, a page at a time, into one answer (a hub that does not
// page answers everything at once). The unreachable replicas are those of any page.
func Status(ctx context.Context, op flotillav1.OperatorClient, req *flotillav1.StatusRequest) (*flotillav1.StatusResponse, error) {
	page := &flotillav1.StatusRequest{
		App: req.App, Cluster: req.Cluster, Selector: req.Selector, Stale: req.Stale, Drifted: req.Drifted,
		Revision: req.Revision, Resources: req.Resources, PageSize: StatusPageSize,
	}
	out := &flotillav1.StatusResponse{}
	seen := map[string]bool{}
	for {
		resp, err := op.Status(ctx, page)
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, resp.Items...)
		for _, p := range resp.UnreachablePeers {
			if !seen[p] {
				seen[p] = true
				out.UnreachablePeers = append(out.UnreachablePeers, p)
			}
		}
		next := resp.NextAfterCluster
		if next == "" {
			return out, nil
		}
		if next <= page.AfterCluster {
			return nil, fmt.Errorf("status: the hub's next page starts at cluster %q, not after %q", next, page.AfterCluster)
		}
		page.AfterCluster = next
	}
}
