package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"testing"
	"time"
)

// TestRunRookery runs the whole benchmark, tiny, against Rookery only, so
// its code paths keep working without Cyrus: it builds cmd/node, starts
// the murder as child processes, opens IDLE sessions and ends them. It
// checks that the rows have figures, not how good they are.
func TestRunRookery(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	o := options{sessions: 60, perUser: 20, workers: 4, backends: 2, script: scriptIdle,
		loginFor: 500 * time.Millisecond, settle: 100 * time.Millisecond}
	if err := run(ctx, o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{`session setups/s \(connect, idle\)`, `LOGIN\+LOGOUT/s, fresh connections, sessions idling`,
		`frontend KiB per session`, `backend KiB per session`, `frontend goroutines per session`} {
		if !regexp.MustCompile(`(?m)^` + row + ` +\| +-?\d`).Match(out.Bytes()) {
			t.Errorf("no figure for %q:\n%s", row, out.String())
		}
	}
}
