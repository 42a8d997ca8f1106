// Package cli is the operator side of the `flotilla` binary: commands that talk to a hub over
// gRPC with the admin client certificate, and print tables or JSON.
package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/hub/internal/opclient"
	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

// Config is the operator config file the hub writes to DATA_DIR/admin.yaml.
type Config struct {
	// Hub is the hub's gRPC address, host:port.
	Hub string `json:"hub"`
	// CA, Cert and Key are PEM: the hub CA and the operator's client certificate and key.
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// EnvConfig names the environment variable that points at the config file.
const EnvConfig = "FLOTILLA_CONFIG"

// ConfigPath resolves the config file: the flag, else $FLOTILLA_CONFIG, else
// ~/.config/flotilla/config.
func ConfigPath(flag string) string {
	if flag != "" {
		return flag
	}
	if p := os.Getenv(EnvConfig); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return filepath.Join(".config", "flotilla", "config")
	}
	return filepath.Join(dir, "flotilla", "config")
}

// LoadConfig reads an operator config file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no operator config at %s: pass --config, set $%s, or copy DATA_DIR/admin.yaml from the hub there", path, EnvConfig)
	}
	if err != nil {
		return nil, err
	}
	var c Config
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if c.Hub == "" || c.CA == "" || c.Cert == "" || c.Key == "" {
		return nil, fmt.Errorf("%s: hub, ca, cert and key are required", path)
	}
	return &c, nil
}

// WriteConfig writes c to path with owner-only permissions.
func WriteConfig(path string, c *Config) error {
	data, err := yaml.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// statusWindow is how much of an answer the hub may send before the CLI acknowledges it: a
// whole page of status (at most 4 MiB) at once.
const statusWindow = 8 << 20

// Dial opens a TLS connection to the hub with the operator certificate (and opts).
func (c *Config) Dial(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(c.CA)) {
		return nil, errors.New("operator config: ca holds no certificate")
	}
	cert, err := tls.X509KeyPair([]byte(c.Cert), []byte(c.Key))
	if err != nil {
		return nil, fmt.Errorf("operator config: cert/key: %w", err)
	}
	host, _, err := net.SplitHostPort(c.Hub)
	if err != nil {
		return nil, fmt.Errorf("operator config: hub %q: %w", c.Hub, err)
	}
	creds := credentials.NewTLS(&tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: host, MinVersion: tls.VersionTLS13,
		NextProtos: []string{opclient.PriorityALPN}, // answered during a reconnect storm too
	})
	return grpc.NewClient(c.Hub, append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithInitialWindowSize(statusWindow),
		grpc.WithInitialConnWindowSize(statusWindow),
	}, opts...)...)
}

// client is what commands use.
type client struct {
	conn *grpc.ClientConn
	op   flotillav1.OperatorClient
	// target is the hub's address, from the config.
	target string
}

func (o *rootOptions) client(opts ...grpc.DialOption) (*client, error) {
	cfg, err := LoadConfig(ConfigPath(o.configPath))
	if err != nil {
		return nil, err
	}
	conn, err := cfg.Dial(opts...)
	if err != nil {
		return nil, err
	}
	return &client{conn: conn, op: flotillav1.NewOperatorClient(conn), target: cfg.Hub}, nil
}
