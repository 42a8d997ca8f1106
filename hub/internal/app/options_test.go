package app

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/hub/internal/metrics"
	"github.com/flotilla-dev/flotilla/hub/internal/server"
	"github.com/flotilla-dev/flotilla/shared/helpcheck"
)

// TestAppsRepoWithCredentialsRefused: --apps-repo with credentials in the URL is refused at
// flag validation, naming the flag and --repo-credentials and not repeating the credentials.
func TestAppsRepoWithCredentialsRefused(t *testing.T) {
	const canary = "apps-repo-canary-42"
	o := NewOptions()
	o.DataDir = t.TempDir()
	o.AppsRepo = "https://x-access-token:" + canary + "@git.example.com/org/apps.git"
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), `--apps-repo "https://git.example.com/org/apps.git"`) ||
		!strings.Contains(err.Error(), "--repo-credentials") || strings.Contains(err.Error(), canary) {
		t.Fatalf("Validate = %v, want --apps-repo refused without its credentials, pointing to --repo-credentials", err)
	}
	o.AppsRepo = "ssh://git@git.example.com/org/apps.git"
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate with an ssh user name = %v", err)
	}
}

// TestHelpValueNames: every command's --help names each flag's value by its type, never by
// back-quoted words of its usage, which pflag would take for the value name.
func TestHelpValueNames(t *testing.T) {
	problems, err := helpcheck.ValueNames(NewRootCommand())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

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
		o, err := validated(t, tt.args)
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

// TestProfilingFlag: the runtime profiles are served on the HTTP listener only with --profiling.
func TestProfilingFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		o := NewOptions()
		o.Profiling = on
		mux, err := httpMux(&completedOptions{Options: o}, nil, nil, metrics.New(nil), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/debug/pprof/heap?debug=1", nil))
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		if rec.Code != want || on && !strings.Contains(rec.Body.String(), "HeapInuse") {
			t.Errorf("--profiling=%t: GET /debug/pprof/heap = %d, want %d (body starts %.80q)", on, rec.Code, want, rec.Body.String())
		}
	}
}

// TestGCIdlePercentFlag: --gc-idle-percent defaults to 25 and tunes the collector; 0, or GOGC
// set in the environment, leaves it to Go; a negative value is refused naming the flag.
func TestGCIdlePercentFlag(t *testing.T) {
	tests := []struct {
		args    []string
		gogc    string
		want    int // the tuner's idle target; 0: no tuner
		wantErr string
	}{
		{args: nil, want: 25},
		{args: []string{"--gc-idle-percent=40"}, want: 40},
		{args: []string{"--gc-idle-percent=0"}, want: 0},
		{args: nil, gogc: "200", want: 0},
		{args: []string{"--gc-idle-percent=-5"}, wantErr: "--gc-idle-percent -5"},
	}
	for _, tt := range tests {
		o, err := validated(t, tt.args)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%v: error %v, want one naming %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		tuner := gcTuner(o, func(k string) string { return map[string]string{"GOGC": tt.gogc}[k] }, func() uint64 { return 0 }, slog.New(slog.DiscardHandler))
		got := 0
		if tuner != nil {
			got = tuner.Idle
		}
		if got != tt.want {
			t.Errorf("%v with GOGC=%q: tuner's idle target %d, want %d (0: no tuner)", tt.args, tt.gogc, got, tt.want)
		}
	}
}

// TestMaxHandshakesFlag: --max-handshakes defaults to server.DefaultMaxHandshakes; below 1 it
// is refused naming the flag.
func TestMaxHandshakesFlag(t *testing.T) {
	o, err := validated(t, nil)
	if err != nil || o.MaxHandshakes != server.DefaultMaxHandshakes {
		t.Fatalf("default: %d, %v; want %d", o.MaxHandshakes, err, server.DefaultMaxHandshakes)
	}
	if o, err = validated(t, []string{"--max-handshakes=32"}); err != nil || o.MaxHandshakes != 32 {
		t.Fatalf("--max-handshakes=32: %d, %v", o.MaxHandshakes, err)
	}
	if _, err := validated(t, []string{"--max-handshakes=0"}); err == nil || !strings.Contains(err.Error(), "--max-handshakes 0") {
		t.Errorf("--max-handshakes=0: error %v, want one naming the flag", err)
	}
}

// validated parses args (with an apps dir and a data dir) as `flotilla hub` flags and
// validates them.
func validated(t *testing.T, args []string) (*Options, error) {
	t.Helper()
	o := NewOptions()
	fs := pflag.NewFlagSet("hub", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(append([]string{"--apps-dir", t.TempDir(), "--data-dir", t.TempDir()}, args...)); err != nil {
		t.Fatal(err)
	}
	return o, o.Validate()
}
