package membership

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// newStdLogger gives memberlist, which logs through a *log.Logger, a
// logger that feeds l.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

// logWriter turns memberlist's lines ("[LEVEL] memberlist: text
// from=addr") into slog records. log.Logger makes one Write per line and
// serialises them.
type logWriter struct{ log *slog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	level, msg, remote := parseLine(string(p))
	ctx := context.Background()
	if !w.log.Enabled(ctx, level) {
		return len(p), nil
	}
	if remote != "" {
		w.log.Log(ctx, level, msg, "remote", remote)
	} else {
		w.log.Log(ctx, level, msg)
	}
	return len(p), nil
}

// parseLine splits a memberlist line into a level, the text and the peer
// address it names. Memberlist's ERR lines are about peers (a failed ping,
// a message that would not decrypt), not about this node, and come in
// bursts when a member dies: they are warnings here. Its DEBUG lines
// (every stream connection, every push/pull) are debug.
func parseLine(line string) (slog.Level, string, string) {
	line = strings.TrimSpace(line)
	level := slog.LevelInfo
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if tag, text, ok := strings.Cut(rest, "] "); ok {
			switch tag {
			case "DEBUG", "TRACE":
				level = slog.LevelDebug
			case "WARN", "ERR", "ERROR":
				level = slog.LevelWarn
			}
			line = text
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	var remote string
	if i := strings.LastIndex(line, " from="); i >= 0 && !strings.Contains(line[i+len(" from="):], " ") {
		line, remote = line[:i], line[i+len(" from="):]
	}
	return level, line, remote
}
