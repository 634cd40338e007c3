package cyrustest

import (
	"bufio"
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestLaunch checks the testing.TB-free life cycle: Launch, a greeting from
// the master, Close stopping it and removing its directory.
func TestLaunch(t *testing.T) {
	Require(t)
	i, err := Launch(RoleMupdateMaster, Options{MupdatePort: FreePort(t)})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			i.Close()
		}
	}()
	c, err := net.DialTimeout("tcp", i.MupdateAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the greeting: %v", err)
		}
		if strings.HasPrefix(line, "* OK MUPDATE") {
			break
		}
	}
	c.Close()

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

// TestLaunchUnknownRole checks that a bad role fails without leaving a
// directory behind.
func TestLaunchUnknownRole(t *testing.T) {
	Require(t)
	if _, err := Launch("replica", Options{}); err == nil || !strings.Contains(err.Error(), "unknown role") {
		t.Fatalf("Launch(replica) = %v, want an unknown role error", err)
	}
}
