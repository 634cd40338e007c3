package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
)

// boxBig is the -big mode's mailbox, below the bench user's INBOX.
const boxBig = "INBOX.big"

// bigResults are one server's figures of the -big mode: one mailbox of
// N small messages, the operations a client does on it.
type bigResults struct {
	Fill       float64 // messages per second
	FillTime   time.Duration
	Select     []time.Duration // fresh connections' SELECTs, sorted
	FetchFlags time.Duration   // FETCH 1:* (FLAGS)
	Fetched    int
	Search     []time.Duration // UID SEARCH of a subject, sorted
	SearchHits int
	Store      time.Duration // STORE of \Deleted on a tenth
	Expunge    time.Duration // EXPUNGE of that tenth
	Expunged   int
	Append     []time.Duration // APPEND of one message after, sorted
	Reselect   time.Duration   // SELECT after the expunge
	Exists     int
}

// bigMessage is message i of the -big mailbox: small, with a subject
// that one message in a thousand shares with the searched one.
func bigMessage(i int) []byte {
	return fmt.Appendf(nil, "From: sender%d@example.org\r\nTo: bench@example.org\r\nSubject: note %d\r\n"+
		"Message-ID: <big%d@example.org>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\nbody of message %d\r\n",
		i%97, i%1000, i, i)
}

