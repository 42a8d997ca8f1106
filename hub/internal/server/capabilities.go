package server

import (
	"github.com/flotilla-dev/flotilla/hub/internal/render"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Bounds of what an agent may report as its capabilities.
const (
	maxAPIVersions      = 20000
	maxAPIVersionLength = 512
)

// setCapabilities records what cluster's agent reported of its API server (in Hello, or later
// when it changed) and asks for a round when it changed: its charts may render differently.
// An agent that reports none (older than this message) keeps Helm's default capabilities.
func (s *Server) setCapabilities(cluster string, c *flotillav1.Capabilities) {
	if c == nil || (c.KubeVersion == "" && len(c.ApiVersions) == 0) {
		return
	}
	caps := render.Capabilities{KubeVersion: c.KubeVersion}
	for _, v := range c.ApiVersions {
		if len(caps.APIVersions) == maxAPIVersions {
			s.log.Warn("agent reports too many API versions; the rest are left out", logging.KeyCluster, cluster, logging.KeyCount, len(c.ApiVersions))
			break
		}
		if v != "" && len(v) <= maxAPIVersionLength {
			caps.APIVersions = append(caps.APIVersions, v)
		}
	}
	if len(caps.KubeVersion) > maxAPIVersionLength {
		caps.KubeVersion = ""
	}
	if s.cfg.Fleet.SetCapabilities(cluster, caps) && s.cfg.Reconcile != nil {
		s.log.Info("cluster capabilities changed", logging.KeyCluster, cluster, logging.KeyKubeVersion, caps.KubeVersion, logging.KeyCount, len(caps.APIVersions))
		s.cfg.Reconcile.Trigger()
	}
}
