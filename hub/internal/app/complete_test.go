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
	ignoreGood := write("ignore.yaml", "- {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n- {group: admissionregistration.k8s.io, kind: '*WebhookConfiguration', jqPathExpressions: ['.webhooks[].clientConfig.caBundle']}\n")
	ignoreBad := write("ignore-bad.yaml", "- {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}\n- {kind: Service, jsonPointers: [spec/clusterIP]}\n")
	ignoreUnknown := write("ignore-unknown.yaml", "- {kind: Service, jsonPointer: [/spec/clusterIP]}\n")
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
		{"ignore differences", func(o *Options) { o.IgnoreDifferences = ignoreGood }, ""},
		{"bad ignore differences", func(o *Options) { o.IgnoreDifferences = ignoreBad },
			`--ignore-differences: ` + ignoreBad + `: [1].jsonPointers[0]: "spec/clusterIP" is not a JSON pointer: it must start with "/"`},
		{"unknown field in ignore differences", func(o *Options) { o.IgnoreDifferences = ignoreUnknown }, `--ignore-differences: ` + ignoreUnknown + `: unknown field "[0].jsonPointer"`},
		{"missing ignore differences", func(o *Options) { o.IgnoreDifferences = missing }, "--ignore-differences: "},
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
			case tc.want == "" && o.IgnoreDifferences != "" && (len(c.ignoreDifferences) != 2 || c.ignoreDifferences[1].JQPathExpressions[0] != ".webhooks[].clientConfig.caBundle"):
				t.Fatalf("ignoreDifferences = %+v, want the file's two rules", c.ignoreDifferences)
			}
			if _, err := os.Stat(o.DataDir); !os.IsNotExist(err) {
				t.Fatalf("Complete touched --data-dir: %v", err)
			}
		})
	}
}
