// Command backendbench measures a Rookery backend against a real Cyrus
// IMAP 3.6 backend, side by side on this machine, and prints a table with
// the ratio of the two: APPEND rates (10 KiB and 1 MiB messages), FETCH of
// a 1 MiB body, SELECT of a big mailbox and LMTP delivery rates.
//
// It needs root and the Cyrus murder packages (sudo internal/cyrustest/install-cyrus.sh):
// everything is started fresh by the run and removed again on every way
// out, Ctrl-C included. Rookery runs in-process as one master+backend node;
// Cyrus runs through internal/cyrustest as a backend with its own
// `mupdate -m` master. Both keep their data on the same file system, and
// both are measured the same way, with the go-imap v2 client and a small
// LMTP client, one after the other so they never compete for the CPU.
//
// With -search it measures instead SORT, THREAD and SEARCH TEXT on one
// big mailbox of generated mail, and a QRESYNC resync after changes to it.
// With -list it starts a murder of each (a master, two backends and a
// frontend) and measures LIST-STATUS through the frontend. With -big it
// fills one mailbox with a million small messages and times SELECT,
// FETCH 1:* (FLAGS), UID SEARCH, the EXPUNGE of a tenth and APPEND.
//
//	go run ./cmd/backendbench                  # about 1 minute
//	go run ./cmd/backendbench -quick           # about 15 s
//	go run ./cmd/backendbench -search          # 100,000 messages
//	go run ./cmd/backendbench -search -quick   # 10,000 messages
//	go run ./cmd/backendbench -list            # LIST-STATUS of 1,000 mailboxes through a frontend
//	go run ./cmd/backendbench -big             # a 1,000,000-message mailbox
//	go run ./cmd/backendbench -big -quick      # a 100,000-message mailbox
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/rookery/rookery/internal/benchutil"
)

