package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
)

// PrepareOptions configure `fleetsim prepare`.
type PrepareOptions struct {
	Hub        string
	Dir        string
	Tokens     string // a file of join tokens, one a line
	Config     string // the operator config, to register clusters over the operator API
	Count      int
	Prefix     string
	Labels     string
	Concurrent int
}

// AddFlags registers the options' flags.
func (o *PrepareOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Hub, "hub", "", "the hub's agent address (host:port)")
	f.StringVar(&o.Dir, "dir", "", "directory to save each agent's key and certificate in")
	f.StringVar(&o.Tokens, "tokens", "", "file of join tokens, one a line (instead of registering clusters)")
	f.StringVar(&o.Config, "config", "", "operator config to register the clusters with (the hub writes DATA_DIR/admin.yaml)")
	f.IntVar(&o.Count, "count", 0, "how many clusters to register and enrol (without --tokens)")
	f.StringVar(&o.Prefix, "prefix", "sim-", "cluster name prefix; names are PREFIX00000, PREFIX00001, ...")
	f.StringVar(&o.Labels, "labels", "env=staging", "labels of the registered clusters (k=v,k=v)")
	f.IntVar(&o.Concurrent, "concurrent", 16, "registrations and enrolments in flight at once")
}

// Validate checks the options.
func (o *PrepareOptions) Validate() error {
	switch {
	case o.Hub == "":
		return errors.New("--hub is required")
	case o.Dir == "":
		return errors.New("--dir is required")
	case o.Tokens == "" && o.Count <= 0:
		return errors.New("either --tokens or --count > 0 is required")
	case o.Tokens == "" && o.Config == "":
		return errors.New("--config is required to register clusters")
	case o.Concurrent <= 0:
		return fmt.Errorf("--concurrent must be positive, not %d", o.Concurrent)
	}
	return nil
}

// RunOptions configure `fleetsim run`.
type RunOptions struct {
	Hub        string
	Dir        string
	Count      int
	ApplyDelay time.Duration
	Mode       string
	FlapEvery  time.Duration
	Duration   time.Duration
	Control    string
	ControlOut string
	Dials      int
	JSON       bool
	Verbose    bool
}

// AddFlags registers the options' flags.
func (o *RunOptions) AddFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.Hub, "hub", "", "the hub's agent address (host:port)")
	f.StringVar(&o.Dir, "dir", "", "directory of identities saved by fleetsim prepare")
	f.IntVar(&o.Count, "count", 0, "run only the first N agents of --dir (0: all)")
	f.DurationVar(&o.ApplyDelay, "apply-delay", defaultApplyDelay, "simulated apply time before each ACK")
	f.StringVar(&o.Mode, "mode", ModeAck, "what agents answer a bundle with: ack, nack, or silent (answer nothing, no heartbeats)")
	f.DurationVar(&o.FlapEvery, "flap-every", 0, "disconnect and reconnect each agent this often (0: never)")
	f.DurationVar(&o.Duration, "duration", 0, "stop after this long and print the summary (0: until SIGINT/SIGTERM)")
	f.StringVar(&o.Control, "control", "", "serve the control endpoint on this localhost address (e.g. 127.0.0.1:0): "+
		"GET /stats, POST /mode?set=ack|nack|silent, POST /mark (latencies from now), POST /storm (all reconnect at once)")
	f.StringVar(&o.ControlOut, "control-addr-file", "", "write the control endpoint's address to this file once it listens")
	f.IntVar(&o.Dials, "dials", 64, "first connections in flight at once (a storm ignores it)")
	f.BoolVar(&o.JSON, "json", false, "print the summary as JSON")
	f.BoolVar(&o.Verbose, "verbose", false, "log every session")
}

// Validate checks the options.
func (o *RunOptions) Validate() error {
	switch {
	case o.Hub == "":
		return errors.New("--hub is required")
	case o.Dir == "":
		return errors.New("--dir is required")
	case !validMode(o.Mode):
		return fmt.Errorf("--mode %q: want ack, nack or silent", o.Mode)
	case o.Dials <= 0:
		return fmt.Errorf("--dials must be positive, not %d", o.Dials)
	}
	return nil
}

func (o *RunOptions) level() slog.Level {
	if o.Verbose {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}
