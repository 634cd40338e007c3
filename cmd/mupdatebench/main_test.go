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

// TestMeasureRookery runs every measurement, with tiny sizes, against a
// Rookery master only, so the benchmark's code paths stay working without
// Cyrus; it checks that each produced a figure, not how good it is.
func TestMeasureRookery(t *testing.T) {
	n, err := startRookery(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tg := target{Name: "Rookery", Addr: n.MUPDATEAddr(), User: cyrustest.MupdateUser, Pass: cyrustest.MupdatePass}
	sz := sizes{Serial: 20, Pipelined: 100, Conns: 2, Window: 8, Finds: 20, FindsPipelined: 100,
		Entries: 300, Dumps: 2, Propagation: 5}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := measure(ctx, tg, sz, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"serial": res.Serial, "pipelined": res.Pipelined, "load": res.Load,
		"find": res.Find, "find pipelined": res.FindPipelined, "dump": res.Dump} {
		if !(v > 0) {
			t.Errorf("%s rate = %v, want > 0", name, v)
		}
	}
	if res.LoadCount != 180 || res.DumpEntries != 300 {
		t.Errorf("load %d, dump %d entries; want 180 and 300", res.LoadCount, res.DumpEntries)
	}
	if len(res.Propagation) != sz.Propagation || res.Propagation[0] <= 0 {
		t.Errorf("propagation samples %v, want %d positive ones", res.Propagation, sz.Propagation)
	}
	if n := n.Store().Count(); n != 305 {
		t.Errorf("master holds %d mailboxes, want 305", n)
	}

	var out bytes.Buffer
	printTable(&out, sz, sz, res, res)
	if got := out.String(); !strings.Contains(got, "UPDATE dump, 300 entries, best of 2") || !strings.Contains(got, "1.00x") {
		t.Errorf("table:\n%s", got)
	}
}

// TestMeasureCancel checks that cancelling stops a measurement promptly,
// as Ctrl-C must (cleanup follows in run).
func TestMeasureCancel(t *testing.T) {
	n, err := startRookery(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tg := target{Name: "Rookery", Addr: n.MUPDATEAddr(), User: cyrustest.MupdateUser, Pass: cyrustest.MupdatePass}
	// The deadline hits mid-way: far more names than fit into it.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = activatePipelined(ctx, tg, names("user.c", 0, 300_000), 2, 16)
	if err == nil || ctx.Err() == nil {
		t.Fatalf("err = %v after cancel, want a cancellation error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v to stop", d)
	}
}

func TestPercentile(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]time.Duration{0.5: 5, 0.99: 10, 1: 10, 0.1: 1} {
		if got := percentile(ds, q); got != want {
			t.Errorf("percentile(%v) = %v, want %v", q, got, want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile of nothing = %v", got)
	}
}
