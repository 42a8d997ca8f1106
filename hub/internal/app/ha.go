package app

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// replicaCertTTL is the validity of the certificate a replica presents to its peers; it is
// issued anew, in memory, at every start.
const replicaCertTTL = 30 * 24 * time.Hour

// leaveTimeout bounds telling the other replicas this one is leaving, at shutdown.
const leaveTimeout = 2 * time.Second

// ReplicaOptions are the flags that make the hub one of several replicas (scale-out). With
// --gossip-listen unset the hub runs alone, as it always did.
type ReplicaOptions struct {
	CADir         string
	NodeName      string
	GossipListen  string
	Peers         []string
	GossipKeyFile string
}

// AddFlags binds the options to flags.
func (o *ReplicaOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.CADir, "ca-dir", o.CADir, "directory holding the CA (ca.crt, ca.key), shared by every hub replica: copy the first replica's, or mount one Secret in all (default: --data-dir)")
	fs.StringVar(&o.GossipListen, "gossip-listen", o.GossipListen, "host:port (TCP and UDP) where this hub replica gossips with the others; setting it makes the hub one of several replicas")
	fs.StringSliceVar(&o.Peers, "peers", o.Peers, "gossip addresses host:port of other hub replicas to join (any one that answers is enough)")
	fs.StringVar(&o.GossipKeyFile, "gossip-key-file", o.GossipKeyFile, "file holding the 32-byte gossip encryption key, base64 (head -c32 /dev/urandom | base64); the same on every replica: a node without it cannot join. One key per line during a rotation (the first encrypts, all decrypt); re-read every 10s, no restart needed")
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "this replica's name among the replicas, unique and stable across restarts (default: --advertise-address)")
}

// enabled reports whether the hub is one of several replicas.
func (o *ReplicaOptions) enabled() bool { return o.GossipListen != "" }

// validate checks the options and fills their defaults from the hub's.
func (o *ReplicaOptions) validate(dataDir, advertise string) error {
	if o.CADir == "" {
		o.CADir = dataDir
	}
	if o.NodeName == "" {
		o.NodeName = advertise
	}
	if !o.enabled() {
		if len(o.Peers) > 0 || o.GossipKeyFile != "" {
			return errors.New("--peers and --gossip-key-file need --gossip-listen")
		}
		return nil
	}
	var errs []error
	if _, _, err := net.SplitHostPort(o.GossipListen); err != nil {
		errs = append(errs, fmt.Errorf("--gossip-listen %q: %w", o.GossipListen, err))
	}
	for _, p := range o.Peers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			errs = append(errs, fmt.Errorf("--peers %q: want host:port", p))
		}
	}
	if o.GossipKeyFile == "" {
		errs = append(errs, errors.New("--gossip-listen needs --gossip-key-file: gossip between replicas is always encrypted"))
	}
	return errors.Join(errs...)
}

// startReplica joins the other hub replicas when the hub is one of several: it starts
// gossip (left when ctx ends) and issues the certificate this replica calls its peers with.
// It returns nils for a hub that runs alone.
func startReplica(ctx context.Context, o *completedOptions, ca *pki.CA, log *slog.Logger) (*cluster.Membership, *server.HAConfig, error) {
	ro := o.Replicas
	if !ro.enabled() {
		return nil, nil, nil
	}
	cert, err := ca.IssueReplica(ro.NodeName, replicaCertTTL)
	if err != nil {
		return nil, nil, fmt.Errorf("replica certificate: %w", err)
	}
	ml, err := cluster.Start(ctx, cluster.Config{
		NodeName: ro.NodeName, BindAddr: ro.GossipListen, AdvertiseGRPC: o.Advertise, Peers: ro.Peers, Keys: o.gossipKeys, Logger: log,
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info("hub replica started", logging.KeyPeer, ro.NodeName, logging.KeyGossip, ro.GossipListen, logging.KeyCount, len(ro.Peers))
	return ml, &server.HAConfig{
		Replicas: ml,
		PeerTLS:  &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
	}, nil
}

// ownedClusters narrows list to the clusters this replica owns, as owned says at every call
// (the members may have changed); on a hub that runs alone it is list. The reconciler's
// owned is cluster.Ownership.Release, read at the start of every round: a cluster that moved away
// during a round is not left with the state that round rendered for it.
func ownedClusters(list func() ([]fleet.ClusterVars, error), ha *server.HAConfig, owned func() func(string) bool) func() ([]fleet.ClusterVars, error) {
	if ha == nil {
		return list
	}
	return func() ([]fleet.ClusterVars, error) {
		cs, err := list()
		if err != nil {
			return nil, err
		}
		mine := owned()
		out := cs[:0:0]
		for _, c := range cs {
			if mine(c.Name) {
				out = append(out, c)
			}
		}
		return out, nil
	}
}

// gossipKeyReload is how often a replica re-reads --gossip-key-file.
const gossipKeyReload = 10 * time.Second

// readGossipKeys reads the keyring in --gossip-key-file (see cluster.ParseKeys).
func readGossipKeys(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file: %w", err)
	}
	keys, err := cluster.ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("--gossip-key-file %s: %w", path, err)
	}
	return keys, nil
}

// reloadGossipKeys re-reads --gossip-key-file every interval until ctx ends and installs
// the keyring it holds, so that an operator rotates the key by editing the file (or the
// Secret it is mounted from) on every replica, step by step, without restarting any. A file
// that cannot be read or parsed keeps the keys in use; it is reported once per change.
//
// The first read is held against the keys installed, not against the file as startReplica
// read it: an edit made before this loop started is installed too.
func reloadGossipKeys(ctx context.Context, ml *cluster.Membership, path string, interval time.Duration, log *slog.Logger) error {
	var last []byte // the content last installed; nil: not read yet
	var lastErr string
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err == nil && last != nil && bytes.Equal(data, last) {
			continue
		}
		var keys [][]byte
		var changed bool
		if err != nil {
			err = fmt.Errorf("--gossip-key-file: %w", err)
		} else if keys, err = cluster.ParseKeys(data); err != nil {
			err = fmt.Errorf("--gossip-key-file %s: %w", path, err)
		} else if changed, err = ml.SetKeys(keys); err == nil {
			last, lastErr = data, ""
			if changed {
				log.Info("gossip keys reloaded", logging.KeyCount, len(keys))
			}
			continue
		}
		if err.Error() != lastErr {
			lastErr = err.Error()
			log.Warn("gossip keys not reloaded; the keys in use stay", logging.Err(err))
		}
	}
}
