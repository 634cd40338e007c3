// Command sessionbench measures what idle IMAP sessions cost a frontend:
// it opens N sessions through a Rookery frontend (LOGIN, SELECT INBOX,
// IDLE by default) and leaves them idle, then reports the memory each
// costs the frontend and its backends (growth of their processes' PSS
// divided by N; for Rookery also the Go heap, stacks and goroutines from
// /metrics), how fast the sessions were set up, and how many LOGINs per
// second the frontend answers while they idle. A real Cyrus 3.6 murder
// (frontend, backend, mupdate master) is measured the same way side by
// side, at fewer sessions: it forks a process per connection on both
// frontend and backend. At 1,000 sessions on 2 cores (load average 380,
// each Cyrus IDLE polling without idled) its frontend failed to log in to
// the backend now and then ("no mechanism available"); 300 work.
//
// Every Rookery node runs as a child process (cmd/node, built by the
// tool), so their memory is theirs alone and not mixed with the
// clients'. The client holds only a socket per idle session, and spreads
// its connections over source addresses 127.1.x.y so that 100,000 of
// them fit the ephemeral port range; the frontend's connections to its
// backends are spread over one backend per 20,000 sessions. The tool
// raises its file descriptor limit for itself and its children, the hard
// one too if it may (CAP_SYS_RESOURCE); the frontend needs two per
// session.
//
//	go run ./cmd/sessionbench                         # 8,000 sessions; Cyrus at 300
//	go run ./cmd/sessionbench -sessions 100000 -cyrus 0
//	go run ./cmd/sessionbench -script login -sessions 20000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
	"github.com/rookery/rookery/internal/cyrustest"
)

type options struct {
	sessions, perUser, workers, backends, cyrus int
	script                                      script
	loginFor, settle                            time.Duration
	nodeBin                                     string
}

func main() {
	var o options
	scriptName := flag.String("script", "idle", "what each session does before it idles: login, select (LOGIN, SELECT INBOX) or idle (and IDLE)")
	flag.IntVar(&o.sessions, "sessions", 8000, "idle sessions to open through the Rookery frontend (two descriptors each on the frontend: 9,000 fit a hard limit of 20,000)")
	flag.IntVar(&o.perUser, "per-user", 50, "sessions per user (a backend allows 100 per user)")
	flag.IntVar(&o.workers, "workers", 32, "client goroutines opening sessions and logging in")
	flag.IntVar(&o.backends, "backends", 0, "Rookery backends; 0: one per 20,000 sessions")
	flag.IntVar(&o.cyrus, "cyrus", 300, "sessions to open through a Cyrus 3.6 frontend (two processes each); 0: no Cyrus")
	flag.DurationVar(&o.loginFor, "login-time", 5*time.Second, "how long to measure LOGIN/LOGOUT per second")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "wait after the sessions are open before measuring")
	flag.StringVar(&o.nodeBin, "node", "", "cmd/node binary to run; empty: build it")
	flag.Parse()
	s, ok := scriptNames[*scriptName]
	if !ok || o.sessions <= 0 || o.perUser <= 0 || o.perUser > 100 || o.workers <= 0 || o.cyrus < 0 || o.backends < 0 {
		fmt.Fprintln(os.Stderr, "sessionbench: bad flags (see -h)")
		os.Exit(2)
	}
	o.script = s
	if o.backends == 0 {
		o.backends = (o.sessions + perSource - 1) / perSource
	}

	var ctx context.Context
	var cancel context.CancelFunc
	if o.cyrus > 0 {
		ctx, cancel = benchutil.Start("sessionbench")
	} else {
		ctx, cancel = signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	}
	defer cancel()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sessionbench:", err)
		os.Exit(1)
	}
}

// result is one side's figures.
type result struct {
	sessions, users   int
	setupRate         float64 // sessions set up per second
	loginRate         float64 // LOGIN+LOGOUT per second, sessions idling
	frontend, backend usage   // growth per session
}

