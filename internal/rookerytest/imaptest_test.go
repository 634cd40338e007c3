package rookerytest_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/imaptest"
	"github.com/rookery/rookery/internal/rookerytest"
)

// How long each stress run lasts. Four of them (10 and 50 clients, backend
// and frontend) make this test take about 2.5 minutes when the server
// keeps up, up to 3.5 when clients stall (imaptest then waits 30 s more
// for them); it runs beside the other packages within CI's 10 minutes.
const stressSecs = 30

var alice = rookerytest.User{Name: "alice", Pass: "alicepw"}

// TestImaptest runs Dovecot's imaptest against a Rookery backend and a
// Rookery frontend in front of two Rookery backends: the scripted
// compliance tests (every group that is not skipped must pass) and stress
// runs with the default mix, EXPUNGE included, with 10 and 50 clients.
// Any "Error:" line, any stalled client or a run that does not finish
// fails it. Each run gets a fresh topology.
func TestImaptest(t *testing.T) {
	imaptest.Require(t)
	mbox := filepath.Join(t.TempDir(), "stress.mbox")
	if err := imaptest.GenMbox(t.Context(), mbox, 0); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []rookerytest.Kind{rookerytest.Backend, rookerytest.Murder} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Run("scripted", func(t *testing.T) {
				top := boot(t, kind)
				r, err := imaptest.Run(t.Context(), imaptest.Config{
					Addr: top.IMAPAddr, User: alice.Name, Pass: alice.Pass,
					Box: "INBOX.imaptest", Test: "tests", Timeout: 3 * time.Minute,
				})
				check(t, r, err, 0)
				if !r.Summary {
					t.Error("imaptest printed no summary of the scripted tests")
				}
				if r.Failed > 0 || len(r.FailedGroups) > 0 {
					t.Errorf("%d groups failed: %s\n%s", r.Failed, strings.Join(r.FailedGroups, " "), strings.Join(r.Failures, "\n\n"))
				}
			})
			for _, clients := range []int{10, 50} {
				t.Run(fmt.Sprintf("stress-%d", clients), func(t *testing.T) {
					top := boot(t, kind)
					r, err := imaptest.Run(t.Context(), imaptest.Config{
						Addr: top.IMAPAddr, User: alice.Name, Pass: alice.Pass,
						Mbox: mbox, Clients: clients, Secs: stressSecs,
						// imaptest waits up to 30 s for clients after
						// the run; beyond that it is stuck.
						Timeout: (stressSecs + 60) * time.Second,
					})
					check(t, r, err, stressSecs)
					if r.Totals == nil {
						t.Error("imaptest printed no totals")
					} else if r.TotalOps() == 0 {
						t.Error("no operation was done")
					}
				})
			}
		})
	}
}

// boot starts a topology of kind with alice's INBOX, stopped by cleanup.
func boot(t *testing.T, kind rookerytest.Kind) *rookerytest.Topology {
	t.Helper()
	var logger *slog.Logger
	if os.Getenv("ROOKERY_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	top, err := rookerytest.Start(t.Context(), kind, t.TempDir(), logger, alice)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := top.Close(); err != nil {
			t.Error(err)
		}
	})
	return top
}

// check logs imaptest's report and fails on a run that did not end, a
// non-zero exit, any Error line and any stall.
func check(t *testing.T, r *imaptest.Result, err error, secs int) {
	t.Helper()
	t.Logf("imaptest:\n%s", r.Report(secs))
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(r.Output, 40))
	}
	if r.ExitCode != 0 {
		t.Errorf("imaptest exited with status %d", r.ExitCode)
	}
	if n := len(r.Errors); n > 0 {
		t.Errorf("%d Error lines, the first:\n%s", n, strings.Join(r.Errors[:min(n, 20)], "\n"))
	}
	if len(r.Stalls) > 0 {
		t.Errorf("%d clients stalled, the first reports:\n%s", r.StalledClients(), strings.Join(r.Stalls[:min(len(r.Stalls), 10)], "\n"))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
