// Command mupdatebench measures Rookery's MUPDATE against real Cyrus IMAP
// 3.6, side by side on this machine, and prints a table with the ratio of
// the two: by default the masters (Rookery's against `mupdate -m`), with
// -replica the replicas (a Rookery replica of a Rookery master against a
// Cyrus frontend's mupdate slave of a Cyrus master), with -list a user's
// LIST and LSUB on frontends that follow one Rookery master holding a
// large mailbox list (a Rookery frontend, a Cyrus frontend with
// reverseacls and one without; see list.go), with -scale a Rookery master
// and replica as processes of their own at up to ten million entries
// (memory, restart, full sync; Rookery alone: a Cyrus master takes in
// about 2,000 entries a second, so hours for ten million).
//
// It needs root and the Cyrus murder packages (sudo internal/cyrustest/install-cyrus.sh):
// everything is started fresh by the run (Rookery in-process on temporary
// data directories, Cyrus through internal/cyrustest) and removed again on
// every way out, Ctrl-C included.
//
//	go run ./cmd/mupdatebench                   # masters, about 1.5 minutes
//	go run ./cmd/mupdatebench -quick            # masters, about 30 s
//	go run ./cmd/mupdatebench -replica          # replicas, about 2.5 minutes
//	go run ./cmd/mupdatebench -replica -quick   # replicas, about 1 minute
//	go run ./cmd/mupdatebench -list -quick      # frontends' LIST, 1,000 and 100,000 mailboxes, about 5 minutes
//	go run ./cmd/mupdatebench -list             # and 1,000,000, about 25 minutes
//	go run ./cmd/mupdatebench -list -entries 5000,50000 -runs 50
//	go run ./cmd/mupdatebench -scale            # master and replica processes at 1,000,000 and 10,000,000
//	go run ./cmd/mupdatebench -scale -quick     # at 100,000 and 1,000,000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/node"
)

