// Package cyrustest runs real Cyrus IMAP 3.6 murder components (mupdate
// master, backends, frontends) for interop tests, and offers the small
// helpers such tests need: free ports and loopback addresses, and a
// minimal IMAP client.
//
// It drives the Debian packages directly: each instance gets its own
// directory with a generated imapd.conf and cyrus.conf, sasldb users and
// its own Cyrus log, and runs under its own /usr/lib/cyrus/bin/master.
// install-cyrus.sh in this folder installs the packages. Every instance of
// a test is stopped and removed by t.Cleanup, also when the test fails
// half-way, and the next test process reaps instances whose process died.
//
// A test that needs Cyrus calls Require (Start does). Missing Cyrus fails
// the test with the set-up command to run, because a skip would let
// "go test ./..." print ok for tests that never ran; ROOKERY_SKIP_CYRUS=1
// turns that into a skip for machines that cannot run Cyrus.
package cyrustest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
)

// Credentials that every instance's sasldb holds.
const (
	AdminUser   = "admin" // in admins everywhere; an LMTP admin on backends and frontends
	AdminPass   = "adminpw"
	ProxyUser   = "proxy" // frontends proxy to backends as this user
	ProxyPass   = "proxypw"
	MupdateUser = "mupdate" // backends and frontends authenticate to the mupdate master as this user
	MupdatePass = "mupdatepw"
)

// cyrusBin is where the Debian packages install the Cyrus binaries.
const cyrusBin = "/usr/lib/cyrus/bin"

// SetupCommand is what installs everything the interop tests need.
const SetupCommand = "sudo internal/cyrustest/install-cyrus.sh"

// Available reports why real Cyrus cannot be used here, or nil if it can:
// not Linux, not root, or the packages not installed.
func Available() error {
	if runtime.GOOS != "linux" {
		return errors.New("cyrustest: real Cyrus runs on Linux only")
	}
	if os.Geteuid() != 0 {
		return errors.New("cyrustest: not root (the Cyrus master must start as root)")
	}
	for _, bin := range []string{"master", "mupdate", "imapd", "pop3d", "lmtpd", "ctl_cyrusdb", "ctl_mboxlist"} {
		if _, err := os.Stat(filepath.Join(cyrusBin, bin)); err != nil {
			return fmt.Errorf("cyrustest: Cyrus not installed: %w", err)
		}
	}
	if _, err := exec.LookPath("saslpasswd2"); err != nil {
		return fmt.Errorf("cyrustest: sasl2-bin not installed: %w", err)
	}
	if _, err := cyrusIDs(); err != nil {
		return err
	}
	return nil
}

// ids are the user and group that own an instance's files.
type ids struct{ uid, gid int }

// cyrusIDs looks up user cyrus and group mail, which the Debian packages
// create and under which the Cyrus master runs its services.
func cyrusIDs() (ids, error) {
	u, err := user.Lookup("cyrus")
	if err != nil {
		return ids{}, fmt.Errorf("cyrustest: Cyrus not installed: %w", err)
	}
	g, err := user.LookupGroup("mail")
	if err != nil {
		return ids{}, fmt.Errorf("cyrustest: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(g.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return ids{}, fmt.Errorf("cyrustest: %w", err)
	}
	return ids{uid, gid}, nil
}

// requireFailed makes only the first test of a process that finds Cyrus
// missing fail: one failure per package says all there is to say, and the
// others skip pointing at it.
var requireFailed atomic.Bool

// Require fails the test when real Cyrus is not available, naming the
// set-up command, so that a machine without Cyrus never reports interop
// tests as passed. Only the first such test of a test binary fails; later
// ones skip. With ROOKERY_SKIP_CYRUS=1 every one of them skips instead.
func Require(t testing.TB) {
	t.Helper()
	require(t, Available())
}

func require(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("ROOKERY_SKIP_CYRUS") == "1" {
		t.Skipf("%v (skipped: ROOKERY_SKIP_CYRUS=1)", err)
		return
	}
	if requireFailed.Swap(true) {
		t.Skipf("%v (an earlier test of this package failed for it)", err)
		return
	}
	t.Fatalf("%v\ncyrustest: the interop tests need real Cyrus 3.6: run %s and the tests as root,"+
		" or set ROOKERY_SKIP_CYRUS=1 to skip them", err, SetupCommand)
}

// RequireBinary is Require for another program the set-up command
// installs (Debian package pkg), such as slapd or saslauthd.
func RequireBinary(t testing.TB, path, pkg string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		require(t, fmt.Errorf("%s not installed (Debian package %s)", path, pkg))
	}
}

// RequireTool is RequireBinary for a program looked up on PATH; it
// returns the program's path.
func RequireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		require(t, fmt.Errorf("%s not installed (Debian package %s)", name, pkg))
	}
	return path
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago (it is
// bound to port 0 and closed again). Another process may take it before it
// is used; Start then fails clearly with "port(s) not available".
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cyrustest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeLoopbackAddr returns a random 127.0.0.N (N in 2..254) on which all the
// given ports can be bound right now. Use it for backends on the standard
// ports (143, 110, 2003), which Cyrus frontends need for POP3 and LMTP
// proxying (see Options.ServerName).
func FreeLoopbackAddr(t testing.TB, ports ...int) string {
	t.Helper()
	for range 100 {
		addr := "127.0.0." + strconv.Itoa(2+rand.IntN(253))
		if bindable(addr, ports) == nil {
			return addr
		}
	}
	t.Fatalf("cyrustest: no 127.0.0.N with ports %v free", ports)
	return ""
}

// bindable reports the first of ports that cannot be bound on addr now.
func bindable(addr string, ports []int) error {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			return fmt.Errorf("cyrustest: port(s) not available: %w", err)
		}
		l.Close()
	}
	return nil
}
