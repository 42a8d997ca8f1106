// Package app builds the `flotilla` command: `flotilla hub` runs the hub; every other
// subcommand is the operator CLI (package cli).
package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/hub/internal/cli"
	"github.com/flotilla-dev/flotilla/shared/version"
)

// NewRootCommand returns the `flotilla` command tree.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "flotilla",
		Short: "Flotilla delivers Kubernetes state from Git to a fleet of clusters",
		Long: `Flotilla delivers Kubernetes state from Git to a fleet of clusters.

"flotilla hub" runs the hub. The other commands talk to a hub with the operator config the hub
writes to DATA_DIR/admin.yaml (see --config).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newHubCmd(), newVersionCmd())
	cli.AddCommands(root)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "flotilla %s\n", version.String())
			return err
		},
	}
}
