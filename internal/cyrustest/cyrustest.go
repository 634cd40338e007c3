// Package cyrustest runs real Cyrus IMAP 3.6 murder components (mupdate
// master, backends, frontends) from Go tests through the shared shell
// harness murder.sh, and offers the small helpers such tests need: free
// ports and loopback addresses, and a minimal IMAP client.
//
// Every instance lives in its own directory under /tmp and is stopped and
// removed by t.Cleanup, also when the test fails half-way. Cyrus needs root
// and the Debian packages; use Require (Start calls it too) so that tests
// skip cleanly on machines without them.
package cyrustest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// Credentials that the harness creates in every instance's sasldb.
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

// Dir returns the directory of the shared Cyrus harness: $ROOKERY_CYRUS_DIR
// if set, else "<module root>/../shared/cyrus", where the module root is the
// nearest ancestor of the working directory that holds a go.mod.
func Dir() (string, error) {
	if d := os.Getenv("ROOKERY_CYRUS_DIR"); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("cyrustest: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(d), "shared", "cyrus"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("cyrustest: no go.mod in %s or above (set ROOKERY_CYRUS_DIR)", wd)
		}
	}
}

// Available reports why real Cyrus cannot be used here, or nil if it can:
// not Linux, not root, Cyrus not installed, or the harness not found.
func Available() error {
	if runtime.GOOS != "linux" {
		return errors.New("cyrustest: the Cyrus harness runs on Linux only")
	}
	if os.Geteuid() != 0 {
		return errors.New("cyrustest: not root (the Cyrus master must start as root)")
	}
	if _, err := os.Stat(filepath.Join(cyrusBin, "mupdate")); err != nil {
		return fmt.Errorf("cyrustest: Cyrus murder not installed (run install.sh of the harness): %w", err)
	}
	dir, err := Dir()
	if err != nil {
		return err
	}
	st, err := os.Stat(filepath.Join(dir, "murder.sh"))
	if err != nil {
		return fmt.Errorf("cyrustest: harness missing (set ROOKERY_CYRUS_DIR): %w", err)
	}
	if st.Mode()&0o111 == 0 {
		return fmt.Errorf("cyrustest: harness %s is not executable", filepath.Join(dir, "murder.sh"))
	}
	return nil
}

// Require skips the test when real Cyrus is not available. When the
// environment variable CI is "true" it fails the test instead: CI installs
// Cyrus, so a skip there would hide a broken installation.
func Require(t testing.TB) {
	t.Helper()
	err := Available()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%v (CI=true: Cyrus must be available in CI)", err)
		return
	}
	t.Skipf("real Cyrus not available: %v", err)
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
// proxying (see the harness README, "Addressing").
func FreeLoopbackAddr(t testing.TB, ports ...int) string {
	t.Helper()
	for range 100 {
		addr := "127.0.0." + strconv.Itoa(2+rand.IntN(253))
		if bindable(addr, ports) {
			return addr
		}
	}
	t.Fatalf("cyrustest: no 127.0.0.N with ports %v free", ports)
	return ""
}

func bindable(addr string, ports []int) bool {
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}
