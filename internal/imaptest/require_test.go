package imaptest

import (
	"errors"
	"fmt"
	"testing"
)

// recorder is a testing.TB that records Skipf and Fatalf instead of
// ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

// TestRequire checks that missing imaptest fails the first test that
// needs it, skips the later ones, and skips all with ROOKERY_SKIP_IMAPTEST=1.
func TestRequire(t *testing.T) {
	missing := errors.New("imaptest: missing")
	defer requireFailed.Store(requireFailed.Load())
	requireFailed.Store(false)
	t.Setenv("ROOKERY_SKIP_IMAPTEST", "")
	for n, want := range []string{"fail", "skip"} {
		r := &recorder{TB: t}
		require(r, missing)
		if got := map[bool]string{true: "fail", false: "skip"}[r.failed != ""]; got != want || (r.failed == "") == (r.skipped == "") {
			t.Fatalf("test %d: failed %q, skipped %q; want a %s", n+1, r.failed, r.skipped, want)
		}
	}
	requireFailed.Store(false)
	t.Setenv("ROOKERY_SKIP_IMAPTEST", "1")
	r := &recorder{TB: t}
	require(r, missing)
	if r.skipped == "" || r.failed != "" {
		t.Fatalf("ROOKERY_SKIP_IMAPTEST=1: failed %q, skipped %q; want a skip", r.failed, r.skipped)
	}
}
