package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestComplete: every file a flag names is read before the hub starts anything, and a bad one
// is refused with an error naming the flag and the file.
func TestComplete(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := write("secret", "  s3cret\n")
	empty := write("empty", "\n")
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name string
		set  func(o *Options)
		want string // in the error; empty: none
	}{
		{"nothing to read", func(*Options) {}, ""},
		{"webhook secret", func(o *Options) { o.WebhookSecret = secret }, ""},
		{"empty webhook secret", func(o *Options) { o.WebhookSecret = empty }, "--webhook-secret-file " + empty + " is empty"},
		{"missing webhook secret", func(o *Options) { o.WebhookSecret = missing }, "--webhook-secret-file: "},
		{"missing credentials", func(o *Options) { o.RepoCredentials = missing }, "--repo-credentials: "},
		{"missing notifications", func(o *Options) { o.Notifications = missing }, "--notifications: "},
		{"missing gossip key", func(o *Options) { o.Replicas.GossipListen, o.Replicas.GossipKeyFile = "127.0.0.1:0", missing }, "hub replicas: --gossip-key-file: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := NewOptions()
			o.DataDir = filepath.Join(dir, "data-"+tc.name)
			tc.set(o)
			c, err := o.Complete()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Complete = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Complete = %v, want an error with %q", err, tc.want)
			case tc.want == "" && o.WebhookSecret != "" && string(c.webhookSecret) != "s3cret":
				t.Fatalf("webhook secret %q, want it trimmed", c.webhookSecret)
			}
			if _, err := os.Stat(o.DataDir); !os.IsNotExist(err) {
				t.Fatalf("Complete touched --data-dir: %v", err)
			}
		})
	}
}
