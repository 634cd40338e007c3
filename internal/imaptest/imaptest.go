// Package imaptest runs Dovecot's imaptest (the IMAP compliance and stress
// tester kept in ../shared/tools/imaptest) against an IMAP server and
// parses what it reports: failed and skipped scripted test groups, the
// "Error:" lines of protocol violations and state inconsistencies, stalled
// clients, and the stress run's operation totals.
//
// Every run is bounded by a timeout and runs in its own process group,
// which is killed when the run ends, so nothing outlives it.
package imaptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Dir returns the folder of the shared imaptest build: $ROOKERY_IMAPTEST_DIR
// if set, else "<module root>/../shared/tools/imaptest", where the module
// root is the nearest ancestor of the working directory that holds a go.mod.
func Dir() (string, error) {
	if d := os.Getenv("ROOKERY_IMAPTEST_DIR"); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("imaptest: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "tools", "imaptest"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("imaptest: no go.mod in %s or above (set ROOKERY_IMAPTEST_DIR)", wd)
		}
	}
}

// Available reports why imaptest cannot be run here, or nil if it can.
func Available() error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	for _, f := range []string{"run.sh", "imaptest", "gen_mbox.py"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			return fmt.Errorf("imaptest: %w", err)
		}
		if f != "gen_mbox.py" && st.Mode()&0o111 == 0 {
			return fmt.Errorf("imaptest: %s is not executable", filepath.Join(dir, f))
		}
	}
	return nil
}

// requireFailed makes only the first test of a test binary that finds
// imaptest missing fail; the later ones skip pointing at it.
var requireFailed atomic.Bool

// Require fails the test when imaptest is missing, so that "go test ./..."
// never reports its tests as passed when they did not run; only the first
// such test of a test binary fails, later ones skip. With
// ROOKERY_SKIP_IMAPTEST=1 they all skip.
func Require(t testing.TB) {
	t.Helper()
	require(t, Available())
}

func require(t testing.TB, err error) {
	t.Helper()
	switch {
	case err == nil:
	case os.Getenv("ROOKERY_SKIP_IMAPTEST") == "1":
		t.Skipf("%v (skipped: ROOKERY_SKIP_IMAPTEST=1)", err)
	case requireFailed.Swap(true):
		t.Skipf("%v (an earlier test of this package failed for it)", err)
	default:
		t.Fatalf("%v\nimaptest: these tests need Dovecot's imaptest built in ../shared/tools/imaptest"+
			" (or ROOKERY_IMAPTEST_DIR); set ROOKERY_SKIP_IMAPTEST=1 to skip them", err)
	}
}

// Config is one imaptest run.
type Config struct {
	Addr       string // host:port of the IMAP server
	User, Pass string
	// Box is the mailbox to use (imaptest's default is INBOX). Scripted
	// tests need one the user may create and delete.
	Box string
	// Test runs the scripted tests: "tests" (every group) or a path
	// relative to the imaptest folder, e.g. "tests/select". Empty means a
	// stress run.
	Test string
	// Stress: Mbox is the mbox file APPEND takes messages from, Clients
	// how many clients run at once, Secs how long.
	Mbox    string
	Clients int
	Secs    int
	// QResync makes the stress clients ENABLE QRESYNC and reselect with
	// it, checking the VANISHED and FETCH they are told.
	QResync bool
	// Timeout bounds the whole run; it is killed when it expires.
	Timeout time.Duration
}

func (c Config) args() ([]string, error) {
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, fmt.Errorf("imaptest: %w", err)
	}
	a := []string{"host=" + host, "port=" + port, "user=" + c.User, "pass=" + c.Pass}
	if c.Box != "" {
		a = append(a, "box="+c.Box)
	}
	if c.Test != "" {
		return append(a, "test="+c.Test), nil
	}
	if c.Mbox == "" || c.Clients <= 0 || c.Secs <= 0 {
		return nil, errors.New("imaptest: a stress run needs Mbox, Clients and Secs")
	}
	// Only the size of the run is given: imaptest's default mix (with
	// EXPUNGE) is what the reference figures were measured with.
	a = append(a, "mbox="+c.Mbox, "clients="+strconv.Itoa(c.Clients), "secs="+strconv.Itoa(c.Secs))
	if c.QResync {
		a = append(a, "qresync")
	}
	return a, nil
}

// Run runs imaptest and parses its output. A non-zero exit status is not
// an error (it is in Result.ExitCode): imaptest exits 2 when a scripted
// test fails. Errors are for runs that could not start or did not end
// before the timeout or ctx; the output gathered so far is then in the
// Result, which is never nil.
func Run(ctx context.Context, c Config) (*Result, error) {
	args, err := c.args()
	if err != nil {
		return &Result{}, err
	}
	dir, err := Dir()
	if err != nil {
		return &Result{}, err
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "run.sh"), args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = procAttr()
	// The whole group: run.sh may still be installing libdovecot when the
	// time is up.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	if cmd.Process != nil {
		// Nothing of the group may outlive the run, also on success.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	r := Parse(out.Bytes())
	if cmd.ProcessState != nil {
		r.ExitCode = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		return r, fmt.Errorf("imaptest: run killed: %w", ctx.Err())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return r, fmt.Errorf("imaptest: %w", err)
	}
	return r, nil
}

// GenMbox writes imaptest's deterministic stress mbox of n messages to
// path (gen_mbox.py; n <= 0 means its default of 200).
func GenMbox(ctx context.Context, path string, n int) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	args := []string{filepath.Join(dir, "gen_mbox.py"), path}
	if n > 0 {
		args = append(args, strconv.Itoa(n))
	}
	out, err := exec.CommandContext(ctx, "python3", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("imaptest: gen_mbox.py: %w\n%s", err, out)
	}
	return nil
}