func run(ctx context.Context, o options, out, logw io.Writer) error {
	load := benchutil.LoadAvg()
	// The frontend holds two descriptors per session (its client's
	// socket, its backend's), the client one.
	if err := raiseFileLimit(uint64(2*o.sessions + fdReserve)); err != nil {
		return err
	}
	base, err := os.MkdirTemp("", "sessionbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	if o.nodeBin == "" {
		o.nodeBin = filepath.Join(base, "node")
		fmt.Fprintln(logw, "building cmd/node ...")
		build := exec.CommandContext(ctx, "go", "build", "-o", o.nodeBin, "github.com/rookery/rookery/cmd/node")
		build.Stdout, build.Stderr = logw, logw
		if err := build.Run(); err != nil {
			return fmt.Errorf("building cmd/node: %w", err)
		}
	}
	rk, err := runRookery(ctx, o, base, logw)
	if err != nil {
		return err
	}
	cy := result{frontend: nanUsage(), backend: nanUsage(), setupRate: math.NaN(), loginRate: math.NaN()}
	var cyErr error
	if o.cyrus > 0 {
		var c result
		if c, cyErr = runCyrus(ctx, o, logw); cyErr == nil {
			cy = c
		}
	}

	fmt.Fprintln(out, benchutil.Machine(load))
	fmt.Fprintf(out, "Rookery: %d %s sessions (%d users) through a frontend process in front of %d backend processes\n",
		rk.sessions, o.script, rk.users, o.backends)
	if o.cyrus > 0 && cyErr == nil {
		fmt.Fprintf(out, "Cyrus:   %d %s sessions (%d users) through a Cyrus 3.6 frontend in front of one backend (a process per connection on each)\n",
			cy.sessions, o.script, cy.users)
	}
	fmt.Fprintf(out, "memory: growth of the processes' PSS over the sessions, divided by their number; client: this process, %d workers\n\n", o.workers)
	kib := func(v float64) float64 { return v / 1024 }
	benchutil.WriteTable(out, []benchutil.Row{
		{Metric: "session setups/s (connect, " + o.script.String() + ")", Rookery: rk.setupRate, Cyrus: cy.setupRate},
		{Metric: "LOGIN+LOGOUT/s, fresh connections, sessions idling", Rookery: rk.loginRate, Cyrus: cy.loginRate},
		{Metric: "frontend KiB per session", Rookery: kib(rk.frontend.rss), Cyrus: kib(cy.frontend.rss), Latency: true},
		{Metric: "backend KiB per session", Rookery: kib(rk.backend.rss), Cyrus: kib(cy.backend.rss), Latency: true},
		{Metric: "frontend Go heap KiB per session", Rookery: kib(rk.frontend.heap), Cyrus: math.NaN(), Latency: true},
		{Metric: "frontend Go stack KiB per session", Rookery: kib(rk.frontend.stack), Cyrus: math.NaN(), Latency: true},
		{Metric: "frontend goroutines per session", Rookery: rk.frontend.goroutines, Cyrus: math.NaN(), Latency: true},
		{Metric: "frontend processes per session", Rookery: rk.frontend.procs, Cyrus: cy.frontend.procs, Latency: true},
		{Metric: "backend Go heap KiB per session", Rookery: kib(rk.backend.heap), Cyrus: math.NaN(), Latency: true},
		{Metric: "backend goroutines per session", Rookery: rk.backend.goroutines, Cyrus: math.NaN(), Latency: true},
	})
	if cyErr != nil {
		return fmt.Errorf("the Cyrus run failed: %w", cyErr)
	}
	return nil
}

func nanUsage() usage {
	n := math.NaN()
	return usage{rss: n, heap: n, stack: n, goroutines: n, procs: n}
}

// fdReserve is what a node needs besides its sessions' sockets.
const fdReserve = 2000

// raiseFileLimit sets the soft and hard RLIMIT_NOFILE to at least n; the
// children inherit it (Go restores the original soft limit in children
// only when the program did not set it). Raising the hard limit needs
// CAP_SYS_RESOURCE, which a container may not grant even to root.
func raiseFileLimit(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Max >= n {
		lim.Cur = lim.Max
		return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	hard := lim.Max
	lim.Cur, lim.Max = n, n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("the frontend needs %d file descriptors, over the hard limit %d, which this process cannot raise (%w): at most %d sessions here",
			n, hard, err, (hard-fdReserve)/2)
	}
	return nil
}

