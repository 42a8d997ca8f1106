package cli

import (
	"bytes"
	"strings"
	"testing"

	flotillav1 "github.com/flotilla-dev/flotilla/proto/flotilla/v1"
)

func TestClean(t *testing.T) {
	tests := []struct{ name, in, cell, lines string }{
		{"plain", "Synced: 3 objects applied", "Synced: 3 objects applied", "Synced: 3 objects applied"},
		{"unicode kept", "déploiement prêt ✓", "déploiement prêt ✓", "déploiement prêt ✓"},
		{"CSI colour", "\x1b[31mred\x1b[0m text", "red text", "red text"},
		{"clear screen", "\x1b[H\x1b[2Jgone", "gone", "gone"},
		{"cursor up and erase line", "ok\x1b[1A\x1b[2K", "ok", "ok"},
		{"private CSI", "\x1b[?1049hx", "x", "x"},
		{"OSC title with BEL", "\x1b]0;pwned\x07title", "title", "title"},
		{"OSC 8 hyperlink with ST", "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", "click", "click"},
		{"DCS", "a\x1bPq#0;2;0;0;0\x1b\\b", "ab", "ab"},
		{"charset designation", "\x1b(Bplain", "plain", "plain"},
		{"unterminated OSC", "x\x1b]0;no end", "x", "x"},
		{"lone ESC at end", "x\x1b", "x", "x"},
		{"carriage return", "Healthy\rDegraded", "HealthyDegraded", "HealthyDegraded"},
		{"BEL and backspace", "a\x07b\x08c", "abc", "abc"},
		{"DEL", "a\x7fb", "ab", "ab"},
		{"C1 CSI", "a\u009b31mb", "a31mb", "a31mb"},
		{"raw 0x9b byte", "a\x9b2Jb", "a\uFFFD2Jb", "a\uFFFD2Jb"},
		{"newline and tab", "line1\nline2\tend", "line1 line2 end", "line1\nline2\tend"},
		{"bidi override", "abc\u202Efed\u202C", "abcfed", "abcfed"},
		{"bidi isolate", "\u2067x\u2069", "x", "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := clean(tt.in); got != tt.cell {
				t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.cell)
			}
			if got := cleanLines(tt.in); got != tt.lines {
				t.Errorf("cleanLines(%q) = %q, want %q", tt.in, got, tt.lines)
			}
		})
	}
}

// TestStatusTableEscapesAgentText: what an agent reports (sync, health, revisions, message)
// reaches the terminal without escape sequences or control characters, one row per line.
func TestStatusTableEscapesAgentText(t *testing.T) {
	rows := []*flotillav1.AppClusterStatus{{
		Cluster: "edge-1", App: "api", Sync: "Synced\x1b[2J", Health: "Healthy\r\x1b[32mDegraded",
		AppliedRevision: "\x1b]0;x\x07abcdef0123", HealthyRevision: "\x1b[1A12345678",
		Message: "done\nFAKE-ROW\x07\x1b]8;;https://evil.example/\x1b\\link\x1b]8;;\x1b\\",
	}}
	for _, out := range []string{"table", "wide"} {
		var b bytes.Buffer
		if err := printStatus(&b, rows, out); err != nil {
			t.Fatal(err)
		}
		s := b.String()
		for _, r := range s {
			if r < 0x20 && r != '\n' {
				t.Errorf("-o %s prints control character %q:\n%q", out, r, s)
			}
		}
		if n := strings.Count(s, "\n"); n != 4 {
			t.Errorf("-o %s prints %d lines for one row, want a header, the row, a blank line and the dashboard footer:\n%s", out, n, s)
		}
		if !strings.Contains(s, "HealthyDegraded") {
			t.Errorf("-o %s lost the text around the escapes:\n%s", out, s)
		}
	}
}
