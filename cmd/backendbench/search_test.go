package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
)

// TestSearchRookery runs the -search measurements with a tiny mailbox
// against a Rookery node only, so their code paths stay working without
// Cyrus, and checks the answers are the ones the corpus implies.
func TestSearchRookery(t *testing.T) {
	n, err := startRookery(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tg := target{Name: "Rookery", IMAP: n.IMAPAddr(), User: benchUser, Pass: benchPass}
	sz := searchSizes{N: 400, Batch: 150, Runs: 3, Changes: 43}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := createUser(ctx, tg, cyrustest.AdminUser, cyrustest.AdminPass); err != nil {
		t.Fatal(err)
	}
	co := newCorpus(sz.N)
	if co.Hits == 0 {
		t.Fatal("the corpus has no message with the search word")
	}
	res, err := measureSearch(ctx, tg, sz, co, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !(res.Fill > 0) || len(res.Queries) != len(queries) {
		t.Fatalf("fill rate %v, %d queries timed", res.Fill, len(res.Queries))
	}
	for i, q := range queries {
		got := res.Queries[i]
		if got.First <= 0 || len(got.Runs) != sz.Runs {
			t.Errorf("%s: first %v, %d runs", q.Name, got.First, len(got.Runs))
		}
		want := sz.N
		switch {
		case strings.HasPrefix(q.Name, "SEARCH"):
			want = co.Hits
		case strings.HasPrefix(q.Name, "THREAD"):
			want = threads(co)
		}
		if got.Count != want {
			t.Errorf("%s: %d in the answer, want %d", q.Name, got.Count, want)
		}
	}
	if res.Resync.First <= 0 || len(res.Resync.Runs) != sz.Runs || res.Bytes <= 0 {
		t.Errorf("resync: first %v, %d runs, %d bytes", res.Resync.First, len(res.Resync.Runs), res.Bytes)
	}
	if flags := flagChanges(sz.Changes); res.Vanished != sz.Changes-flags || res.Fetches != flags {
		t.Errorf("resync: %d vanished, %d FETCH; want %d and %d", res.Vanished, res.Fetches, sz.Changes-flags, flags)
	}

	var out bytes.Buffer
	printSearchTable(&out, sz, co.Hits, res, res)
	checkSearchTable(t, out.String(), sz)
}

// threads is how many threads REFERENCES makes of the corpus: one per
// message that answers none.
func threads(co *corpus) int {
	n := 0
	for _, m := range co.msgs {
		if m.parent < 0 {
			n++
		}
	}
	return n
}

// checkSearchTable checks that table has a row with figures for every
// measurement.
func checkSearchTable(t *testing.T, table string, sz searchSizes) {
	t.Helper()
	var want []string
	for _, q := range queries {
		want = append(want, q.Name+", first run (ms)", q.Name+", p50 of", q.Name+", p99 of")
	}
	want = append(want, "MULTIAPPEND fill, 400 msgs", "MULTIAPPEND fill, total (s)",
		"QRESYNC SELECT after 43 changes, first", "QRESYNC SELECT after 43 changes, p50", "QRESYNC SELECT after 43 changes, read (KiB)")
	rows := strings.Split(table, "\n")
	for _, w := range want {
		found := false
		for _, row := range rows {
			if strings.HasPrefix(row, w) {
				found = true
				if cells := strings.Split(row, "|"); len(cells) != 4 || strings.TrimSpace(cells[1]) == "-" || strings.TrimSpace(cells[2]) == "-" || strings.TrimSpace(cells[3]) == "-" {
					t.Errorf("row %q lacks a figure", row)
				}
			}
		}
		if !found {
			t.Errorf("table lacks a row %q:\n%s", w, table)
		}
	}
}

// TestSearchCyrus runs the whole -search mode, tiny, side by side with a
// real Cyrus backend.
func TestSearchCyrus(t *testing.T) {
	cyrustest.Require(t)
	sz := searchSizes{N: 400, Batch: 150, Runs: 3, Changes: 43}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, logs bytes.Buffer
	if err := runSearch(ctx, &out, &logs, sz, false); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	checkSearchTable(t, out.String(), sz)
	t.Logf("\n%s", out.String())
}
