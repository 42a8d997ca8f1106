package server

import (
	"github.com/flotilla-dev/flotilla/hub/internal/cluster"
	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/pins"
	"github.com/flotilla-dev/flotilla/hub/internal/pki"
	"github.com/flotilla-dev/flotilla/hub/internal/replicate"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// What the hub wires into Config implements the interfaces the server declares, and the
// server implements the four gRPC services it registers.
var (
	_ registry        = (*store.Store)(nil)
	_ pins.Store      = (*store.Store)(nil)
	_ replicate.Store = (*store.Store)(nil)
	_ authority       = (*pki.CA)(nil)
	_ trigger         = (*fleet.Reconciler)(nil)
	_ gitRepos        = (*source.Fetcher)(nil)
	_ replicaSet      = (*cluster.Membership)(nil)

	_ flotillav1.EnrollmentServer   = (*Server)(nil)
	_ flotillav1.AgentServiceServer = (*Server)(nil)
	_ flotillav1.OperatorServer     = (*Server)(nil)
	_ flotillav1.PeerServer         = (*Server)(nil)
)
