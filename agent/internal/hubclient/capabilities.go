package hubclient

import (
	"context"
	"time"

	"github.com/flotilla-dev/flotilla/agent/internal/apply"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// Defaults of the capability checks.
const (
	DefaultCapabilitiesEvery = time.Minute
	capabilitiesTimeout      = 30 * time.Second
)

// discoverCapabilities asks for the cluster's capabilities within a time bound; ok is false
// when there is no discoverer or it failed (then the hub keeps what it has, or Helm's
// defaults).
func (c *Client) discoverCapabilities(ctx context.Context) (apply.Capabilities, bool) {
	if c.cfg.Capabilities == nil {
		return apply.Capabilities{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, capabilitiesTimeout)
	defer cancel()
	caps, err := c.cfg.Capabilities(ctx)
	if err != nil {
		c.log.Warn("cluster capabilities not discovered; the hub keeps the last it had", logging.Err(err))
		return apply.Capabilities{}, false
	}
	return caps, true
}

// watchCapabilities checks the cluster's capabilities every CapabilitiesEvery and sends them
// when they differ from last, what Hello carried.
func (c *Client) watchCapabilities(ctx context.Context, last apply.Capabilities) error {
	if c.cfg.Capabilities == nil {
		return nil
	}
	t := time.NewTicker(c.cfg.CapabilitiesEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		caps, ok := c.discoverCapabilities(ctx)
		if !ok || caps.Equal(last) {
			continue
		}
		last = caps
		c.log.Info("cluster capabilities changed", logging.KeyKubeVersion, caps.KubeVersion, logging.KeyCount, len(caps.APIVersions))
		c.out.enqueue(&flotillav1.AgentMessage{Msg: &flotillav1.AgentMessage_Capabilities{Capabilities: capabilitiesToProto(caps)}})
	}
}

func capabilitiesToProto(c apply.Capabilities) *flotillav1.Capabilities {
	return &flotillav1.Capabilities{KubeVersion: c.KubeVersion, ApiVersions: c.APIVersions}
}
