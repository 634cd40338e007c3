package main

import (
	"fmt"
	"io"
	"math"
	"strings"
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

func printSearchTable(w io.Writer, sz searchSizes, hits int, r, c *searchResults) {
	ms := func(d time.Duration) float64 { return benchutil.Ms(d) }
	p := func(ds []time.Duration, q float64) float64 { return ms(benchutil.Percentile(ds, q)) }
	rows := []benchutil.Row{
		{Metric: fmt.Sprintf("MULTIAPPEND fill, %d msgs, %d per cmd (msgs/s)", sz.N, sz.Batch), Rookery: r.Fill, Cyrus: c.Fill},
		{Metric: "MULTIAPPEND fill, total (s)", Rookery: r.FillTime.Seconds(), Cyrus: c.FillTime.Seconds(), Latency: true},
	}
	var same []string
	for i, q := range queries {
		rq, cq := r.Queries[i], c.Queries[i]
		rows = append(rows,
			benchutil.Row{Metric: q.Name + ", first run (ms)", Rookery: ms(rq.First), Cyrus: ms(cq.First), Latency: true},
			benchutil.Row{Metric: fmt.Sprintf("%s, p50 of %d (ms)", q.Name, sz.Runs), Rookery: p(rq.Runs, 0.5), Cyrus: p(cq.Runs, 0.5), Latency: true},
			benchutil.Row{Metric: fmt.Sprintf("%s, p99 of %d (ms)", q.Name, sz.Runs), Rookery: p(rq.Runs, 0.99), Cyrus: p(cq.Runs, 0.99), Latency: true},
		)
		verdict := "same"
		if rq.Answer != cq.Answer {
			verdict = "differ"
		}
		same = append(same, fmt.Sprintf("%s %s", q.Name, verdict))
	}
	rows = append(rows,
		benchutil.Row{Metric: fmt.Sprintf("QRESYNC SELECT after %d changes, first (ms)", sz.Changes), Rookery: ms(r.Resync.First), Cyrus: ms(c.Resync.First), Latency: true},
		benchutil.Row{Metric: fmt.Sprintf("QRESYNC SELECT after %d changes, p50 of %d (ms)", sz.Changes, sz.Runs), Rookery: p(r.Resync.Runs, 0.5), Cyrus: p(c.Resync.Runs, 0.5), Latency: true},
		benchutil.Row{Metric: fmt.Sprintf("QRESYNC SELECT after %d changes, read (KiB)", sz.Changes), Rookery: float64(r.Bytes) / 1024, Cyrus: float64(c.Bytes) / 1024, Latency: true},
		benchutil.Row{Metric: "check: messages in SORT (ARRIVAL)", Rookery: float64(r.Queries[0].Count), Cyrus: float64(c.Queries[0].Count), NoRatio: true},
		benchutil.Row{Metric: "check: top-level threads in THREAD REFERENCES", Rookery: float64(r.Queries[4].Count), Cyrus: float64(c.Queries[4].Count), NoRatio: true},
		benchutil.Row{Metric: fmt.Sprintf("check: SEARCH TEXT hits (%d bodies have the word)", hits), Rookery: float64(r.Queries[5].Count), Cyrus: float64(c.Queries[5].Count), NoRatio: true},
		benchutil.Row{Metric: fmt.Sprintf("check: QRESYNC VANISHED UIDs (%d expunged)", sz.Changes-flagChanges(sz.Changes)), Rookery: float64(r.Vanished), Cyrus: float64(c.Vanished), NoRatio: true},
		benchutil.Row{Metric: fmt.Sprintf("check: QRESYNC FETCH responses (%d flagged)", flagChanges(sz.Changes)), Rookery: float64(r.Fetches), Cyrus: float64(c.Fetches), NoRatio: true},
	)
	benchutil.WriteTable(w, rows)
	fmt.Fprintln(w, "\nratio: Rookery/Cyrus for rates, Cyrus/Rookery for times and bytes; above 1 means Rookery is faster or smaller.")
	fmt.Fprintln(w, "mailbox: a generated corpus (threads with Re:/Fwd: and References chains, varied senders and dates, plain,")
	fmt.Fprintln(w, "  quoted-printable and base64 bodies), MULTIAPPEND with LITERAL+ and an INTERNALDATE per message.")
	fmt.Fprintln(w, "queries: one session, the mailbox SELECTed once; each query's first run apart, then its repeated runs, command")
	fmt.Fprintln(w, "  to tagged OK with every byte read (nearest-rank percentiles: below 100 runs p99 is the slowest run).")
	fmt.Fprintln(w, "  SORT and THREAD with charset UTF-8 and ALL.")
	fmt.Fprintf(w, "answers (hashed untagged lines), Rookery against Cyrus: %s.\n", strings.Join(same, ", "))
	fmt.Fprintln(w, "QRESYNC: remembered UIDVALIDITY/HIGHESTMODSEQ, then another session made the changes in rounds of ten")
	fmt.Fprintln(w, "  (UID STORE \\Flagged on seven, UID STORE \\Deleted and UID EXPUNGE on three); each resync is a fresh")
	fmt.Fprintln(w, "  connection's ENABLE QRESYNC (not timed) and SELECT (QRESYNC (uidvalidity modseq)) to its tagged OK.")
}
