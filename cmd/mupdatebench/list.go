package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/node"
)

// The -list mode times what a user's LIST costs on a frontend whose
// mailbox list is large while the user sees only a few of its entries:
// a Rookery frontend against two Cyrus 3.6 frontends, one with
// reverseacls (an index from ACL identifier to mailboxes) and one with
// Cyrus's default, which reads the whole list. All three follow the same
// Rookery master.

// Sizes of a full and a quick -list run: filler mailboxes on the master.
var (
	fullListEntries  = []int{1_000, 100_000, 1_000_000}
	quickListEntries = []int{1_000, 100_000}
)

// listSizes say how much work the -list mode does.
type listSizes struct {
	Entries []int // filler mailboxes on the master, one whole run each
	Runs    int   // timed runs of each command on each frontend
	// Budget stops a command's runs on one frontend early, once they took
	// this long and at least minListRuns were made: a frontend that reads
	// its whole list may need seconds per LIST at the largest size.
	Budget time.Duration
	Conns  int // connections of the fill
	Window int // ACTIVATEs in flight per fill connection
}

const (
	minListRuns = 10
	// listTimeout bounds one command: a frontend that reads its whole
	// list of a million entries takes seconds.
	listTimeout = 5 * time.Minute
	// listWarmup runs of each command come before the timed ones; the
	// first one's answer is the one checked.
	listWarmup = 2
)

// The user whose LIST is timed. She has an INBOX with ownFolders
// subfolders on a real Rookery backend, and sees besides them exactly the
// filler mailboxes in sharedWith.
const (
	listUser   = "alice"
	listPass   = "alicepw"
	ownFolders = 14
	// perUser is the number of filler mailboxes of each filler user:
	// user.uNNNNNN and its subfolders f1 and up.
	perUser = 10
)

// sharedWith grants alice (or anyone) "lr" on filler mailboxes of other
// users; every other filler mailbox is its owner's alone.
var sharedWith = map[string]string{
	"user.u000001.f1": listUser,
	"user.u000002.f2": listUser,
	"user.u000003":    listUser,
	"user.u000004.f9": listUser,
	"user.u000005.f1": "anyone",
}

// minListEntries is the smallest fill that holds every mailbox of
// sharedWith.
const minListEntries = 6 * perUser

// listCommands are timed in this order. want says which names alice must
// see; any further names must be \Noselect.
var listCommands = []struct {
	Cmd  string
	want func() []string
}{
	{`LIST "" "*"`, aliceSees},
	{`LIST "" "%"`, func() []string { return []string{"INBOX"} }},
	{`LIST "" "INBOX.*"`, func() []string { return aliceOwn()[1:] }},
	// She is subscribed to everything she sees.
	{`LSUB "" "*"`, aliceSees},
}

// aliceOwn are alice's own mailboxes as she names them, INBOX first.
func aliceOwn() []string {
	out := []string{"INBOX"}
	for i := 1; i <= ownFolders; i++ {
		out = append(out, fmt.Sprintf("INBOX.f%d", i))
	}
	return out
}

