package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestChartFlags: the --chart-* sizes take quantities, default to the fetcher's defaults,
// and a cache smaller than the largest chart or a bad size is refused naming the flag.
func TestChartFlags(t *testing.T) {
	tests := []struct {
		args                  []string
		cache, max, expanded  int64
		wantParseErr, wantErr string
	}{
		{args: nil, cache: 256 << 20, max: 10 << 20, expanded: 50 << 20},
		{args: []string{"--chart-cache-size=2Gi", "--chart-max-size=1Mi", "--chart-max-expanded-size=5000000"}, cache: 2 << 30, max: 1 << 20, expanded: 5000000},
		{args: []string{"--chart-cache-size=1Mi", "--chart-max-size=2Mi"}, wantErr: "--chart-cache-size 1Mi: smaller than --chart-max-size 2Mi"},
		{args: []string{"--chart-max-size=0"}, wantErr: "--chart-max-size and --chart-max-expanded-size: must be positive"},
		{args: []string{"--chart-cache-size=lots"}, wantParseErr: `invalid argument "lots" for "--chart-cache-size" flag: "lots" is not a size such as 512Mi or 1Gi`},
	}
	for _, tt := range tests {
		o := NewOptions()
		fs := pflag.NewFlagSet("hub", pflag.ContinueOnError)
		fs.SetOutput(&strings.Builder{})
		o.AddFlags(fs)
		err := fs.Parse(append([]string{"--apps-dir", t.TempDir(), "--data-dir", t.TempDir()}, tt.args...))
		if tt.wantParseErr != "" {
			if err == nil || err.Error() != tt.wantParseErr {
				t.Errorf("%v: parse error %v, want %q", tt.args, err, tt.wantParseErr)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		err = o.Validate()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want one naming %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		c := o.Charts
		if err != nil || int64(c.CacheSize) != tt.cache || int64(c.MaxSize) != tt.max || int64(c.MaxExpandedSize) != tt.expanded {
			t.Errorf("%v: sizes %d %d %d, error %v; want %d %d %d", tt.args, c.CacheSize, c.MaxSize, c.MaxExpandedSize, err, tt.cache, tt.max, tt.expanded)
		}
	}
}

// TestCompleteMakesTheChartFetcher: Complete makes the fetcher without writing its cache
// directory, and refuses a --chart-ca-file that is missing or holds no certificate.
func TestCompleteMakesTheChartFetcher(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not-pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		caFile, want string
	}{
		{"", ""},
		{filepath.Join(dir, "missing"), "--chart-ca-file: open " + filepath.Join(dir, "missing")},
		{notPEM, "--chart-ca-file " + notPEM + ": no PEM certificate"},
	} {
		o := NewOptions()
		o.DataDir = filepath.Join(dir, "data")
		o.Charts.CAFile = tc.caFile
		c, err := o.Complete()
		if tc.want != "" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q: Complete = %v, want %q", tc.caFile, err, tc.want)
			}
			continue
		}
		if err != nil || c.charts == nil {
			t.Fatalf("Complete = %v, fetcher %v", err, c.charts)
		}
		if _, err := os.Stat(o.DataDir); !os.IsNotExist(err) {
			t.Errorf("Complete wrote %s", o.DataDir)
		}
	}
}
