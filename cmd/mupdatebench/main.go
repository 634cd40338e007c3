// Command mupdatebench measures a Rookery MUPDATE master against a real
// Cyrus IMAP `mupdate -m`, side by side on this machine, and prints a
// table with the ratio of the two.
//
// It needs root and the Cyrus murder packages (see shared/cyrus/README.md):
// both masters are started fresh by the run (Rookery in-process on a
// temporary data directory, Cyrus through the shared harness) and removed
// again on every way out, Ctrl-C included.
//
//	go run ./cmd/mupdatebench          # about 1.5 minutes
//	go run ./cmd/mupdatebench -quick   # about 30 s, smaller sizes
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/node"
)

func main() {
	quick := flag.Bool("quick", false, "smaller sizes (about 30 s instead of 1.5 min)")
	flag.Parse()
	if err := cyrustest.Available(); err != nil {
		fmt.Fprintf(os.Stderr, "mupdatebench: needs root and real Cyrus 3.6 (shared/cyrus/install.sh): %v\n", err)
		os.Exit(2)
	}

	ctx, cancel := context.WithCancel(context.Background())
	// The channel stays registered after the first signal, so a second
	// Ctrl-C cannot kill the process before Cyrus is stopped.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "mupdatebench: %v: stopping and cleaning up\n", s)
		cancel()
	}()

	sz, cyrusSamples := fullSizes, 5
	if *quick {
		sz, cyrusSamples = quickSizes, 3
	}
	err := run(ctx, os.Stdout, os.Stderr, sz, cyrusSamples)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Sizes of a full and a quick run. The Cyrus bulk load runs at about
// 2,000 ACTIVATE/s, so entries dominates the run time together with the
// Cyrus propagation samples (each waits for its ~5 s streaming tick).
var (
	fullSizes = sizes{
		Serial: 3000, Pipelined: 20000, Conns: 4, Window: 64,
		Finds: 5000, FindsPipelined: 40000,
		Entries: 100000, Dumps: 3, Propagation: 500,
	}
	quickSizes = sizes{
		Serial: 500, Pipelined: 5000, Conns: 4, Window: 64,
		Finds: 1000, FindsPipelined: 10000,
		Entries: 20000, Dumps: 3, Propagation: 200,
	}
)

// run starts both masters, measures them one after the other (so they
// never compete for the CPU) and prints the table to out; progress goes to
// logw. Everything it starts is stopped before it returns.
func run(ctx context.Context, out, logw io.Writer, sz sizes, cyrusSamples int) (err error) {
	fmt.Fprintln(logw, "starting the Cyrus mupdate master ...")
	port, err := freePort()
	if err != nil {
		return err
	}
	cy, err := cyrustest.Launch(cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: port})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := cy.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()

	// Rookery's data go next to Cyrus's, on the same file system: both
	// sync every write.
	base := filepath.Dir(cy.Dir)
	dir, err := os.MkdirTemp(base, "mupdatebench-")
	if err != nil {
		return fmt.Errorf("mupdatebench: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil {
			err = errors.Join(err, fmt.Errorf("mupdatebench: %w", rerr))
		}
	}()

	fmt.Fprintln(logw, "starting the Rookery master ...")
	rook, err := startRookery(dir, slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rook.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("mupdatebench: closing rookery: %w", cerr))
		}
	}()

	rt := target{Name: "Rookery", Addr: rook.MUPDATEAddr(), User: cyrustest.MupdateUser, Pass: cyrustest.MupdatePass}
	ct := target{Name: "Cyrus", Addr: cy.MupdateAddr(), User: cyrustest.MupdateUser, Pass: cyrustest.MupdatePass}
	rookVersion, err := greetingVersion(ctx, rt)
	if err != nil {
		return err
	}
	cyrusVersion, err := greetingVersion(ctx, ct)
	if err != nil {
		return err
	}

	loadBefore := loadAvg()
	rr, err := measure(ctx, rt, sz, logw)
	if err != nil {
		return err
	}
	csz := sz
	csz.Propagation = cyrusSamples
	cr, err := measure(ctx, ct, csz, logw)
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "machine: %s, %d CPUs (nproc), %s %s/%s, load average %s before, %s after\n",
		cpuModel(), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, loadBefore, loadAvg())
	fmt.Fprintf(out, "Rookery: %s (in-process master)\nCyrus:   %s (mupdate -m via shared/cyrus)\n", rookVersion, cyrusVersion)
	fmt.Fprintf(out, "data: both masters under %s (%s); client: this process, pipelined rows use %d connections x %d in flight\n\n",
		base, fsType(base), sz.Conns, sz.Window)
	printTable(out, sz, csz, rr, cr)
	return nil
}

// startRookery runs a fresh master on loopback with the harness's mupdate
// credentials as its only admin, so one client setup fits both masters.
func startRookery(dir string, logger *slog.Logger) (*node.Node, error) {
	users := filepath.Join(dir, "users")
	line := fmt.Sprintf("%s:{PLAIN}%s\n", cyrustest.MupdateUser, cyrustest.MupdatePass)
	if err := os.WriteFile(users, []byte(line), 0o600); err != nil {
		return nil, fmt.Errorf("mupdatebench: %w", err)
	}
	cfg := node.DefaultConfig()
	cfg.ServerName = "rookery.bench"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Roles = []node.Role{node.RoleMaster}
	cfg.MUPDATEListen = "127.0.0.1:0"
	cfg.UsersFile = users
	cfg.Admins = []string{cyrustest.MupdateUser}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mupdatebench: %w", err)
	}
	n, err := node.Start(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("mupdatebench: starting rookery: %w", err)
	}
	return n, nil
}

// freePort returns a loopback port that was free a moment ago; the
// harness refuses it clearly if someone took it since.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("mupdatebench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// greetingVersion is the software and version a master announces in its
// greeting.
func greetingVersion(ctx context.Context, tg target) (string, error) {
	c, done, err := dial(ctx, tg)
	if err != nil {
		return "", err
	}
	defer done()
	g := c.Greeting()
	return g.Software + " " + g.Version, nil
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// fsType is the file system type of the mount holding path, from
// /proc/self/mounts: both masters sync every write, so it matters.
func fsType(path string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "unknown file system"
	}
	best, typ := "", "unknown file system"
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mnt := f[1]
		under := path == mnt || strings.HasPrefix(path, strings.TrimSuffix(mnt, "/")+"/")
		if under && len(mnt) >= len(best) {
			best, typ = mnt, f[2]
		}
	}
	return typ
}

// loadAvg is the one-minute load average: other work on the machine skews
// every figure, and the table should show it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}
