// Package pebblelog routes Pebble's logger into slog, for every Pebble
// store of the node (the mailbox list and the mail store).
package pebblelog

import (
	"context"
	"fmt"
	"log/slog"
)

// Logger is a pebble.Logger writing to a slog.Logger; Pebble's chatter
// (Infof) goes to Debug.
type Logger struct {
	Log *slog.Logger
	// Fatal, when set, is told of a Fatalf before the panic (it fails the
	// store, and logs the cause once).
	Fatal func(error)
}

// Infof implements pebble.Logger.
func (l Logger) Infof(format string, args ...any) {
	if l.Log.Enabled(context.Background(), slog.LevelDebug) {
		l.Log.Debug("pebble: " + fmt.Sprintf(format, args...))
	}
}

// Errorf implements pebble.Logger.
func (l Logger) Errorf(format string, args ...any) {
	l.Log.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf is called on broken invariants and corruption; Pebble's default
// exits the process, a panic at least lets tests and deferred code see it.
func (l Logger) Fatalf(format string, args ...any) {
	err := fmt.Errorf("pebble: "+format, args...)
	if l.Fatal != nil {
		l.Fatal(err)
	} else {
		l.Log.Error(err.Error())
	}
	panic(err)
}