func main() {
	quick := flag.Bool("quick", false, "smaller sizes")
	replica := flag.Bool("replica", false, "measure replicas (full sync, propagation, restart) instead of masters")
	list := flag.Bool("list", false, "measure a user's LIST and LSUB on frontends over a large mailbox list instead of masters")
	scale := flag.Bool("scale", false, "measure a Rookery master and replica, each its own process, at large sizes (memory, restart, full sync) instead")
	var entries sizeList
	flag.Var(&entries, "entries", fmt.Sprintf("with -replica: mailboxes on the Rookery master (default %d, -quick %d);"+
		" with -list: comma-separated mailbox list sizes, one run each (default %s, -quick %s);"+
		" with -scale: the same (default %s, -quick %s)",
		fullReplicaSizes.Entries, quickReplicaSizes.Entries, sizeList(fullListEntries), sizeList(quickListEntries),
		sizeList(fullScaleEntries), sizeList(quickScaleEntries)))
	cyrusEntries := flag.Int("cyrus-entries", 0, fmt.Sprintf("with -replica: mailboxes on the Cyrus master (default %d, -quick %d)",
		fullReplicaSizes.CyrusEntries, quickReplicaSizes.CyrusEntries))
	runs := flag.Int("runs", 200, "with -list: timed runs of each command on each frontend")
	budget := flag.Duration("budget", 30*time.Second, fmt.Sprintf("with -list: stop a command's runs on a frontend after this long (at least %d runs)", minListRuns))
	flag.Parse()
	switch {
	case *replica && *list, *scale && (*replica || *list):
		usage("-replica, -list and -scale are different modes")
	case !*replica && !*list && !*scale && len(entries) > 0:
		usage("-entries goes with -replica, -list or -scale")
	case !*replica && *cyrusEntries != 0:
		usage("-cyrus-entries goes with -replica")
	case *replica && len(entries) > 1:
		usage("-replica takes one -entries size")
	case *cyrusEntries < 0 || slices.ContainsFunc(entries, func(n int) bool { return n <= 0 }):
		usage("sizes must be positive")
	case *list && slices.ContainsFunc(entries, func(n int) bool { return n < minListEntries }):
		usage(fmt.Sprintf("-list needs at least %d entries", minListEntries))
	case *runs < 1 || *budget <= 0:
		usage("-runs and -budget must be positive")
	}
	ctx, cancel := benchutil.Start("mupdatebench")

	var err error
	switch {
	case *scale:
		sizes := fullScaleEntries
		if *quick {
			sizes = quickScaleEntries
		}
		if len(entries) > 0 {
			sizes = entries
		}
		err = runScale(ctx, os.Stdout, os.Stderr, sizes)
	case *list:
		sz := listSizes{Entries: fullListEntries, Runs: *runs, Budget: *budget, Conns: 4, Window: 64}
		if *quick {
			sz.Entries = quickListEntries
		}
		if len(entries) > 0 {
			sz.Entries = entries
		}
		err = runList(ctx, os.Stdout, os.Stderr, sz)
	case *replica:
		sz := fullReplicaSizes
		if *quick {
			sz = quickReplicaSizes
		}
		if len(entries) > 0 {
			sz.Entries = entries[0]
		}
		if *cyrusEntries > 0 {
			sz.CyrusEntries = *cyrusEntries
		}
		err = runReplica(ctx, os.Stdout, os.Stderr, sz)
	default:
		sz, cyrusSamples := fullSizes, 5
		if *quick {
			sz, cyrusSamples = quickSizes, 3
		}
		err = run(ctx, os.Stdout, os.Stderr, sz, cyrusSamples)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func usage(problem string) {
	fmt.Fprintln(os.Stderr, "mupdatebench: "+problem)
	os.Exit(2)
}

// sizeList is a comma-separated list of sizes, as -entries takes it.
type sizeList []int

func (l sizeList) String() string {
	s := make([]string, len(l))
	for i, n := range l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l *sizeList) Set(v string) error {
	*l = nil
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("not a size: %q", f)
		}
		*l = append(*l, n)
	}
	return nil
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

// run measures the two masters one after the other (so they never compete
// for the CPU) and prints the table to out; progress goes to logw.
// Everything it starts is stopped before it returns.
func run(ctx context.Context, out, logw io.Writer, sz sizes, cyrusSamples int) (err error) {
	m, err := startMasters(ctx, logw)
	if err != nil {
		return err
	}
	defer closing(&err, "the masters", m.Close)

	loadBefore := benchutil.LoadAvg()
	rr, err := measure(ctx, m.rt, sz, logw)
	if err != nil {
		return err
	}
	csz := sz
	csz.Propagation = cyrusSamples
	cr, err := measure(ctx, m.ct, csz, logw)
	if err != nil {
		return err
	}

	m.printHeader(out, loadBefore, "in-process master", "mupdate -m via cyrustest")
	fmt.Fprintf(out, "data: both masters under %s (%s); client: this process, pipelined rows use %d connections x %d in flight\n\n",
		m.base, benchutil.FSType(m.base), sz.Conns, sz.Window)
	printTable(out, sz, csz, rr, cr)
	return nil
}

// masters are a fresh Cyrus mupdate master and a fresh Rookery master,
// what both benchmarks start from.
type masters struct {
	cyrus   *cyrustest.Instance
	rookery *node.Node
	// base holds the data of everything the run starts, Cyrus's and
	// Rookery's on the same file system: both sync every write.
	base string
	// dir is Rookery's part of base, removed by Close.
	dir string
	// rt and ct reach the two masters as the harness's mupdate user.
	rt, ct target
	// Versions from the greetings.
	rookeryVersion, cyrusVersion string
	log                          *slog.Logger
}

// startMasters starts both masters; on error nothing is left running.
func startMasters(ctx context.Context, logw io.Writer) (_ *masters, err error) {
	m := &masters{log: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	defer func() {
		if err != nil {
			err = errors.Join(err, m.Close())
		}
	}()
	fmt.Fprintln(logw, "starting the Cyrus mupdate master ...")
	port, err := benchutil.FreePort()
	if err != nil {
		return nil, err
	}
	if m.cyrus, err = cyrustest.Launch(cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: port}); err != nil {
		return nil, err
	}
	m.base = filepath.Dir(m.cyrus.Dir)
	if m.dir, err = os.MkdirTemp(m.base, "mupdatebench-"); err != nil {
		return nil, fmt.Errorf("mupdatebench: %w", err)
	}
	fmt.Fprintln(logw, "starting the Rookery master ...")
	if m.rookery, err = startRookery(filepath.Join(m.dir, "master"), m.log); err != nil {
		return nil, err
	}
	m.rt = rookeryTarget("Rookery", m.rookery.MUPDATEAddr())
	m.ct = target{Name: "Cyrus", Addr: m.cyrus.MupdateAddr(), User: cyrustest.MupdateUser, Pass: cyrustest.MupdatePass}
	if m.rookeryVersion, err = greetingVersion(ctx, m.rt); err != nil {
		return nil, err
	}
	if m.cyrusVersion, err = greetingVersion(ctx, m.ct); err != nil {
		return nil, err
	}
	return m, nil
}

// Close stops both masters and removes their data.
func (m *masters) Close() error {
	var errs []error
	if m.rookery != nil {
		if err := m.rookery.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mupdatebench: closing rookery: %w", err))
		}
	}
	if m.dir != "" {
		if err := os.RemoveAll(m.dir); err != nil {
			errs = append(errs, fmt.Errorf("mupdatebench: %w", err))
		}
	}
	if m.cyrus != nil {
		errs = append(errs, m.cyrus.Close())
	}
	return errors.Join(errs...)
}