// aliceSees is every mailbox alice may list, sorted.
func aliceSees() []string {
	out := aliceOwn()
	for name := range sharedWith {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// fillerNames are n/perUser users' mailboxes, each user's INBOX before
// its subfolders.
func fillerNames(n int) []string {
	out := make([]string, 0, n/perUser*perUser)
	for u := range n / perUser {
		inbox := fmt.Sprintf("user.u%06d", u)
		out = append(out, inbox)
		for f := 1; f < perUser; f++ {
			out = append(out, inbox+".f"+strconv.Itoa(f))
		}
	}
	return out
}

// fillerACL is a filler mailbox's ACL as the mailbox list stores it: its
// owner has every right, and the identifier in sharedWith, if any, "lr".
func fillerACL(name string) string {
	owner, _, _ := strings.Cut(strings.TrimPrefix(name, "user."), ".")
	acl := owner + "\tlrswipkxtecdan\t"
	if id, ok := sharedWith[name]; ok {
		acl += id + "\tlr\t"
	}
	return acl
}

// The frontends under test, in table order.
const (
	feRookery = iota
	feCyrusRACL
	feCyrus
	nFrontends
)

var frontendNames = [nFrontends]string{"Rookery", "Cyrus reverseacls", "Cyrus default"}

// listResults are one size's figures.
type listResults struct {
	Entries int           // mailboxes on the master, alice's included
	Filled  int           // of them filler mailboxes
	Fill    time.Duration // the filler's pipelined ACTIVATEs
	// Sync is how long each frontend took from its start until it held
	// the master's whole list.
	Sync [nFrontends]time.Duration
	// Times are the sorted samples of each command on each frontend.
	Times [][nFrontends][]time.Duration
	// Seen is each frontend's answer to each command, as checked.
	Seen [][nFrontends][]listed
	// Heap is this process's Go heap in use after a GC, with the master,
	// alice's backend and the Rookery frontend in it; RSS its resident
	// size.
	Heap, RSS uint64
	// Cyrus is each Cyrus frontend's memory by process name (proportional
	// set size, so that pages its processes share count once).
	Cyrus [nFrontends]map[string]procMem

	RookeryVersion, CyrusVersion string
	Base                         string // where the servers keep their data
	// Problems are the differences between the frontends' answers and
	// what alice should see; the run fails if there are any.
	Problems []string
}

// runList measures each size of sz in a murder of its own and prints one
// table for all; progress goes to logw. Everything it starts is stopped
// before it returns. Answers that differ between the frontends, or from
// what alice should see, fail the run after the table is printed; so does
// a failed size, after the table of those before it.
func runList(ctx context.Context, out, logw io.Writer, sz listSizes) error {
	loadBefore := benchutil.LoadAvg()
	var all []*listResults
	var err error
	for _, n := range sz.Entries {
		var res *listResults
		if res, err = measureListSize(ctx, n, sz, logw); err != nil {
			break
		}
		all = append(all, res)
	}
	if len(all) == 0 {
		return err
	}
	r := all[0]
	fmt.Fprintln(out, benchutil.Machine(loadBefore))
	fmt.Fprintf(out, "Rookery: %s (in-process master, frontend+replica and alice's backend)\n", r.RookeryVersion)
	fmt.Fprintf(out, "Cyrus:   %s (two frontends via cyrustest, reverseacls: yes and Cyrus's default, following the Rookery master)\n", r.CyrusVersion)
	fmt.Fprintf(out, "data: everything under %s (%s); client: this process, one connection per frontend, %d runs per command\n",
		r.Base, benchutil.FSType(r.Base), sz.Runs)
	if sz.Runs > minListRuns {
		fmt.Fprintf(out, "  (fewer where %d runs took over %v, at least %d)\n", sz.Runs, sz.Budget, minListRuns)
	}
	fmt.Fprintln(out)
	printListTable(out, all)
	if err != nil {
		return err
	}
	var problems []string
	for _, r := range all {
		problems = append(problems, r.Problems...)
	}
	if len(problems) > 0 {
		return fmt.Errorf("mupdatebench: the frontends' answers differ or are wrong:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// listMurder is one size's servers: the Rookery master, alice's Rookery
// backend, and the three frontends.
type listMurder struct {
	master, backend, frontend *node.Node
	cyrus                     [nFrontends]*cyrustest.Instance // feCyrusRACL and feCyrus
	dir                       string                          // Rookery's data, removed by Close
}

// Close stops everything and removes its data.
func (m *listMurder) Close() error {
	var errs []error
	for _, i := range m.cyrus {
		if i != nil {
			errs = append(errs, i.Close())
		}
	}
	for _, n := range []*node.Node{m.frontend, m.backend, m.master} {
		if n != nil {
			if err := n.Close(); err != nil {
				errs = append(errs, fmt.Errorf("mupdatebench: closing rookery: %w", err))
			}
		}
	}
	if m.dir != "" {
		if err := os.RemoveAll(m.dir); err != nil {
			errs = append(errs, fmt.Errorf("mupdatebench: %w", err))
		}
	}
	return errors.Join(errs...)
}

// measureListSize sets up a murder with n filler mailboxes and times the
// commands on its frontends.
func measureListSize(ctx context.Context, n int, sz listSizes, logw io.Writer) (_ *listResults, err error) {
	res := &listResults{}
	m, err := startListMurder(ctx, n, sz, logw, res)
	if err != nil {
		return nil, err
	}
	defer closing(&err, "the list murder", m.Close)

	addrs := [nFrontends]string{m.frontend.IMAPAddr(), m.cyrus[feCyrusRACL].IMAPAddr(), m.cyrus[feCyrus].IMAPAddr()}
	var conns [nFrontends]*cyrustest.IMAP
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for fe, addr := range addrs {
		if conns[fe], err = cyrustest.OpenIMAP(addr, listUser, listPass); err != nil {
			return nil, fmt.Errorf("mupdatebench: %s: %w", frontendNames[fe], err)
		}
		conns[fe].SetTimeout(listTimeout)
	}
	res.CyrusVersion = imapVersion(conns[feCyrus])

	for _, lc := range listCommands {
		fmt.Fprintf(logw, "[%d] %s:", n, lc.Cmd)
		times, seen, err := timeCommand(ctx, conns, lc.Cmd, sz)
		if err != nil {
			fmt.Fprintln(logw, " failed")
			return nil, err
		}
		for fe := range times {
			fmt.Fprintf(logw, " %s p50 %v;", frontendNames[fe], benchutil.Percentile(times[fe], 0.5).Round(time.Microsecond))
		}
		fmt.Fprintln(logw)
		res.Times = append(res.Times, times)
		res.Seen = append(res.Seen, seen)
		res.Problems = append(res.Problems, checkListings(n, lc.Cmd, seen, lc.want())...)
	}

	res.Heap, res.RSS = goMemory()
	for _, fe := range []int{feCyrusRACL, feCyrus} {
		res.Cyrus[fe] = instanceMemory(m.cyrus[fe].Dir)
	}
	return res, nil
}

// startListMurder starts a Rookery master, fills it with n filler
// mailboxes, starts alice's backend and the three frontends, and returns
// once every frontend holds the whole list and alice is subscribed to all
// she sees. It notes the fill and sync times and the Rookery version in
// res. On error nothing is left running.
func startListMurder(ctx context.Context, n int, sz listSizes, logw io.Writer, res *listResults) (_ *listMurder, err error) {
	m := &listMurder{}
	defer func() {
		if err != nil {
			err = errors.Join(err, m.Close())
		}
	}()
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Beside cyrustest's instances, on the same file system.
	if m.dir, err = os.MkdirTemp("/tmp", "mupdatebench-list-"); err != nil {
		return nil, fmt.Errorf("mupdatebench: %w", err)
	}
	res.Base = filepath.Dir(m.dir)

	fmt.Fprintf(logw, "[%d] starting the Rookery master ...\n", n)
	if m.master, err = startRookery(filepath.Join(m.dir, "master"), logger); err != nil {
		return nil, err
	}
	mt := rookeryTarget("Rookery master", m.master.MUPDATEAddr())
	if res.RookeryVersion, err = greetingVersion(ctx, mt); err != nil {
		return nil, err
	}
	filler := fillerNames(n)
	fmt.Fprintf(logw, "[%d] filling the master: %d mailboxes of %d users, %d connections x %d ACTIVATEs in flight ... ",
		n, len(filler), len(filler)/perUser, sz.Conns, sz.Window)
	start := time.Now()
	_, err = pipelined(ctx, mt, filler, sz.Conns, sz.Window, func(c *mupdate.Client, name string) (string, error) {
		return c.Send("ACTIVATE", name, benchLocation, fillerACL(name))
	})
	if err != nil {
		fmt.Fprintln(logw, "failed")
		return nil, err
	}
	res.Fill, res.Filled = time.Since(start), len(filler)
	fmt.Fprintf(logw, "%v (%.0f/s)\n", res.Fill.Round(time.Millisecond), rate(len(filler), res.Fill))

	fmt.Fprintf(logw, "[%d] starting alice's Rookery backend and creating her %d mailboxes ...\n", n, ownFolders+1)
	if m.backend, err = startListBackend(filepath.Join(m.dir, "backend"), m.master.MUPDATEAddr(), logger); err != nil {
		return nil, err
	}
	if err := createAlice(ctx, m.backend, m.master); err != nil {
		return nil, err
	}
	res.Entries = int(m.master.Store().Count())

	fmt.Fprintf(logw, "[%d] starting the Rookery frontend ... ", n)
	start = time.Now()
	if m.frontend, err = startListFrontend(filepath.Join(m.dir, "frontend"), m.master.MUPDATEAddr(), logger); err != nil {
		fmt.Fprintln(logw, "failed")
		return nil, err
	}
	err = waitFor(ctx, syncTimeout(res.Entries), "the Rookery frontend's replica to hold every entry", func() error {
		if got := m.frontend.Store().Count(); got != uint64(res.Entries) {
			return fmt.Errorf("%d of %d entries", got, res.Entries)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintln(logw, "failed")
		return nil, err
	}
	res.Sync[feRookery] = time.Since(start)
	fmt.Fprintf(logw, "synced in %v\n", res.Sync[feRookery].Round(time.Millisecond))

	last := filler[len(filler)-1]
	for _, fe := range []int{feCyrusRACL, feCyrus} {
		fmt.Fprintf(logw, "[%d] starting the %s frontend ... ", n, frontendNames[fe])
		start := time.Now()
		if m.cyrus[fe], err = startCyrusFrontend(ctx, m.master.MUPDATEAddr(), fe == feCyrusRACL, res.Entries, last); err != nil {
			fmt.Fprintln(logw, "failed")
			return nil, err
		}
		res.Sync[fe] = time.Since(start)
		fmt.Fprintf(logw, "synced in %v\n", res.Sync[fe].Round(time.Millisecond))
	}
	if err := subscribeAlice(m.frontend.IMAPAddr()); err != nil {
		return nil, err
	}
	return m, nil
}

// rookeryListConfig is rookeryConfig with the users of the -list mode:
// the harness's mupdate user and admin, the proxy user frontends log in
// to backends as, and alice.
func rookeryListConfig(dir, serverName string) (node.Config, error) {
	cfg, err := rookeryConfig(dir, serverName)
	if err != nil {
		return cfg, err
	}
	var b strings.Builder
	for _, u := range [][2]string{{cyrustest.MupdateUser, cyrustest.MupdatePass}, {cyrustest.AdminUser, cyrustest.AdminPass},
		{cyrustest.ProxyUser, cyrustest.ProxyPass}, {listUser, listPass}} {
		fmt.Fprintf(&b, "%s:{PLAIN}%s\n", u[0], u[1])
	}
	if err := os.WriteFile(cfg.UsersFile, []byte(b.String()), 0o600); err != nil {
		return cfg, fmt.Errorf("mupdatebench: %w", err)
	}
	cfg.Admins = []string{cyrustest.MupdateUser, cyrustest.AdminUser}
	// Only the listeners each role is given below.
	cfg.MUPDATEListen, cfg.POP3Listen, cfg.LMTPListen = "", "", ""
	cfg.MUPDATEAuthname, cfg.MUPDATEPassword = cyrustest.MupdateUser, cyrustest.MupdatePass
	cfg.FailedLoginPause = 0
	return cfg, nil
}

// startListBackend runs alice's backend, registering its mailboxes on
// master. Its server name is its IMAP address, which is how a Cyrus
// frontend (and, without gossip, a Rookery one) reaches a backend.
func startListBackend(dir, master string, logger *slog.Logger) (*node.Node, error) {
	port, err := benchutil.FreePort()
	if err != nil {
		return nil, err
	}
	name := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg, err := rookeryListConfig(dir, name)
	if err != nil {
		return nil, err
	}
	cfg.Roles = []node.Role{node.RoleBackend}
	cfg.IMAPListen = name
	cfg.MUPDATEServer = master
	cfg.ProxyServers = []string{cyrustest.ProxyUser}
	return startNode(cfg, logger)
}

// startListFrontend runs a Rookery frontend with a replica of master.
func startListFrontend(dir, master string, logger *slog.Logger) (*node.Node, error) {
	cfg, err := rookeryListConfig(dir, "rookery.frontend")
	if err != nil {
		return nil, err
	}
	cfg.Roles = []node.Role{node.RoleFrontend, node.RoleReplica}
	cfg.IMAPListen = "127.0.0.1:0"
	cfg.MUPDATEServer = master
	cfg.ProxyAuthname, cfg.ProxyPassword = cyrustest.ProxyUser, cyrustest.ProxyPass
	cfg.AllowPlaintext = true
	return startNode(cfg, logger)
}

// createAlice creates alice's INBOX and subfolders on her backend, as its
// admin, and waits until master has them.
func createAlice(ctx context.Context, backend, master *node.Node) error {
	c, err := cyrustest.OpenIMAP(backend.IMAPAddr(), cyrustest.AdminUser, cyrustest.AdminPass)
	if err != nil {
		return err
	}
	defer c.Close()
	names := []string{"user." + listUser}
	for i := 1; i <= ownFolders; i++ {
		names = append(names, fmt.Sprintf("user.%s.f%d", listUser, i))
	}
	for _, name := range names {
		// The first CREATE may come before the backend reached its master.
		err := waitFor(ctx, 30*time.Second, "CREATE "+name, func() error {
			_, _, err := c.Cmd("CREATE %s", name)
			return err
		})
		if err != nil {
			return err
		}
	}
	return waitFor(ctx, 30*time.Second, "the master to hold alice's mailboxes", func() error {
		for _, name := range names {
			if _, found, err := master.Store().Get(name); err != nil || !found {
				return fmt.Errorf("%s missing (%v)", name, err)
			}
		}
		return nil
	})
}

// subscribeAlice subscribes alice to every mailbox she sees, through the
// frontend at addr; the subscriptions live on her backend, where every
// frontend's LSUB finds them.
func subscribeAlice(addr string) error {
	c, err := cyrustest.OpenIMAP(addr, listUser, listPass)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, name := range aliceSees() {
		if _, _, err := c.Cmd("SUBSCRIBE %s", name); err != nil {
			return fmt.Errorf("mupdatebench: %w", err)
		}
	}
	return nil
}

// startCyrusFrontend starts a Cyrus frontend following master, with
// reverseacls or without, and returns once its mupdate slave holds last
// and every entry of alice; alice can log in there.
func startCyrusFrontend(ctx context.Context, master string, reverseACLs bool, entries int, last string) (_ *cyrustest.Instance, err error) {
	ports := make([]int, 2)
	for i := range ports {
		if ports[i], err = benchutil.FreePort(); err != nil {
			return nil, err
		}
	}
	conf := map[string]string{}
	if reverseACLs {
		conf["reverseacls"] = "yes"
	}
	fe, err := cyrustest.Launch(cyrustest.RoleFrontend, cyrustest.Options{
		Master: master, IMAPPort: ports[0], MupdatePort: ports[1], Conf: conf,
		ReadyTimeout: syncTimeout(entries),
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, fe.Close())
		}
	}()
	if err := fe.SetUser(listUser, listPass, false); err != nil {
		return nil, err
	}
	// A Cyrus slave greets only after its first full sync; SyncNow
	// catches up with anything after that.
	if err := fe.SyncNow(); err != nil {
		return nil, err
	}
	st := target{Name: "Cyrus slave", Addr: fe.MupdateAddr(), User: cyrustest.AdminUser, Pass: cyrustest.AdminPass}
	wctx, cancel := context.WithTimeout(ctx, streamTimeout)
	defer cancel()
	for _, name := range []string{last, fmt.Sprintf("user.%s.f%d", listUser, ownFolders)} {
		if _, err := awaitFind(wctx, st, name); err != nil {
			return nil, fmt.Errorf("mupdatebench: the Cyrus frontend's slave lacks %s: %w", name, err)
		}
	}
	return fe, nil
}

// imapVersion is the server's name and version from IMAP ID, or
// "Cyrus IMAP" if it gives none.
func imapVersion(c *cyrustest.IMAP) string {
	untagged, _, err := c.Cmd("ID NIL")
	if err != nil {
		return "Cyrus IMAP"
	}
	var name, version string
	for _, l := range untagged {
		f := strings.Split(l, `"`)
		for i := 1; i+2 < len(f); i += 2 {
			switch f[i] {
			case "name":
				name = f[i+2]
			case "version":
				version = f[i+2]
			}
		}
	}
	if name == "" {
		return "Cyrus IMAP"
	}
	return strings.TrimSpace(name + " " + version)
}

// timeCommand runs cmd on each frontend's connection, round robin so
// that load from elsewhere on the machine hits all alike, until each has
// sz.Runs timed runs or its budget is spent. It returns the sorted samples
// and the answers of each frontend's first (untimed) run. Every run must
// give as many lines as the first.
func timeCommand(ctx context.Context, conns [nFrontends]*cyrustest.IMAP, cmd string, sz listSizes) (
	times [nFrontends][]time.Duration, seen [nFrontends][]listed, err error) {
	var spent [nFrontends]time.Duration
	var lines [nFrontends]int
	for run := -listWarmup; run < sz.Runs; run++ {
		if err := ctx.Err(); err != nil {
			return times, seen, fmt.Errorf("mupdatebench: %s: %w", cmd, err)
		}
		for fe, c := range conns {
			if len(times[fe]) >= minListRuns && spent[fe] > sz.Budget {
				continue
			}
			start := time.Now()
			untagged, _, err := c.Cmd("%s", cmd)
			d := time.Since(start)
			if err != nil {
				return times, seen, fmt.Errorf("mupdatebench: %s: %s: %w", frontendNames[fe], cmd, err)
			}
			switch {
			case run == -listWarmup:
				lines[fe] = len(untagged)
				if seen[fe], err = parseListing(untagged); err != nil {
					return times, seen, fmt.Errorf("mupdatebench: %s: %s: %w", frontendNames[fe], cmd, err)
				}
			case len(untagged) != lines[fe]:
				return times, seen, fmt.Errorf("mupdatebench: %s: %s gave %d lines, then %d", frontendNames[fe], cmd, lines[fe], len(untagged))
			}
			if run >= 0 {
				times[fe] = append(times[fe], d)
				spent[fe] += d
			}
		}
	}
	for fe := range times {
		slices.Sort(times[fe])
	}
	return times, seen, nil
}

// waitFor retries f every 20 ms until it succeeds, ctx ends or timeout
// passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mupdatebench: waiting for %s: not within %v: %w", what, timeout, err)
		}
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return fmt.Errorf("mupdatebench: waiting for %s: %w", what, err)
		}
	}
}

// goMemory is this process's Go heap in use after a GC, and its resident
// size (0 if /proc cannot tell).
func goMemory() (heap, rss uint64) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, procStatusKB("self", "VmRSS") * 1024
}
