package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "fleetsim",
		Short: "Run N simulated agents against a real Flotilla hub and measure delivery",
		Long: `fleetsim runs N simulated agents in its own process against a real hub over real TCP,
TLS and gRPC. Each keeps its stream, assembles and verifies chunked bundles, ACKs after an
optional apply delay, reports its apps Synced and Healthy and sends heartbeats. It applies
nothing. It records, per delivered bundle, the time from the commit (or from a marker set on
the control endpoint) to the ACK.

  fleetsim prepare --hub ADDR --config ADMIN.yaml --count N --dir D
      registers N clusters over the operator API (as flotilla cluster add does), enrols each with its join token like a real
      agent and saves its key and certificate in D, so that run starts quickly.
  fleetsim prepare --hub ADDR --tokens FILE --dir D
      enrols with the join tokens in FILE, one a line.
  fleetsim run --hub ADDR --dir D [--json]
      runs the prepared agents until --duration passes or SIGINT/SIGTERM, then prints a summary.`,
		SilenceUsage: true,
	}
	root.AddCommand(newPrepareCommand(), newRunCommand())
	return root
}

func newPrepareCommand() *cobra.Command {
	o := &PrepareOptions{}
	cmd := &cobra.Command{
		Use:   "prepare",
		Short: "Register and enrol N simulated agents, saving their identities in --dir",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := Prepare(ctx, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enrolled %d agents into %s\n", n, o.Dir)
			return nil
		},
	}
	o.AddFlags(cmd)
	return cmd
}

func newRunCommand() *cobra.Command {
	o := &RunOptions{}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agents prepared in --dir and print a delivery summary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.Duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.Duration)
				defer cancel()
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: o.level()}))
			s, err := Run(ctx, o, log)
			if err != nil {
				return err
			}
			if o.JSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			s.WriteText(cmd.OutOrStdout())
			return nil
		},
	}
	o.AddFlags(cmd)
	return cmd
}

// defaultApplyDelay is no simulated apply: ACK as soon as the bundle is verified.
const defaultApplyDelay = time.Duration(0)
