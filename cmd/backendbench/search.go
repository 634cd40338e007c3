package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
)

// searchSizes say how much work the -search mode does.
type searchSizes struct {
	N       int // messages in the mailbox
	Batch   int // messages per MULTIAPPEND while filling it
	Runs    int // timed runs of each query after its first
	Changes int // flag changes and expunges before the QRESYNC resync
}

// boxSearch is the -search mode's mailbox, below the bench user's INBOX.
const boxSearch = "INBOX.search"

// query is one timed command on the selected mailbox.
type query struct {
	Name, Cmd string
}

// queries are what -search times, in this order.
var queries = []query{
	{"SORT (ARRIVAL)", "SORT (ARRIVAL) UTF-8 ALL"},
	{"SORT (DATE)", "SORT (DATE) UTF-8 ALL"},
	{"SORT (SUBJECT)", "SORT (SUBJECT) UTF-8 ALL"},
	{"SORT (FROM)", "SORT (FROM) UTF-8 ALL"},
	{"THREAD REFERENCES", "THREAD REFERENCES UTF-8 ALL"},
	{"SEARCH TEXT " + searchWord, "SEARCH TEXT " + searchWord},
}

// timings are one query's figures on one server.
type timings struct {
	First time.Duration   // the first run in the session
	Runs  []time.Duration // the runs after it, sorted
	// Count is what the answer holds: messages for SORT and SEARCH,
	// top-level threads for THREAD.
	Count int
	// Answer is a hash of the untagged answer, to compare the servers'.
	Answer uint64
}

// searchResults are one server's figures of the -search mode.
type searchResults struct {
	Fill     float64 // messages per second
	FillTime time.Duration
	Queries  []timings // as queries
	// Resync times the QRESYNC SELECTs (Count and Answer unused); Bytes
	// were read from the first one's command to its tagged OK, which had
	// Vanished UIDs in VANISHED (EARLIER) and Fetches FETCH responses.
	Resync            timings
	Bytes             int64
	Vanished, Fetches int
}

// measureSearch fills boxSearch with the corpus, times every query on it
// and then a QRESYNC resync after sz.Changes changes. Progress goes to
// logw.
func measureSearch(ctx context.Context, tg target, sz searchSizes, co *corpus, logw io.Writer) (*searchResults, error) {
	if err := createMailboxes(ctx, tg, []string{boxSearch}); err != nil {
		return nil, err
	}
	res := &searchResults{}
	fmt.Fprintf(logw, "%s: filling %s, MULTIAPPEND of %d in batches of %d ... ", tg.Name, boxSearch, co.Len(), sz.Batch)
	start := time.Now()
	rate, err := fill(ctx, tg, boxSearch, co.Len(), sz.Batch, func(w *bufio.Writer, i int) {
		msg := co.Message(i)
		// INTERNALDATE a while after the Date, so ARRIVAL and DATE differ.
		arrived := co.Date(i).Add(time.Duration(i%97) * time.Minute)
		fmt.Fprintf(w, " \"%s\" {%d+}\r\n", arrived.Format("02-Jan-2006 15:04:05 -0700"), len(msg))
		w.Write(msg)
	})
	if err != nil {
		fmt.Fprintln(logw, "failed")
		return nil, err
	}
	res.Fill, res.FillTime = rate, time.Since(start)
	fmt.Fprintf(logw, "%.0f/s, %v\n", rate, res.FillTime.Round(time.Millisecond))

	c, err := dialRaw(ctx, tg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := c.Cmd("SELECT %s", boxSearch); err != nil {
		return nil, fail(ctx, tg, "SELECT "+boxSearch, err)
	}
	for _, q := range queries {
		fmt.Fprintf(logw, "%s: %s, 1 + %d runs ... ", tg.Name, q.Name, sz.Runs)
		t, err := timeQuery(c, q, sz.Runs)
		if err != nil {
			fmt.Fprintln(logw, "failed")
			return nil, fail(ctx, tg, q.Cmd, err)
		}
		fmt.Fprintf(logw, "first %v, p50 %v, %d in the answer\n", t.First, benchutil.Percentile(t.Runs, 0.5), t.Count)
		res.Queries = append(res.Queries, t)
	}
	if err := resyncAfterChanges(ctx, tg, sz, res, logw); err != nil {
		return nil, err
	}
	return res, nil
}

// timeQuery runs q 1+runs times on c, from command to tagged OK.
func timeQuery(c *rawIMAP, q query, runs int) (timings, error) {
	var t timings
	for i := range 1 + runs {
		start := time.Now()
		untagged, err := c.Cmd("%s", q.Cmd)
		d := time.Since(start)
		if err != nil {
			return t, err
		}
		if i == 0 {
			t.First = d
			t.Count, t.Answer = answer(untagged)
			continue
		}
		t.Runs = append(t.Runs, d)
	}
	slices.Sort(t.Runs)
	return t, nil
}

// answer counts what a SORT, SEARCH or THREAD answer holds and hashes it.
func answer(untagged []string) (count int, hash uint64) {
	h := fnv.New64a()
	for _, line := range untagged {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "* THREAD"):
			depth := 0
			for _, r := range line {
				switch r {
				case '(':
					if depth == 0 {
						count++
					}
					depth++
				case ')':
					depth--
				}
			}
		case strings.HasPrefix(line, "* SORT"), strings.HasPrefix(line, "* SEARCH"):
			count += len(strings.Fields(line)) - 2
		default:
			continue
		}
		h.Write([]byte(line))
	}
	return count, h.Sum64()
}

