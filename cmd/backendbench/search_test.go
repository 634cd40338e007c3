package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/internal/rookerytest"
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
	for _, w := range want {
		cells := row(table, w)
		if cells == nil {
			t.Errorf("table lacks a row %q:\n%s", w, table)
		} else if len(cells) != 4 || slices.Contains(cells[1:], "-") {
			t.Errorf("row %q lacks a figure", cells)
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
	if err := runSearch(ctx, &out, &logs, sz, false, ""); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	checkSearchTable(t, out.String(), sz)
	t.Logf("\n%s", out.String())
}

// TestListRookery times LIST-STATUS through the frontend of a Rookery
// murder with a few mailboxes and checks every one was listed with its
// STATUS.
func TestListRookery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topo, err := rookerytest.Start(ctx, rookerytest.Murder, t.TempDir(), nil,
		rookerytest.User{Name: benchUser, Pass: benchPass}, rookerytest.User{Name: otherUser, Pass: otherPass})
	if err != nil {
		t.Fatal(err)
	}
	defer topo.Close()
	tg := target{Name: "Rookery", IMAP: topo.IMAPAddr, User: benchUser, Pass: benchPass}
	res, err := measureList(ctx, tg, 12, 3, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	// Twelve made and the bench user's INBOX have a STATUS.
	if res.Created != 12 || res.Times.Count != 13 || res.Times.First <= 0 || len(res.Times.Runs) != 3 {
		t.Errorf("%d of 12 listed, %d STATUS, first %v, %d runs", res.Created, res.Times.Count, res.Times.First, len(res.Times.Runs))
	}
	for _, box := range []string{"user.bench.l0005", "user.bench2.l0006"} {
		be := topo.Backends[0]
		if strings.HasPrefix(box, "user.bench2") {
			be = topo.Backends[1]
		}
		if _, ok, err := be.Mail().Mailbox(box); err != nil || !ok {
			t.Errorf("%s not on its owner's backend (%v)", box, err)
		}
	}
}

// TestListCyrus runs the whole -list mode, tiny, with Rookery and Cyrus
// murders.
func TestListCyrus(t *testing.T) {
	cyrustest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, logs bytes.Buffer
	if err := runList(ctx, &out, &logs, 10, 2); err != nil {
		t.Fatalf("%v\n%s", err, logs.String())
	}
	table := out.String()
	for _, want := range []string{"LIST-STATUS through the frontend, 10 mailboxes on 2 backends, first run (ms)",
		"LIST-STATUS through the frontend, p50 of 2 (ms)", "LIST-STATUS through the frontend, p99 of 2 (ms)"} {
		if cells := row(table, want); len(cells) != 4 || cells[3] == "-" {
			t.Errorf("row %q: %q\n%s", want, cells, table)
		}
	}
	if cells := row(table, "check: of the 10 mailboxes, listed"); len(cells) != 4 || cells[1] != "10" || cells[2] != "10" {
		t.Errorf("listed: %q\n%s", cells, table)
	}
	t.Logf("\n%s", table)
}

// row is the trimmed cells of the table row whose metric starts with
// prefix, nil if there is none.
func row(table, prefix string) []string {
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, prefix) {
			cells := strings.Split(line, "|")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			return cells
		}
	}
	return nil
}
