package app

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestAgentCertOptions: the certificate TTL and renewal grace are parsed, a TTL below one
// second or a negative grace is refused naming the flag, and the grace defaults to 7 days.
func TestAgentCertOptions(t *testing.T) {
	tests := []struct {
		args      []string
		want      string // error naming this; "" for none
		wantGrace time.Duration
	}{
		{args: nil, wantGrace: 7 * 24 * time.Hour},
		{args: []string{"--agent-cert-ttl", "2s", "--agent-cert-renewal-grace", "0"}},
		{args: []string{"--agent-cert-renewal-grace", "1h"}, wantGrace: time.Hour},
		{args: []string{"--agent-cert-ttl", "0"}, want: "--agent-cert-ttl"},
		{args: []string{"--agent-cert-ttl", "-1h"}, want: "--agent-cert-ttl"},
		{args: []string{"--agent-cert-renewal-grace", "-1s"}, want: "--agent-cert-renewal-grace"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o := NewOptions()
			o.AppsDir = t.TempDir()
			fs := pflag.NewFlagSet("hub", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Validate = %v, want an error naming %s", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.AgentCertRenewalGrace != tt.wantGrace {
				t.Errorf("grace = %s, want %s", o.AgentCertRenewalGrace, tt.wantGrace)
			}
		})
	}
}
