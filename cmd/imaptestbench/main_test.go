package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/imaptest"
)

// TestRunRookery runs the whole benchmark, tiny, against a Rookery
// backend only, so its code paths keep working without Cyrus. It checks
// that a row with a figure comes out, not how good the figure is.
func TestRunRookery(t *testing.T) {
	imaptest.Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, io.Discard, []int{2}, 2, 20, []targetKind{rookeryBackend}); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^Rookery backend \|\s+2 \|\s+[1-9]\d* \|`).Match(out.Bytes()) {
		t.Errorf("no figure for the Rookery backend:\n%s", out.String())
	}
}
