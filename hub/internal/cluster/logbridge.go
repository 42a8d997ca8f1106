package cluster

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/flotilla-dev/flotilla/shared/logging"
)

// keyDetail carries the text of a line memberlist logged.
const keyDetail = "detail"

// newStdLogger returns a *log.Logger, as memberlist wants, that writes into l.
// memberlist marks each line with a level ("[WARN] memberlist: ..."): errors
// and warnings become slog warnings, everything else debug, since memberlist
// reports routine gossip at INFO and we log membership changes ourselves.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(logWriter{log: l.With(logging.KeySource, "memberlist")}, "", 0)
}

type logWriter struct{ log *slog.Logger }

var _ io.Writer = logWriter{}

func (w logWriter) Write(p []byte) (int, error) {
	level, text := parseLine(string(p))
	if w.log.Enabled(context.Background(), level) {
		w.log.Log(context.Background(), level, "memberlist", keyDetail, text)
	}
	return len(p), nil
}

func parseLine(line string) (slog.Level, string) {
	line = strings.TrimSpace(line)
	level := slog.LevelDebug
	for _, p := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[ERR]", slog.LevelWarn},
		{"[ERROR]", slog.LevelWarn},
		{"[WARN]", slog.LevelWarn},
		{"[INFO]", slog.LevelDebug},
		{"[DEBUG]", slog.LevelDebug},
	} {
		if rest, ok := strings.CutPrefix(line, p.prefix); ok {
			level, line = p.level, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	return level, line
}