func main() {
	quick := flag.Bool("quick", false, "smaller sizes")
	delayedACK := flag.Bool("delayed-ack", false, "keep the client's delayed ACKs: shows Cyrus's Nagle stalls on loopback")
	search := flag.Bool("search", false, "measure SORT, THREAD, SEARCH TEXT and QRESYNC on one big mailbox instead")
	list := flag.Bool("list", false, "measure LIST-STATUS through a frontend of two backends instead, Rookery and Cyrus murders")
	big := flag.Bool("big", false, "measure SELECT, FETCH FLAGS, SEARCH, EXPUNGE and APPEND on a mailbox of a million messages instead")
	n := flag.Int("n", 0, "messages in the -search mailbox (default 100000, 10000 with -quick) or the -big one (default 1000000, 100000 with -quick); mailboxes for -list (default 1000, 200 with -quick)")
	cpuprofile := flag.String("cpuprofile", "", "with -search or -big: write a CPU profile of this process while it measures Rookery (in-process) to this file")
	runs := flag.Int("runs", 20, "timed runs of each -search query, and of -list's LIST-STATUS, after the first")
	flag.Parse()
	ctx, cancel := benchutil.Start("backendbench")

	var err error
	switch {
	case *big:
		msgs := 1_000_000
		if *quick {
			msgs = 100_000
		}
		if *n > 0 {
			msgs = *n
		}
		err = runBig(ctx, os.Stdout, os.Stderr, msgs, min(*runs, 5), *cpuprofile)
	case *list:
		boxes := 1000
		if *quick {
			boxes = 200
		}
		if *n > 0 {
			boxes = *n
		}
		err = runList(ctx, os.Stdout, os.Stderr, boxes, *runs)
	case *search:
		ss := searchSizes{N: 100_000, Batch: 500, Runs: *runs, Changes: 1000}
		if *quick {
			ss.N = 10_000
		}
		if *n > 0 {
			ss.N = *n
		}
		ss.Changes = min(ss.Changes, ss.N/2)
		err = runSearch(ctx, os.Stdout, os.Stderr, ss, *delayedACK, *cpuprofile)
	default:
		sz := fullSizes
		if *quick {
			sz = quickSizes
		}
		err = run(ctx, os.Stdout, os.Stderr, sz, *delayedACK)
	}
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Sizes of a full and a quick run. Cyrus's serial APPENDs and LMTP
// deliveries, each synced to disk, dominate the run time.
var (
	fullSizes = sizes{
		Append10K: 2000, Append1M: 100, Conns: 4, Parallel: 2000,
		Fetches: 50, Fill: 10000, Batch: 500, Selects: 20,
		LMTP10K: 2000, LMTP1M: 100,
	}
	quickSizes = sizes{
		Append10K: 300, Append1M: 20, Conns: 4, Parallel: 300,
		Fetches: 20, Fill: 10000, Batch: 500, Selects: 10,
		LMTP10K: 300, LMTP1M: 20,
	}
)

// run starts both backends, measures Rookery's and then Cyrus's, and
// prints the table to out; progress goes to logw. Everything it starts is
// stopped and removed before it returns.
func run(ctx context.Context, out, logw io.Writer, sz sizes, delayedACK bool) error {
	return sideBySide(ctx, out, logw, delayedACK, "", "go-imap v2 imapclient and a minimal LMTP client",
		func(tg target) (*results, error) { return measure(ctx, tg, sz, logw) },
		func(w io.Writer, r, c *results) { printTable(w, sz, r, c, delayedACK) })
}

// sideBySide starts both backends, measures Rookery (profiled into
// cpuprofile when one is named), stops it, measures Cyrus, then prints
// the header, naming the client, and the table. Everything it starts is
// stopped and removed before it returns.
func sideBySide[R any](ctx context.Context, out, logw io.Writer, delayedACK bool, cpuprofile, client string,
	measure func(target) (R, error), print func(w io.Writer, rookery, cyrus R)) (err error) {
	s, err := startServers(ctx, logw, delayedACK)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("backendbench: cleaning up: %w", cerr))
		}
	}()
	loadBefore := benchutil.LoadAvg()
	stop, err := startProfile(cpuprofile)
	if err != nil {
		return err
	}
	rr, err := measure(s.rt)
	if err = errors.Join(err, stop()); err != nil {
		return err
	}
	// Stopped, Rookery's runtime and store do no background work (GC,
	// compactions) while Cyrus is measured.
	if err := s.rookery.Close(); err != nil {
		return fmt.Errorf("backendbench: stopping rookery: %w", err)
	}
	cr, err := measure(s.ct)
	if err != nil {
		return err
	}
	s.printHeader(out, loadBefore, client)
	print(out, rr, cr)
	return nil
}

// startProfile starts a CPU profile of this process into file, if one is
// named, and returns what stops it.
func startProfile(file string) (stop func() error, err error) {
	if file == "" {
		return func() error { return nil }, nil
	}
	prof, err := os.Create(file)
	if err != nil {
		return nil, fmt.Errorf("backendbench: %w", err)
	}
	if err := pprof.StartCPUProfile(prof); err != nil {
		return nil, errors.Join(fmt.Errorf("backendbench: %w", err), prof.Close())
	}
	return func() error {
		pprof.StopCPUProfile()
		return prof.Close()
	}, nil
}

// runBig is run for the -big mode: Rookery, then Cyrus, runs timed
// repeats of the short operations.
func runBig(ctx context.Context, out, logw io.Writer, n, runs int, cpuprofile string) error {
	return sideBySide(ctx, out, logw, false, cpuprofile, "a minimal IMAP client",
		func(tg target) (*bigResults, error) { return measureBig(ctx, tg, n, runs, logw) },
		func(w io.Writer, r, c *bigResults) { printBigTable(w, n, runs, r, c) })
}

// runSearch is run for the -search mode; with cpuprofile set it profiles
// Rookery's part (its fill, queries and resyncs) into that file.
func runSearch(ctx context.Context, out, logw io.Writer, sz searchSizes, delayedACK bool, cpuprofile string) error {
	co := newCorpus(sz.N)
	return sideBySide(ctx, out, logw, delayedACK, cpuprofile, "a minimal IMAP client counting the bytes it reads",
		func(tg target) (*searchResults, error) { return measureSearch(ctx, tg, sz, co, logw) },
		func(w io.Writer, r, c *searchResults) { printSearchTable(w, sz, co.Hits, r, c) })
}