// resyncAfterChanges has a client remember HIGHESTMODSEQ, another session
// make sz.Changes changes (seven flag changes to three expunges), and
// then times 1+sz.Runs resyncs, each a fresh connection's SELECT with
// QRESYNC from the remembered state (login and ENABLE not timed).
func resyncAfterChanges(ctx context.Context, tg target, sz searchSizes, res *searchResults, logw io.Writer) error {
	fmt.Fprintf(logw, "%s: QRESYNC after %d changes, 1 + %d resyncs ... ", tg.Name, sz.Changes, sz.Runs)
	uidValidity, modseq, uids, err := remember(ctx, tg)
	if err != nil {
		fmt.Fprintln(logw, "failed")
		return err
	}
	if len(uids) < sz.Changes {
		return fmt.Errorf("backendbench: %s: %d messages for %d changes", tg.Name, len(uids), sz.Changes)
	}
	if err := change(ctx, tg, uids, sz.Changes); err != nil {
		fmt.Fprintln(logw, "failed")
		return err
	}
	for i := range 1 + sz.Runs {
		c, err := dialRaw(ctx, tg)
		if err != nil {
			return err
		}
		if _, err := c.Cmd("ENABLE QRESYNC"); err != nil {
			c.Close()
			return fail(ctx, tg, "ENABLE QRESYNC", err)
		}
		before := c.Read()
		start := time.Now()
		untagged, err := c.Cmd("SELECT %s (QRESYNC (%d %d))", boxSearch, uidValidity, modseq)
		d := time.Since(start)
		read := c.Read() - before
		c.Close()
		if err != nil {
			return fail(ctx, tg, "SELECT (QRESYNC)", err)
		}
		if i > 0 {
			res.Resync.Runs = append(res.Resync.Runs, d)
			continue
		}
		res.Resync.First, res.Bytes = d, read
		for _, line := range untagged {
			switch {
			case strings.HasPrefix(line, "* VANISHED (EARLIER) "):
				res.Vanished += setSize(strings.TrimSpace(strings.TrimPrefix(line, "* VANISHED (EARLIER) ")))
			case strings.Contains(line, " FETCH ("):
				res.Fetches++
			}
		}
	}
	slices.Sort(res.Resync.Runs)
	fmt.Fprintf(logw, "first %v, p50 %v, %d bytes, %d vanished, %d FETCH\n",
		res.Resync.First, benchutil.Percentile(res.Resync.Runs, 0.5), res.Bytes, res.Vanished, res.Fetches)
	return nil
}

