// Command imaptestbench runs Dovecot's imaptest stress side by side, in
// one run, against a Rookery backend, a Rookery frontend in front of two
// Rookery backends, and a real Cyrus 3.6 backend: the same mbox, the same
// numbers of clients, the same duration, imaptest's default mix (EXPUNGE
// included). It prints the operations per second (imaptest's totals over
// the duration), each Rookery figure as a multiple of Cyrus's, and the
// "Error:" lines and stalled clients of every run.
//
// It needs root, real Cyrus 3.6 (sudo internal/cyrustest/install-cyrus.sh) and the shared
// imaptest build (shared/tools/imaptest). Rookery runs in-process, Cyrus
// through internal/cyrustest; every run gets a fresh mailbox (a fresh
// Rookery topology, a fresh Cyrus user), the runs go one after the other so
// they never compete for the CPU, and everything is stopped and removed on
// every way out, Ctrl-C included.
//
//	go run ./cmd/imaptestbench                     # 10 and 50 clients, 30 s each: 4 to 6 minutes
//	go run ./cmd/imaptestbench -secs 20 -clients 10
//	go run ./cmd/imaptestbench -targets frontend -cpuprofile fe.prof
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/rookery/rookery/internal/benchutil"
	"github.com/rookery/rookery/internal/imaptest"
)

func main() {
	secs := flag.Int("secs", 30, "seconds each stress run lasts")
	clients := flag.String("clients", "10,50", "comma-separated numbers of concurrent clients, one run each per target")
	msgs := flag.Int("msgs", 200, "messages in the generated mbox APPEND takes from")
	only := flag.String("targets", "backend,frontend,cyrus", "comma-separated targets to run: backend, frontend, cyrus")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (Rookery runs in it) to this file")
	flag.Parse()
	var targets []targetKind
	for _, f := range strings.Split(*only, ",") {
		k, ok := targetNames[strings.TrimSpace(f)]
		if !ok {
			fmt.Fprintf(os.Stderr, "imaptestbench: bad -targets %q\n", *only)
			os.Exit(2)
		}
		targets = append(targets, k)
	}
	var counts []int
	for _, f := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "imaptestbench: bad -clients %q\n", *clients)
			os.Exit(2)
		}
		counts = append(counts, n)
	}
	if *secs <= 0 {
		fmt.Fprintln(os.Stderr, "imaptestbench: -secs must be positive")
		os.Exit(2)
	}
	if err := imaptest.Available(); err != nil {
		fmt.Fprintf(os.Stderr, "imaptestbench: needs the shared imaptest build: %v\n", err)
		os.Exit(2)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "imaptestbench: %v\n", err)
			os.Exit(2)
		}
		defer f.Close()
	}
	ctx, cancel := benchutil.Start("imaptestbench")
	err := run(ctx, os.Stdout, os.Stderr, counts, *secs, *msgs, targets)
	cancel()
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run measures every target with every number of clients and prints the
// table to out; progress goes to logw.
func run(ctx context.Context, out, logw io.Writer, counts []int, secs, msgs int, targets []targetKind) (err error) {
	base, err := os.MkdirTemp("/tmp", "imaptestbench-")
	if err != nil {
		return fmt.Errorf("imaptestbench: %w", err)
	}
	// user cyrus must reach the Cyrus instance's files below /tmp.
	if err := os.Chmod(base, 0o755); err != nil {
		return fmt.Errorf("imaptestbench: %w", err)
	}
	defer func() {
		if rerr := os.RemoveAll(base); rerr != nil {
			err = errors.Join(err, fmt.Errorf("imaptestbench: %w", rerr))
		}
	}()
	mbox := filepath.Join(base, "stress.mbox")
	if err := imaptest.GenMbox(ctx, mbox, msgs); err != nil {
		return err
	}
	s, err := startServers(ctx, logw, base, targets)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()

	loadBefore := benchutil.LoadAvg()
	var results []result
	for _, n := range counts {
		for _, k := range targets {
			fmt.Fprintf(logw, "%s, %d clients, %d s ...\n", k, n, secs)
			r, err := s.stress(ctx, k, mbox, n, secs)
			if err != nil {
				return err
			}
			fmt.Fprintf(logw, "%s\n", indent(r.res.Report(secs)))
			results = append(results, r)
		}
	}
	fmt.Fprintln(out, benchutil.Machine(loadBefore))
	fmt.Fprintf(out, "imaptest stress, default mix with EXPUNGE, %d s per run, mbox of %d messages\n\n", secs, msgs)
	writeTable(out, results, secs)
	return nil
}

// result is one stress run.
type result struct {
	target  targetKind
	clients int
	res     *imaptest.Result
}

func writeTable(w io.Writer, results []result, secs int) {
	head := []string{"target", "clients", "ops", "ops/s", "vs Cyrus", "vs backend", "Error lines", "stalled clients"}
	cells := [][]string{head}
	// against is r's operations as a multiple of those of the run of
	// target base with as many clients, "-" if there is none.
	against := func(r result, base targetKind) string {
		for _, c := range results {
			if c.target == base && c.clients == r.clients && c.res.TotalOps() > 0 && r.target != base {
				return fmt.Sprintf("%.2fx", float64(r.res.TotalOps())/float64(c.res.TotalOps()))
			}
		}
		return "-"
	}
	for _, r := range results {
		ops := r.res.TotalOps()
		ratio, toBackend := against(r, cyrusBackend), "-"
		if r.target == rookeryFrontend {
			toBackend = against(r, rookeryBackend)
		}
		done := strconv.Itoa(ops)
		if r.res.Totals == nil {
			done = "did not finish"
		}
		cells = append(cells, []string{r.target.String(), strconv.Itoa(r.clients), done,
			fmt.Sprintf("%.0f", float64(ops)/float64(secs)), ratio, toBackend,
			strconv.Itoa(len(r.res.Errors)), strconv.Itoa(r.res.StalledClients())})
	}
	width := make([]int, len(head))
	for _, line := range cells {
		for i, s := range line {
			width[i] = max(width[i], len(s))
		}
	}
	for n, line := range cells {
		for i, s := range line {
			if i > 0 {
				fmt.Fprint(w, " | ")
			}
			if i == 0 {
				fmt.Fprintf(w, "%-*s", width[i], s)
			} else {
				fmt.Fprintf(w, "%*s", width[i], s)
			}
		}
		fmt.Fprintln(w)
		if n == 0 {
			for i := range line {
				if i > 0 {
					fmt.Fprint(w, "-|-")
				}
				fmt.Fprint(w, strings.Repeat("-", width[i]))
			}
			fmt.Fprintln(w)
		}
	}
	for _, r := range results {
		if cl := r.res.ErrorClasses(); len(cl) > 0 {
			fmt.Fprintf(w, "\n%s, %d clients, Error lines by kind:\n", r.target, r.clients)
			for _, c := range cl[:min(len(cl), 5)] {
				fmt.Fprintf(w, "  %6d  %s\n", c.N, c.What)
			}
		}
	}
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
