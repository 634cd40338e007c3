package cyrustest

import (
	"bufio"
	"errors"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"
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
	if !slices.Contains(i.args, "--timeout") || !slices.Contains(i.args, "45") {
		t.Errorf("harness arguments %q do not carry the ready timeout", i.args)
	}
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
