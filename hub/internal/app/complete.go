package app

import (
	"fmt"
	"os"
	"strings"

	"github.com/flotilla-dev/flotilla/hub/internal/apps"
	"github.com/flotilla-dev/flotilla/hub/internal/charts"
	"github.com/flotilla-dev/flotilla/hub/internal/notify"
	"github.com/flotilla-dev/flotilla/hub/internal/source"
	"github.com/flotilla-dev/flotilla/shared/ignore"
)

// completedOptions are the Options with every file they name read and checked: what the hub
// runs with. Completing has no side effects; runHub starts nothing before it succeeded.
type completedOptions struct {
	*Options
	// webhookSecret signs Git push webhooks; nil turns the endpoint off.
	webhookSecret []byte
	// repoCredentials of --repo-credentials; nil without it.
	repoCredentials *source.Credentials
	// notifications of --notifications; nil without it.
	notifications *notify.Config
	// gossipKeys of --gossip-key-file; nil for a hub that runs alone.
	gossipKeys [][]byte
	// ignoreDifferences of --ignore-differences: rules every app gets before its own.
	ignoreDifferences []ignore.Rule
	// charts fetches charts from Helm repositories and OCI registries (--chart-* flags, the
	// credentials of --repo-credentials).
	charts *charts.Fetcher
	// oidcClientSecret of --oidc-client-secret-file, for the dashboard's login (--ui).
	oidcClientSecret string
}

// Complete reads and checks the files the options name (call it after Validate). Its errors
// name the flag and the file.
func (o *Options) Complete() (*completedOptions, error) {
	c := &completedOptions{Options: o}
	if o.Replicas.enabled() {
		keys, err := readGossipKeys(o.Replicas.GossipKeyFile)
		if err != nil {
			return nil, fmt.Errorf("hub replicas: %w", err)
		}
		c.gossipKeys = keys
	}
	if o.Notifications != "" {
		cfg, err := notify.LoadConfig(o.Notifications)
		if err != nil {
			return nil, fmt.Errorf("--notifications: %w", err)
		}
		c.notifications = cfg
	}
	if o.RepoCredentials != "" {
		creds, err := source.LoadCredentials(o.RepoCredentials)
		if err != nil {
			return nil, fmt.Errorf("--repo-credentials: %w", err)
		}
		c.repoCredentials = creds
	}
	fetcher, err := o.Charts.fetcher(o.DataDir, c.repoCredentials)
	if err != nil {
		return nil, err
	}
	c.charts = fetcher
	if o.IgnoreDifferences != "" {
		data, err := os.ReadFile(o.IgnoreDifferences)
		if err != nil {
			return nil, fmt.Errorf("--ignore-differences: %w", err)
		}
		if c.ignoreDifferences, err = apps.ParseIgnoreDifferences(o.IgnoreDifferences, data); err != nil {
			return nil, fmt.Errorf("--ignore-differences: %w", err)
		}
	}
	if c.oidcClientSecret, err = o.UI.readClientSecret(); err != nil {
		return nil, err
	}
	if o.WebhookSecret != "" {
		secret, err := os.ReadFile(o.WebhookSecret)
		if err != nil {
			return nil, fmt.Errorf("--webhook-secret-file: %w", err)
		}
		c.webhookSecret = []byte(strings.TrimSpace(string(secret)))
		if len(c.webhookSecret) == 0 {
			return nil, fmt.Errorf("--webhook-secret-file %s is empty", o.WebhookSecret)
		}
	}
	return c, nil
}
