package cli

import (
	"fmt"
	"io"
	"strings"
)

// warnUnreachable writes one line naming the hub replicas that did not answer a fleet-wide
// query: the rows of the clusters they own may be missing or stale.
func warnUnreachable(w io.Writer, peers []string) {
	if len(peers) == 0 {
		return
	}
	fmt.Fprintf(w, "warning: hub replicas did not answer: %s; what they own may be missing or stale\n", strings.Join(peers, ", "))
}
