package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/hub/internal/server"
	"github.com/flotilla-dev/flotilla/hub/internal/ui"
)

// UIOptions turn on the hub's own dashboard (--ui) on --http-listen, behind OpenID Connect.
type UIOptions struct {
	Enabled          bool
	Issuer           string
	ClientID         string
	ClientSecretFile string
	RedirectURL      string
}

// AddFlags binds the dashboard's flags.
func (o *UIOptions) AddFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.Enabled, "ui", o.Enabled, "serve the web dashboard on --http-listen, behind an OpenID Connect login (needs the --oidc-* flags)")
	fs.StringVar(&o.Issuer, "oidc-issuer", o.Issuer, "OpenID Connect issuer URL of the dashboard's login, e.g. https://accounts.example.com")
	fs.StringVar(&o.ClientID, "oidc-client-id", o.ClientID, "the dashboard's OpenID Connect client id")
	fs.StringVar(&o.ClientSecretFile, "oidc-client-secret-file", o.ClientSecretFile, "file holding the dashboard's OpenID Connect client secret")
	fs.StringVar(&o.RedirectURL, "oidc-redirect-url", o.RedirectURL, "the dashboard's callback as registered with the provider: https://HOST/auth/callback; when it is https every dashboard cookie is Secure, also when a proxy terminates TLS and talks plain HTTP to the hub")
}

// validate refuses --ui without OpenID Connect or without --http-listen, and --oidc-* flags
// without --ui.
func (o *UIOptions) validate(httpListen string) error {
	set := o.Issuer != "" || o.ClientID != "" || o.ClientSecretFile != "" || o.RedirectURL != ""
	if !o.Enabled {
		if set {
			return errors.New("--oidc-* flags configure the dashboard's login: add --ui")
		}
		return nil
	}
	var missing []string
	for flag, v := range map[string]string{"--oidc-issuer": o.Issuer, "--oidc-client-id": o.ClientID,
		"--oidc-client-secret-file": o.ClientSecretFile, "--oidc-redirect-url": o.RedirectURL} {
		if v == "" {
			missing = append(missing, flag)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		return fmt.Errorf("--ui serves the dashboard behind an OpenID Connect login and refuses to start without one: set %s", strings.Join(missing, ", "))
	}
	if httpListen == "" {
		return errors.New("--ui serves the dashboard on --http-listen: set it")
	}
	return nil
}

// readClientSecret reads --oidc-client-secret-file.
func (o *UIOptions) readClientSecret() (string, error) {
	if !o.Enabled {
		return "", nil
	}
	data, err := os.ReadFile(o.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("--oidc-client-secret-file: %w", err)
	}
	secret := strings.TrimSpace(string(data))
	if secret == "" {
		return "", fmt.Errorf("--oidc-client-secret-file %s is empty", o.ClientSecretFile)
	}
	return secret, nil
}

// oidcDiscoveryTimeout bounds the discovery of the provider at start.
const oidcDiscoveryTimeout = 30 * time.Second

// dashboard builds the hub's dashboard over its own Operator service, behind the login: every
// action is made, and audited, as "oidc:" and the signed-in identity.
func dashboard(ctx context.Context, o *completedOptions, srv *server.Server, log *slog.Logger) (*ui.Handler, http.Handler, error) {
	dctx, cancel := context.WithTimeout(ctx, oidcDiscoveryTimeout)
	defer cancel()
	login, err := ui.NewLogin(dctx, ui.OIDC{Issuer: o.UI.Issuer, ClientID: o.UI.ClientID, ClientSecret: o.oidcClientSecret,
		RedirectURL: o.UI.RedirectURL}, nil, log)
	if err != nil {
		return nil, nil, fmt.Errorf("--ui: %w", err)
	}
	return ui.Behind(login, ui.Config{Backend: srv.Local(), Logger: log}, server.AsOperator)
}