func users(prefix string, sessions, perUser int) []string {
	n := (sessions + perUser - 1) / perUser
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

func runRookery(ctx context.Context, o options, base string, logw io.Writer) (result, error) {
	us := users("u", o.sessions, o.perUser)
	fmt.Fprintf(logw, "starting Rookery: master, %d backends, frontend (child processes) ...\n", o.backends)
	dir, err := os.MkdirTemp(base, "rookery-")
	if err != nil {
		return result{}, err
	}
	m, err := startMurder(ctx, dir, o.nodeBin, o.backends, o.sessions+o.workers+100, us, logw)
	if err != nil {
		return result{}, err
	}
	defer m.Close()
	measure := func() (fe, be usage, err error) {
		if fe, err = nodeUsage(m.frontend); err != nil {
			return fe, be, err
		}
		for _, b := range m.backends {
			u, err := nodeUsage(b)
			if err != nil {
				return fe, be, err
			}
			be = be.plus(u)
		}
		return fe, be, nil
	}
	return measureSessions(ctx, o, o.sessions, m.frontend.imap, us, measure, logw)
}

// measureSessions opens n sessions, measures, measures LOGINs per second
// while they idle, and ends them.
func measureSessions(ctx context.Context, o options, n int, addr string, us []string, measure func() (fe, be usage, err error), logw io.Writer) (result, error) {
	res := result{sessions: n, users: len(us)}
	fe0, be0, err := measure()
	if err != nil {
		return res, err
	}
	fmt.Fprintf(logw, "opening %d sessions ...\n", n)
	conns, took, err := openSessions(ctx, addr, us, n, o.workers, o.script, func(k int) {
		fmt.Fprintf(logw, "  %d open\n", k)
	})
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err != nil {
		return res, err
	}
	res.setupRate = float64(n) / took.Seconds()
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		return res, ctx.Err()
	}
	fe1, be1, err := measure()
	if err != nil {
		return res, err
	}
	per := func(u usage) usage {
		f := float64(n)
		return usage{rss: u.rss / f, heap: u.heap / f, stack: u.stack / f, goroutines: u.goroutines / f, procs: u.procs / f}
	}
	res.frontend, res.backend = per(fe1.minus(fe0)), per(be1.minus(be0))
	fmt.Fprintf(logw, "measuring LOGIN/LOGOUT for %v ...\n", o.loginFor)
	if res.loginRate, err = loginRate(ctx, addr, us, o.workers, o.loginFor); err != nil {
		return res, fmt.Errorf("login rate: %w", err)
	}
	fmt.Fprintln(logw, "ending the sessions ...")
	good, err := finish(conns, o.script, o.workers)
	conns = nil
	if err != nil {
		return res, fmt.Errorf("%d of %d sessions ended properly: %w", good, n, err)
	}
	return res, nil
}

func runCyrus(ctx context.Context, o options, logw io.Writer) (_ result, err error) {
	n := min(o.cyrus, o.sessions)
	us := users("c", n, o.perUser)
	fmt.Fprintln(logw, "starting Cyrus: mupdate master, backend, frontend ...")
	var insts []*cyrustest.Instance
	defer func() {
		for _, i := range insts {
			err = errors.Join(err, i.Close())
		}
	}()
	port := func() int {
		p, perr := benchutil.FreePort()
		if perr != nil && err == nil {
			err = perr
		}
		return p
	}
	master, err := cyrustest.Launch(cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: port()})
	if err != nil {
		return result{}, err
	}
	insts = append(insts, master)
	be, err := cyrustest.Launch(cyrustest.RoleBackend, cyrustest.Options{Master: master.MupdateAddr(), IMAPPort: port()})
	if err != nil {
		return result{}, err
	}
	insts = append([]*cyrustest.Instance{be}, insts...)
	fe, err := cyrustest.Launch(cyrustest.RoleFrontend, cyrustest.Options{Master: master.MupdateAddr(), IMAPPort: port(),
		Conf: map[string]string{"allowplaintext": "yes"}})
	if err != nil {
		return result{}, err
	}
	insts = append([]*cyrustest.Instance{fe}, insts...)
	for _, u := range us {
		if err := be.SetUser(u, userPass, true); err != nil {
			return result{}, err
		}
		if err := fe.SetUser(u, userPass, false); err != nil {
			return result{}, err
		}
	}
	if err := fe.SyncNow(); err != nil {
		return result{}, err
	}
	if err := poll(ctx, 60*time.Second, func() error { return selectOnce(fe.IMAPAddr(), us[len(us)-1]) }); err != nil {
		return result{}, fmt.Errorf("waiting for the Cyrus frontend: %w", err)
	}
	measure := func() (feU, beU usage, err error) {
		if feU, err = treeUsage(fe.MasterPID); err != nil {
			return feU, beU, err
		}
		beU, err = treeUsage(be.MasterPID)
		return feU, beU, err
	}
	res, err := measureSessions(ctx, o, n, fe.IMAPAddr(), us, measure, logw)
	if err != nil {
		fmt.Fprintf(logw, "Cyrus frontend log:\n%s\nCyrus backend log:\n%s\n", tail(fe.Syslog(), 15), tail(be.Syslog(), 15))
	}
	return res, err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func init() {
	if runtime.GOOS != "linux" {
		fmt.Fprintln(os.Stderr, "sessionbench: Linux only (it reads /proc)")
		os.Exit(2)
	}
}
