// Package logging sets up log/slog for both binaries, bridges klog into it, and holds the
// attribute keys every package uses.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"k8s.io/klog/v2"
)

// Attribute keys: constant, shared, so logs can be queried the same way on hub and agent.
const (
	KeyCluster    = "cluster"
	KeyApp        = "app"
	KeyRevision   = "revision"
	KeyGeneration = "generation"
	KeyDigest     = "digest"
	KeyRepo       = "repo"
	KeyPath       = "path"
	KeyObject     = "object"
	KeyAddr       = "addr"
	KeyErr        = "err"
	KeyDuration   = "duration"
	KeyCount      = "count"
	KeyFile       = "file"
	KeyPeer       = "peer"

	KeyAction       = "action"       // an audited operator action
	KeyActor        = "actor"        // who did an action (a dashboard identity)
	KeyPage         = "page"         // a dashboard page
	KeyAdminConfig  = "adminConfig"  // a written operator configuration file
	KeyAdvertise    = "advertise"    // a hub replica's advertised address
	KeyAgain        = "again"        // an enrolment repeated with the same key
	KeyAgentVersion = "agentVersion" // the version an agent reports
	KeyAgeRecipient = "ageRecipient" // the agent's public age key
	KeyBranch       = "branch"       // a Git branch
	KeyChunks       = "chunks"       // chunks of a bundle
	KeyCommit       = "commit"       // a Git commit made by the hub
	KeyCreated      = "created"      // whether something was created now
	KeyExpiredFor   = "expiredFor"   // how long ago a certificate expired
	KeyFrom         = "from"         // the source environment of a promotion
	KeyGOGC         = "gogc"         // the garbage collector's target
	KeyGossip       = "gossip"       // the gossip address of a hub replica
	KeyHubs         = "hubs"         // the hub addresses an agent knows
	KeyHubVersion   = "hubVersion"   // the version a hub reports
	KeyNotAfter     = "notAfter"     // a certificate's expiry
	KeyProvider     = "provider"     // a webhook provider
	KeyRemote       = "remote"       // a remote network address
	KeyRetryIn      = "retryIn"      // the wait before the next attempt
	KeyRollout      = "rollout"      // a progressive rollout's id
	KeyState        = "state"        // a progressive rollout's state
	KeyStep         = "step"         // a progressive rollout's step, 1-based
	KeySinks        = "sinks"        // notification sinks
	KeySource       = "source"       // the library a bridged log line comes from
	KeyTo           = "to"           // the target environment of a promotion
	KeyVersion      = "version"      // this binary's version
	KeyKubeVersion  = "kubeVersion"  // the Kubernetes version a cluster reports
)

// Options are the logging flags of both binaries.
type Options struct {
	Level  string // debug, info, warn, error
	Format string // text or json
}

// New returns a logger writing to w and makes it the default for slog and klog.
func New(w io.Writer, o Options) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(orDefault(o.Level, "info"))); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", o.Level)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch strings.ToLower(orDefault(o.Format, "text")) {
	case "text":
		h = slog.NewTextHandler(w, hopts)
	case "json":
		h = slog.NewJSONHandler(w, hopts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", o.Format)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	klog.SetSlogLogger(l.With(KeySource, "klog"))
	return l, nil
}

// Err is the attribute for an error.
func Err(err error) slog.Attr { return slog.Any(KeyErr, err) }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
