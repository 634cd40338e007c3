package main

import (
	"fmt"
	"io"
	"math"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
)

func printTable(w io.Writer, sz sizes, r, c *results, delayedACK bool) {
	p50 := func(ds []time.Duration) float64 { return benchutil.Ms(benchutil.Percentile(ds, 0.5)) }
	// mibps is MiB/s of one 1 MiB body fetched in the median time.
	mibps := func(ds []time.Duration) float64 { return 1 / benchutil.Percentile(ds, 0.5).Seconds() }
	rows := []benchutil.Row{
		{Metric: fmt.Sprintf("APPEND 10 KiB, 1 conn serial, %d msgs (msgs/s)", sz.Append10K), Rookery: r.Append10K, Cyrus: c.Append10K},
		{Metric: fmt.Sprintf("APPEND 10 KiB, %d conns parallel, %d msgs (msgs/s)", sz.Conns, sz.Parallel), Rookery: r.Parallel, Cyrus: c.Parallel},
		{Metric: fmt.Sprintf("APPEND 1 MiB, 1 conn serial, %d msgs (msgs/s)", sz.Append1M), Rookery: r.Append1M, Cyrus: c.Append1M, Decimals: 1},
		{Metric: fmt.Sprintf("FETCH BODY.PEEK[] of 1 MiB, p50 of %d (ms)", sz.Fetches), Rookery: p50(r.Fetch), Cyrus: p50(c.Fetch), Latency: true},
		{Metric: "FETCH BODY.PEEK[] of 1 MiB at p50 (MiB/s)", Rookery: mibps(r.Fetch), Cyrus: mibps(c.Fetch)},
		{Metric: fmt.Sprintf("SELECT of %d msgs, p50 of %d (ms)", sz.Fill, sz.Selects), Rookery: p50(r.Select), Cyrus: p50(c.Select), Latency: true},
		{Metric: fmt.Sprintf("MULTIAPPEND %d x 1 KiB, %d per cmd (msgs/s)", sz.Fill, sz.Batch), Rookery: r.Fill, Cyrus: c.Fill},
		{Metric: fmt.Sprintf("LMTP 10 KiB, 1 conn serial, %d msgs (msgs/s)", sz.LMTP10K), Rookery: r.LMTP10K, Cyrus: c.LMTP10K},
		{Metric: fmt.Sprintf("LMTP 1 MiB, 1 conn serial, %d msgs (msgs/s)", sz.LMTP1M), Rookery: r.LMTP1M, Cyrus: c.LMTP1M, Decimals: 1},
	}
	benchutil.WriteTable(w, rows)
	fmt.Fprintln(w, "\nratio: Rookery/Cyrus for rates, Cyrus/Rookery for times; above 1 means Rookery is faster; - = not measured.")
	fmt.Fprintln(w, "APPEND: go-imap's client sends each message as a synchronizing literal and waits for the tagged OK before the next;")
	fmt.Fprintln(w, "  the parallel row gives each connection its own mailbox. FETCH: from command to tagged OK, every byte read.")
	fmt.Fprintln(w, "SELECT: each one opens the mailbox afresh (UNSELECT in between, not timed); the mailbox was filled by the")
	fmt.Fprintln(w, "  MULTIAPPEND row (LITERAL+, one command per batch, its tagged OK awaited before the next).")
	fmt.Fprintln(w, "LMTP: MAIL, RCPT (one recipient, the user's INBOX), DATA, each awaited; no PIPELINING.")
	if math.IsNaN(r.LMTP10K) {
		fmt.Fprintln(w, "  Rookery's node has no LMTP listener yet, so its LMTP rows are empty.")
	}
	if delayedACK {
		fmt.Fprintln(w, "client: delayed ACKs on (-delayed-ack): Cyrus, without TCP_NODELAY, can stall up to 40 ms per response")
		fmt.Fprintln(w, "  written in pieces (FETCH) by Nagle's algorithm on loopback; that is in its figures.")
	} else {
		fmt.Fprintln(w, "client: ACKs at once (TCP_QUICKACK), so Nagle's algorithm on Cyrus's sockets (no TCP_NODELAY) cannot stall a")
		fmt.Fprintln(w, "  response for the client's delayed ACK on loopback; -delayed-ack shows those stalls (up to 40 ms per FETCH).")
	}
}
