package cyrustest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLaunch checks the testing.TB-free life cycle: Launch, a greeting from
// the master, Relaunch bringing up a new master on the same port, Close
// stopping it and removing its directory.
func TestLaunch(t *testing.T) {
	Require(t)
	i, err := Launch(RoleMupdateMaster, Options{MupdatePort: FreePort(t), ReadyTimeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			i.Close()
		}
	}()
	greets(t, i.MupdateAddr())

	first := i.MasterPID
	if err := i.Relaunch(); err != nil {
		t.Fatal(err)
	}
	if i.MasterPID == first || i.MasterPID == 0 {
		t.Errorf("master pid %d after Relaunch, was %d", i.MasterPID, first)
	}
	greets(t, i.MupdateAddr())

	closed = true
	if err := i.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(i.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s still there after Close: %v", i.Dir, err)
	}
	if _, err := net.DialTimeout("tcp", i.MupdateAddr(), time.Second); err == nil {
		t.Fatalf("master still answers on %s after Close", i.MupdateAddr())
	}
	if err := i.Close(); err != nil {
		t.Fatalf("second Close: %v, want nil", err)
	}
}

// greets fails the test unless an MUPDATE server greets on addr.
func greets(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the greeting: %v", err)
		}
		if strings.HasPrefix(line, "* OK MUPDATE") {
			return
		}
	}
}

// TestLaunchUnknownRole checks that a bad role fails without leaving a
// directory behind.
func TestLaunchUnknownRole(t *testing.T) {
	Require(t)
	if _, err := Launch("replica", Options{}); err == nil || !strings.Contains(err.Error(), "unknown role") {
		t.Fatalf("Launch(replica) = %v, want an unknown role error", err)
	}
}

// TestLaunchAt checks the life cycle the example topologies use: an
// instance in a chosen directory below a 0700 parent, found again by Open
// from its instance.env, and StopDir stopping it, also the services left
// behind when its master was SIGKILLed.
func TestLaunchAt(t *testing.T) {
	Require(t)
	dir := filepath.Join(t.TempDir(), "mm")
	t.Cleanup(func() {
		if err := StopDir(dir); err != nil {
			t.Error(err)
		}
	})
	i, err := LaunchAt(dir, RoleMupdateMaster, Options{MupdatePort: FreePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	greets(t, i.MupdateAddr())
	o, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if o.MasterPID != i.MasterPID || o.MupdateAddr() != i.MupdateAddr() || o.ServerName != i.ServerName || o.Role != i.Role {
		t.Fatalf("Open found %+v, want %+v", o, i)
	}
	if _, err := LaunchAt(dir, RoleMupdateMaster, Options{MupdatePort: FreePort(t)}); err == nil {
		t.Fatal("a second LaunchAt on a running instance worked")
	}

	services := instancePIDs(dir, 0)
	if len(services) < 2 {
		t.Fatalf("processes of the instance: %v, want the master and its mupdate", services)
	}
	if err := syscall.Kill(i.MasterPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); alive(i.MasterPID); time.Sleep(pollEvery) {
		if time.Now().After(deadline) {
			t.Fatalf("master %d survives SIGKILL", i.MasterPID)
		}
	}
	if left := instancePIDs(dir, 0); len(left) == 0 {
		t.Fatal("no service outlived its master; the test proves nothing")
	}
	if err := StopDir(dir); err != nil {
		t.Fatal(err)
	}
	if left := instancePIDs(dir, 0); len(left) > 0 {
		t.Fatalf("processes %v left after StopDir", left)
	}
	if _, err := net.DialTimeout("tcp", i.MupdateAddr(), time.Second); err == nil {
		t.Fatalf("something still answers on %s", i.MupdateAddr())
	}
}

// TestLaunchFailures checks that a start that cannot work fails quickly
// with its reason and leaves neither processes nor a directory behind:
// a port someone else holds, and a backend whose mupdate master does not
// answer (Cyrus's master exits when the START push fails).
func TestLaunchFailures(t *testing.T) {
	Require(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port
	nobody := FreePort(t)

	for _, c := range []struct {
		name, want string
		opt        Options
	}{
		{"port taken", "not available", Options{Master: "127.0.0.1:1", IMAPPort: busy}},
		{"master unreachable", "exited", Options{Master: net.JoinHostPort("127.0.0.1", strconv.Itoa(nobody)), IMAPPort: FreePort(t)}},
		{"bad options", "needs Master", Options{IMAPPort: FreePort(t)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before, _ := filepath.Glob(filepath.Join(baseDir, dirPrefix+"*"))
			start := time.Now()
			i, err := Launch(RoleBackend, c.opt)
			if err == nil {
				i.Close()
				t.Fatal("Launch worked")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Launch: %v; want an error with %q", err, c.want)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("Launch took %v to fail", d)
			}
			after, _ := filepath.Glob(filepath.Join(baseDir, dirPrefix+"*"))
			for _, d := range after {
				if !slices.Contains(before, d) {
					t.Errorf("%s left behind", d)
				}
			}
		})
	}
}

// failedTB is a testing.TB whose test has failed; it records what is
// logged.
type failedTB struct {
	testing.TB
	logged strings.Builder
}

func (f *failedTB) Failed() bool { return true }
func (f *failedTB) Log(a ...any) { fmt.Fprintln(&f.logged, a...) }

// TestCleanupShowsLogs checks that the cleanup of a failed test shows the
// instance's own Cyrus log, then removes the instance.
func TestCleanupShowsLogs(t *testing.T) {
	Require(t)
	i, err := Launch(RoleMupdateMaster, Options{MupdatePort: FreePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	f := &failedTB{TB: t}
	i.cleanup(f)
	if !strings.Contains(f.logged.String(), i.Name+"/ctl_cyrusdb[") || !strings.Contains(f.logged.String(), "log/syslog") {
		t.Errorf("cleanup of a failed test logged:\n%s\nwant the tail of %s", f.logged.String(), i.logFile())
	}
	if _, err := os.Stat(i.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there after cleanup: %v", i.Dir, err)
	}
}
