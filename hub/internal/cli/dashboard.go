package cli

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/flotilla-dev/flotilla/hub/internal/ui"
	"github.com/flotilla-dev/flotilla/shared/httpserve"
)

// dashboardMaxMessage bounds one answer of the hub to the dashboard: a page of the fleet (the
// hub filters, counts and pages it), an app with every cluster it targets, or one app on one
// cluster with its objects, drift and events.
const dashboardMaxMessage = 64 << 20

func newDashboardCmd(o *rootOptions) *cobra.Command {
	var port int
	var open bool
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the fleet dashboard on 127.0.0.1, talking to the hub with this operator's credentials",
		Long: `Serve the fleet dashboard on 127.0.0.1 (a free port unless --port says which; the address is
printed), talking to the hub with the operator certificate of the CLI's config, as kubectl proxy
does: nothing new is exposed, and it works against any hub replica.

Pages: the fleet (a cluster × app matrix, filtered by labels, app, state and revision, counted
and paged by the hub, so that each view reads one page of the fleet however large it is),
each app, each cluster, and each app on a cluster (its drift field by field with Secret values
masked, its history, its rollback target). Actions (sync, sync with prune, pin or clear a
revision, revoke a cluster) each ask for a confirmation, and the hub audits them under this
operator's certificate. The pages update themselves within a second of a change. Ctrl-C stops.`,
		Example: `  flotilla dashboard
  flotilla dashboard --port 8080 --open`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if port < 0 || port > 65535 {
				return fmt.Errorf("--port %d: want 0 (a free port) to 65535", port)
			}
			// An app that targets every cluster of a large fleet lists them all: more than
			// gRPC's default 4 MiB past some 200,000 clusters.
			c, err := o.client(grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(dashboardMaxMessage)))
			if err != nil {
				return err
			}
			defer c.conn.Close()
			h, err := ui.New(ui.Config{Backend: c.op})
			if err != nil {
				return err
			}
			lis, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("--port %d: %w", port, err)
			}
			url := "http://" + lis.Addr().String() + "/"
			fmt.Fprintf(cmd.OutOrStdout(), "dashboard: %s (hub %s; Ctrl-C to stop)\n", url, c.target)
			if open {
				openBrowser(cmd, url)
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return h.Run(ctx) })
			g.Go(func() error { return httpserve.Serve(ctx, httpserve.New(h, httpserve.Timeouts{}), lis) })
			return g.Wait()
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "port on 127.0.0.1 to serve on (0: a free one)")
	cmd.Flags().BoolVar(&open, "open", false, "open the dashboard in a browser (xdg-open)")
	return cmd
}

// openBrowser launches xdg-open on url, when there is one; the dashboard serves either way.
func openBrowser(cmd *cobra.Command, url string) {
	bin, err := exec.LookPath("xdg-open")
	if err != nil {
		fmt.Fprintln(cmd.ErrOrStderr(), "--open: no xdg-open here; open the address above yourself")
		return
	}
	b := exec.CommandContext(cmd.Context(), bin, url)
	if err := b.Start(); err != nil {
		fmt.Fprintf(cmd.ErrOrStderr(), "--open: %v\n", err)
		return
	}
	go func() { _ = b.Wait() }()
}