// remember selects boxSearch with QRESYNC enabled and returns what a
// client keeps for its next resync, and the mailbox's UIDs.
func remember(ctx context.Context, tg target) (uidValidity, modseq uint64, uids []uint64, err error) {
	c, err := dialRaw(ctx, tg)
	if err != nil {
		return 0, 0, nil, err
	}
	defer c.Close()
	if _, err := c.Cmd("ENABLE QRESYNC"); err != nil {
		return 0, 0, nil, fail(ctx, tg, "ENABLE QRESYNC", err)
	}
	untagged, err := c.Cmd("SELECT %s", boxSearch)
	if err != nil {
		return 0, 0, nil, fail(ctx, tg, "SELECT "+boxSearch, err)
	}
	for _, line := range untagged {
		if v, ok := respCode(line, "UIDVALIDITY"); ok {
			uidValidity = v
		}
		if v, ok := respCode(line, "HIGHESTMODSEQ"); ok {
			modseq = v
		}
	}
	if uidValidity == 0 || modseq == 0 {
		return 0, 0, nil, fmt.Errorf("backendbench: %s: SELECT %s gave no UIDVALIDITY or HIGHESTMODSEQ", tg.Name, boxSearch)
	}
	untagged, err = c.Cmd("UID SEARCH ALL")
	if err != nil {
		return 0, 0, nil, fail(ctx, tg, "UID SEARCH ALL", err)
	}
	for _, line := range untagged {
		if f := strings.Fields(line); len(f) > 2 && f[1] == "SEARCH" {
			for _, s := range f[2:] {
				uid, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return 0, 0, nil, fmt.Errorf("backendbench: %s: UID SEARCH ALL: %w", tg.Name, err)
				}
				uids = append(uids, uid)
			}
		}
	}
	return uidValidity, modseq, uids, nil
}

// respCode is the number of response code name in an untagged OK.
func respCode(line, name string) (uint64, bool) {
	_, rest, ok := strings.Cut(line, "["+name+" ")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, "]")
	v, err := strconv.ParseUint(num, 10, 64)
	return v, err == nil
}

// change makes n changes to messages of uids picked at random, ten to a
// round as a busy client would: a STORE of \Flagged on seven, and a STORE
// of \Deleted and a UID EXPUNGE of three.
func change(ctx context.Context, tg target, uids []uint64, n int) error {
	c, err := dialRaw(ctx, tg)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Cmd("SELECT %s", boxSearch); err != nil {
		return fail(ctx, tg, "SELECT "+boxSearch, err)
	}
	picked := slices.Clone(uids)
	rng := rand.New(rand.NewPCG(uint64(len(uids)), 14))
	rng.Shuffle(len(picked), func(i, j int) { picked[i], picked[j] = picked[j], picked[i] })
	picked = picked[:n]
	for len(picked) > 0 {
		round := picked[:min(10, len(picked))]
		picked = picked[len(round):]
		k := min(7, len(round))
		flag, gone := round[:k], uidSet(round[k:])
		if _, err := c.Cmd("UID STORE %s +FLAGS.SILENT (\\Flagged)", uidSet(flag)); err != nil {
			return fail(ctx, tg, "UID STORE", err)
		}
		if gone == "" {
			continue
		}
		if _, err := c.Cmd("UID STORE %s +FLAGS.SILENT (\\Deleted)", gone); err != nil {
			return fail(ctx, tg, "UID STORE", err)
		}
		if _, err := c.Cmd("UID EXPUNGE %s", gone); err != nil {
			return fail(ctx, tg, "UID EXPUNGE", err)
		}
	}
	return nil
}

// flagChanges is how many of n changes are flag changes, as change makes
// them.
func flagChanges(n int) int { return n/10*7 + min(7, n%10) }

func uidSet(uids []uint64) string {
	s := make([]string, len(uids))
	for i, u := range uids {
		s[i] = strconv.FormatUint(u, 10)
	}
	return strings.Join(s, ",")
}

// setSize counts the UIDs of a sequence set such as 1,3:5.
func setSize(set string) int {
	n := 0
	for _, part := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		if !isRange {
			n++
			continue
		}
		a, errA := strconv.Atoi(lo)
		b, errB := strconv.Atoi(hi)
		if errors.Join(errA, errB) == nil {
			n += max(a, b) - min(a, b) + 1
		}
	}
	return n
}