// measureBig fills boxBig with n messages and times what a client does
// with a mailbox that big: open it, read every flag, search it, expunge
// the oldest tenth, add to it, open it again. Progress goes to logw.
func measureBig(ctx context.Context, tg target, n, runs int, logw io.Writer) (*bigResults, error) {
	if err := createMailboxes(ctx, tg, []string{boxBig}); err != nil {
		return nil, err
	}
	res := &bigResults{}
	const batch = 1000
	fmt.Fprintf(logw, "%s: filling %s, MULTIAPPEND of %d in batches of %d ... ", tg.Name, boxBig, n, batch)
	start := time.Now()
	rate, err := fill(ctx, tg, boxBig, n, batch, func(w *bufio.Writer, i int) {
		msg := bigMessage(i)
		fmt.Fprintf(w, " {%d+}\r\n", len(msg))
		w.Write(msg)
	})
	if err != nil {
		fmt.Fprintln(logw, "failed")
		return nil, err
	}
	res.Fill, res.FillTime = rate, time.Since(start)
	fmt.Fprintf(logw, "%.0f/s, %v\n", rate, res.FillTime.Round(time.Millisecond))

	for range runs {
		d, _, err := timeSelect(ctx, tg)
		if err != nil {
			return nil, err
		}
		res.Select = append(res.Select, d)
	}
	slices.Sort(res.Select)

	c, err := dialRaw(ctx, tg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Cmd("SELECT %s", boxBig); err != nil {
		return nil, fail(ctx, tg, "SELECT "+boxBig, err)
	}
	step := func(what, cmd string) ([]string, time.Duration, error) {
		fmt.Fprintf(logw, "%s: %s ... ", tg.Name, what)
		start := time.Now()
		untagged, err := c.Cmd("%s", cmd)
		d := time.Since(start)
		if err != nil {
			fmt.Fprintln(logw, "failed")
			return nil, 0, fail(ctx, tg, cmd, err)
		}
		fmt.Fprintf(logw, "%v\n", d.Round(time.Millisecond))
		return untagged, d, nil
	}
	untagged, d, err := step("FETCH 1:* (FLAGS)", "FETCH 1:* (FLAGS)")
	if err != nil {
		return nil, err
	}
	res.FetchFlags, res.Fetched = d, countContaining(untagged, " FETCH (")

	for i := range runs {
		untagged, d, err := step("UID SEARCH SUBJECT", `UID SEARCH SUBJECT "note 42"`)
		if err != nil {
			return nil, err
		}
		res.Search = append(res.Search, d)
		if i == 0 {
			res.SearchHits, _ = answer(untagged)
		}
	}
	slices.Sort(res.Search)

	tenth := n / 10
	if _, res.Store, err = step("STORE \\Deleted on a tenth", fmt.Sprintf(`STORE 1:%d +FLAGS.SILENT (\Deleted)`, tenth)); err != nil {
		return nil, err
	}
	if untagged, res.Expunge, err = step("EXPUNGE of a tenth", "EXPUNGE"); err != nil {
		return nil, err
	}
	res.Expunged = countContaining(untagged, " EXPUNGE")

	a, err := dialRaw(ctx, tg)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	for i := range runs {
		msg := bigMessage(n + i)
		start := time.Now()
		_, err := a.CmdWith(func(w *bufio.Writer) {
			fmt.Fprintf(w, "APPEND %s {%d+}\r\n", boxBig, len(msg))
			w.Write(msg)
		})
		if err != nil {
			return nil, fail(ctx, tg, "APPEND", err)
		}
		res.Append = append(res.Append, time.Since(start))
	}
	slices.Sort(res.Append)

	if res.Reselect, res.Exists, err = timeSelect(ctx, tg); err != nil {
		return nil, err
	}
	return res, nil
}

// timeSelect times a fresh connection's SELECT of boxBig (login not
// timed) and returns the EXISTS it gave.
func timeSelect(ctx context.Context, tg target) (time.Duration, int, error) {
	c, err := dialRaw(ctx, tg)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	start := time.Now()
	untagged, err := c.Cmd("SELECT %s", boxBig)
	d := time.Since(start)
	if err != nil {
		return 0, 0, fail(ctx, tg, "SELECT "+boxBig, err)
	}
	exists := 0
	for _, line := range untagged {
		if f := strings.Fields(line); len(f) == 3 && f[2] == "EXISTS" {
			fmt.Sscan(f[1], &exists)
		}
	}
	return d, exists, nil
}

func countContaining(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func printBigTable(w io.Writer, n, runs int, r, c *bigResults) {
	ms := func(d time.Duration) float64 { return benchutil.Ms(d) }
	p50 := func(ds []time.Duration) float64 { return ms(benchutil.Percentile(ds, 0.5)) }
	rows := []benchutil.Row{
		{Metric: fmt.Sprintf("MULTIAPPEND fill, %d msgs (msgs/s)", n), Rookery: r.Fill, Cyrus: c.Fill},
		{Metric: "MULTIAPPEND fill, total (s)", Rookery: r.FillTime.Seconds(), Cyrus: c.FillTime.Seconds(), Latency: true},
		{Metric: fmt.Sprintf("SELECT, fresh connection, p50 of %d (ms)", runs), Rookery: p50(r.Select), Cyrus: p50(c.Select), Latency: true},
		{Metric: "FETCH 1:* (FLAGS) (ms)", Rookery: ms(r.FetchFlags), Cyrus: ms(c.FetchFlags), Latency: true},
		{Metric: fmt.Sprintf("UID SEARCH SUBJECT, p50 of %d (ms)", runs), Rookery: p50(r.Search), Cyrus: p50(c.Search), Latency: true},
		{Metric: fmt.Sprintf("STORE +FLAGS.SILENT (\\Deleted) on %d (ms)", n/10), Rookery: ms(r.Store), Cyrus: ms(c.Store), Latency: true},
		{Metric: fmt.Sprintf("EXPUNGE of %d (ms)", n/10), Rookery: ms(r.Expunge), Cyrus: ms(c.Expunge), Latency: true},
		{Metric: fmt.Sprintf("APPEND of one after, p50 of %d (ms)", runs), Rookery: p50(r.Append), Cyrus: p50(c.Append), Latency: true},
		{Metric: "SELECT after the EXPUNGE (ms)", Rookery: ms(r.Reselect), Cyrus: ms(c.Reselect), Latency: true},
		{Metric: "check: FETCH responses", Rookery: float64(r.Fetched), Cyrus: float64(c.Fetched), NoRatio: true},
		{Metric: "check: UID SEARCH hits", Rookery: float64(r.SearchHits), Cyrus: float64(c.SearchHits), NoRatio: true},
		{Metric: "check: EXPUNGE responses", Rookery: float64(r.Expunged), Cyrus: float64(c.Expunged), NoRatio: true},
		{Metric: "check: EXISTS at the end", Rookery: float64(r.Exists), Cyrus: float64(c.Exists), NoRatio: true},
	}
	benchutil.WriteTable(w, rows)
	fmt.Fprintln(w, "\nratio: Rookery/Cyrus for rates, Cyrus/Rookery for times; above 1 means Rookery is faster.")
	fmt.Fprintln(w, "mailbox: small generated messages (about 200 bytes), MULTIAPPEND with LITERAL+; one session SELECTs it and")
	fmt.Fprintln(w, "  reads every flag, searches a subject one message in a thousand has, marks the oldest tenth \\Deleted and")
	fmt.Fprintln(w, "  EXPUNGEs it (every untagged EXPUNGE read); another appends one message at a time; times are command to")
	fmt.Fprintln(w, "  tagged OK, login not timed.")
}
