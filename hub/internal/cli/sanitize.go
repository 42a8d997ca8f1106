package cli

import (
	"strings"
	"unicode/utf8"
)

// clean makes text the CLI did not write (agents' status messages, drift, versions and
// revisions; Git's commit messages, authors and errors) safe to print in a table cell:
// terminal escape sequences (CSI, OSC, DCS, ...) and control characters are removed, tabs and
// newlines become spaces, invalid UTF-8 becomes U+FFFD, and Unicode bidirectional overrides
// are dropped. JSON and YAML output is escaped by its encoders instead.
func clean(s string) string { return sanitize(s, false) }

// cleanLines is clean for multi-line text (diffs, error messages): newlines and tabs stay.
func cleanLines(s string) string { return sanitize(s, true) }

func sanitize(s string, lines bool) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == 0x1b: // ESC
			i += escapeLen(s[i:])
			continue
		case r == '\n' || r == '\t':
			if lines {
				b.WriteRune(r)
			} else {
				b.WriteByte(' ')
			}
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || bidi(r):
			// Other C0 controls (CR, BEL, BS, ...), DEL, C1 controls (0x9b is a CSI of its
			// own): dropped.
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// safe reports whether s is printable as it is (the common case, without allocating).
func safe(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == utf8.RuneError || bidi(r) {
			return false
		}
	}
	return true
}

// bidi reports Unicode's explicit bidirectional formatting characters, which reorder what a
// terminal shows (embeddings, overrides and isolates).
func bidi(r rune) bool { return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) }

// escapeLen is the length of the escape sequence at the start of s (which starts with ESC):
// a CSI (ESC [ parameters intermediates final), a string sequence (OSC ESC ], DCS ESC P,
// SOS ESC X, PM ESC ^, APC ESC _) up to its BEL or ST terminator, or ESC with intermediates
// and a final byte. An unterminated sequence runs to the end of s.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		i := 2
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
			i++ // parameters and intermediates
		}
		if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
			i++ // final byte
		}
		return i
	case ']', 'P', 'X', '^', '_':
		for i := 2; i < len(s); i++ {
			if s[i] == 0x07 {
				return i + 1
			}
			if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\' {
				return i + 2
			}
		}
		return len(s)
	default:
		i := 1
		for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
			i++ // intermediates, as in ESC ( B
		}
		if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
			i++
		}
		return i
	}
}
