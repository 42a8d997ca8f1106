package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line      string
		wantLevel slog.Level
		wantText  string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", slog.LevelDebug, "Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Suspect hub-c has failed, no acks received", slog.LevelDebug, "Suspect hub-c has failed, no acks received"},
		{"[WARN] memberlist: Refuting a suspect message (from: hub-a)", slog.LevelWarn, "Refuting a suspect message (from: hub-a)"},
		{"[ERR] memberlist: Failed to send gossip to 10.0.0.1:7946", slog.LevelWarn, "Failed to send gossip to 10.0.0.1:7946"},
		{"[ERR] Failed to shutdown transport: x", slog.LevelWarn, "Failed to shutdown transport: x"},
		{"no level", slog.LevelDebug, "no level"},
	}
	for _, tt := range tests {
		level, text := parseLine(tt.line)
		if level != tt.wantLevel || text != tt.wantText {
			t.Errorf("parseLine(%q) = %v %q, want %v %q", tt.line, level, text, tt.wantLevel, tt.wantText)
		}
	}
}

func TestStdLoggerWritesToSlog(t *testing.T) {
	var buf bytes.Buffer
	l := newStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})))
	l.Printf("[DEBUG] memberlist: dropped below warn")
	l.Printf("[ERR] memberlist: Failed to send gossip to %s", "10.0.0.1:7946")
	got := buf.String()
	for _, want := range []string{"level=WARN", "msg=memberlist", "source=memberlist", `detail="Failed to send gossip to 10.0.0.1:7946"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log output %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "dropped below warn") {
		t.Errorf("debug line logged at warn level: %q", got)
	}
}
