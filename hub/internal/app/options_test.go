package app

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestRemovalGraceFlag: --removal-grace defaults to 10 minutes, takes zero, and refuses a
// negative value naming the flag.
func TestRemovalGraceFlag(t *testing.T) {
	tests := []struct {
		args    []string
		want    time.Duration
		wantErr string
	}{
		{args: nil, want: 10 * time.Minute},
		{args: []string{"--removal-grace=30s"}, want: 30 * time.Second},
		{args: []string{"--removal-grace=0"}, want: 0},
		{args: []string{"--removal-grace=-1s"}, wantErr: "--removal-grace -1s"},
	}
	for _, tt := range tests {
		o := NewOptions()
		fs := pflag.NewFlagSet("hub", pflag.ContinueOnError)
		o.AddFlags(fs)
		if err := fs.Parse(append([]string{"--apps-dir", t.TempDir(), "--data-dir", t.TempDir()}, tt.args...)); err != nil {
			t.Fatal(err)
		}
		err := o.Validate()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want one naming %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || o.RemovalGrace != tt.want {
			t.Errorf("%v: grace %s, error %v; want %s", tt.args, o.RemovalGrace, err, tt.want)
		}
	}
}
