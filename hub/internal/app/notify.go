package app

import (
	"encoding/json"
	"log/slog"

	"github.com/flotilla-dev/flotilla/hub/internal/fleet"
	"github.com/flotilla-dev/flotilla/hub/internal/metrics"
	"github.com/flotilla-dev/flotilla/hub/internal/notify"
	"github.com/flotilla-dev/flotilla/hub/internal/store"
	"github.com/flotilla-dev/flotilla/shared/logging"
)

// newNotifier builds the notifier of --notifications, seeded with the persisted reports so a
// restart announces nothing already known; nil (a no-op) without the flag. It watches the
// clusters list returns (those this replica owns, when the hub is one of several).
func newNotifier(o *completedOptions, fl *fleet.Fleet, st *store.Store, list func() ([]fleet.ClusterVars, error), m *metrics.Hub, log *slog.Logger) (*notify.Notifier, error) {
	cfg := o.notifications
	if cfg == nil {
		return nil, nil
	}
	clusters := func() ([]string, error) {
		cs, err := list()
		if err != nil {
			return nil, err
		}
		names := make([]string, len(cs))
		for i, c := range cs {
			names[i] = c.Name
		}
		return names, nil
	}
	n := notify.New(cfg, fl, clusters, m.Notifications(), log)
	recs, err := st.ListStatus()
	if err != nil {
		log.Warn("notifications: status snapshots not read", logging.Err(err))
	}
	for _, rec := range recs {
		var r fleet.Report
		if json.Unmarshal(rec.Data, &r) == nil {
			n.Seed(rec.Cluster, &r)
		}
	}
	log.Info("notifications on", logging.KeySinks, len(cfg.Sinks))
	return n, nil
}