// printHeader says on what and with what the figures were made; rookery
// and cyrus say how each side ran.
func (m *masters) printHeader(out io.Writer, loadBefore, rookery, cyrus string) {
	fmt.Fprintln(out, benchutil.Machine(loadBefore))
	fmt.Fprintf(out, "Rookery: %s (%s)\nCyrus:   %s (%s)\n", m.rookeryVersion, rookery, m.cyrusVersion, cyrus)
}

// closing joins the error of close, if any, into *err; for defers.
func closing(err *error, what string, close func() error) {
	if cerr := close(); cerr != nil {
		*err = errors.Join(*err, fmt.Errorf("mupdatebench: closing %s: %w", what, cerr))
	}
}

// rookeryTarget reaches a Rookery node as the harness's mupdate user,
// which every node of the benchmark has as its admin.
func rookeryTarget(name, addr string) target {
	return target{Name: name, Addr: addr, User: cyrustest.MupdateUser, Pass: cyrustest.MupdatePass}
}

// rookeryConfig is a node with its data in dir and an MUPDATE listener on
// loopback as its only listener (several run at once), whose only admin
// is the harness's mupdate user, so one client setup fits every server of
// the run. It writes the users file.
func rookeryConfig(dir, serverName string) (node.Config, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return node.Config{}, fmt.Errorf("mupdatebench: %w", err)
	}
	users := filepath.Join(dir, "users")
	line := fmt.Sprintf("%s:{PLAIN}%s\n", cyrustest.MupdateUser, cyrustest.MupdatePass)
	if err := os.WriteFile(users, []byte(line), 0o600); err != nil {
		return node.Config{}, fmt.Errorf("mupdatebench: %w", err)
	}
	cfg := node.DefaultConfig()
	cfg.ServerName = serverName
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Roles = []node.Role{node.RoleMaster}
	cfg.MUPDATEListen = "127.0.0.1:0"
	cfg.IMAPListen, cfg.AdminListen, cfg.GossipListen = "", "", ""
	cfg.UsersFile = users
	cfg.Admins = []string{cyrustest.MupdateUser}
	return cfg, nil
}

// startRookery runs a fresh Rookery master with its data in dir.
func startRookery(dir string, logger *slog.Logger) (*node.Node, error) {
	cfg, err := rookeryConfig(dir, "rookery.bench")
	if err != nil {
		return nil, err
	}
	return startNode(cfg, logger)
}

// startReplica runs a Rookery replica of master (host:port) with its data
// in dir; on a dir used before it starts from what it had synced.
func startReplica(dir, master string, logger *slog.Logger) (*node.Node, error) {
	cfg, err := rookeryConfig(dir, "rookery.replica")
	if err != nil {
		return nil, err
	}
	cfg.Roles = []node.Role{node.RoleReplica}
	cfg.MUPDATEServer = master
	cfg.MUPDATEAuthname, cfg.MUPDATEPassword = cyrustest.MupdateUser, cyrustest.MupdatePass
	return startNode(cfg, logger)
}

func startNode(cfg node.Config, logger *slog.Logger) (*node.Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("mupdatebench: %w", err)
	}
	n, err := node.Start(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("mupdatebench: starting rookery %s: %w", cfg.Roles[0], err)
	}
	return n, nil
}

// greetingVersion is the software and version a server announces in its
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
