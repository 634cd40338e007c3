package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"slices"
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

// TestMeasureRookeryReplica runs the replica measurements, with small
// sizes, on Rookery only: full sync, propagation through the replica and
// the resume after a restart each produce a figure.
func TestMeasureRookeryReplica(t *testing.T) {
	master, err := startRookery(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	sz := replicaSizes{Entries: 3000, Propagation: 20, Changes: 30, Conns: 2, Window: 16}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := measureRookeryReplica(ctx, master, t.TempDir(), sz, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != 3000 || res.FullSync <= 0 || res.RestartStart <= 0 || res.Restart < res.RestartStart {
		t.Errorf("results %+v", res)
	}
	if len(res.Propagation) != sz.Propagation || res.Propagation[0] <= 0 {
		t.Errorf("propagation samples %v, want %d positive ones", res.Propagation, sz.Propagation)
	}
	if n := master.Store().Count(); n != 3050 {
		t.Errorf("master holds %d mailboxes, want 3050", n)
	}

	var out bytes.Buffer
	c := *res
	c.Entries = 1000
	printReplicaTable(&out, sz, res, &c)
	got := out.String()
	for _, want := range []string{"Rookery 3000 / Cyrus 1000 entries (s)", "1.00x", "restart after 30 master changes", "understates"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

// TestFindPropagation checks the Cyrus side's propagation by FIND polling
// and the wait for a server's greeting, against a Rookery master.
func TestFindPropagation(t *testing.T) {
	n, err := startRookery(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tg := rookeryTarget("Rookery", n.MUPDATEAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := findPropagation(ctx, tg, tg, names("user.f", 0, 3), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 || ds[0] <= 0 {
		t.Errorf("samples %v", ds)
	}
	if _, err := awaitFind(ctx, tg, "user.f2"); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	if _, err := awaitFind(short, tg, "user.missing"); err == nil {
		t.Error("awaitFind found a mailbox that does not exist")
	}
}

// TestProcessAge checks the age of this process against the time the test
// has been running.
func TestProcessAge(t *testing.T) {
	age, at, err := processAge(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if age < 0 || age > 5*time.Minute || time.Since(at) > time.Minute {
		t.Errorf("age %v at %v", age, at)
	}
	if _, _, err := processAge(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// TestList runs the -list mode at a tiny size against real Cyrus
// frontends, so that it keeps working: the three frontends must give alice
// the same answers, those she should get, and the table must show them.
func TestList(t *testing.T) {
	cyrustest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	sz := listSizes{Entries: []int{minListEntries}, Runs: 3, Budget: time.Second, Conns: 2, Window: 8}
	if err := runList(ctx, &out, io.Discard, sz); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{`75      | LIST "" "*"       |`, `LSUB "" "*"`, "| 3/3/3", `[75] LIST "" "%": Rookery user; Cyrus reverseacls user; Cyrus default user`} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestParseListing reads the forms a mailbox name takes in LIST and LSUB
// answers, and refuses lines it cannot read.
func TestParseListing(t *testing.T) {
	got, err := parseListing([]string{
		`* LIST (\HasNoChildren) "." INBOX.f1`,
		`* LIST (\Noselect \HasChildren) "." "user"`,
		`* LSUB () "." "a \"b\""`,
		"* LIST () NIL {5}\r\nx y z",
		`* OK [ALERT] not a listing`,
	})
	want := []listed{{"INBOX.f1", false}, {"user", true}, {`a "b"`, false}, {"x y z", false}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("parseListing = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{`* LIST (\HasNoChildren "." INBOX`, `* LIST () "." "open`, `* LIST () "." `, `* LIST () . INBOX`} {
		if _, err := parseListing([]string{bad}); err == nil {
			t.Errorf("parseListing(%q) took it", bad)
		}
	}
}

// TestCheckListings: answers that agree pass; a frontend that lists a
// name the others do not, misses one, lists one selectable that alice
// should not see, or marks one she should \Noselect, is reported.
func TestCheckListings(t *testing.T) {
	want := []string{"INBOX", "INBOX.a"}
	good := []listed{{"INBOX", false}, {"INBOX.a", false}, {"user", true}}
	if p := checkListings(1, `LIST "" "*"`, [nFrontends][]listed{good, good, good}, want); len(p) != 0 {
		t.Errorf("agreeing answers reported: %q", p)
	}
	for name, other := range map[string][]listed{
		"extra parent":    append(slices.Clone(good), listed{"shared", true}),
		"missing":         good[:1],
		"not for alice":   append(slices.Clone(good), listed{"user.bob", false}),
		"wanted noselect": {{"INBOX", false}, {"INBOX.a", true}, {"user", true}},
	} {
		if p := checkListings(1, `LIST "" "*"`, [nFrontends][]listed{good, good, other}, want); len(p) == 0 {
			t.Errorf("%s: not reported", name)
		}
	}
	// LSUB may mark subscriptions \Noselect.
	lsub := []listed{{"INBOX", false}, {"INBOX.a", true}}
	if p := checkListings(1, `LSUB "" "*"`, [nFrontends][]listed{lsub, lsub, lsub}, want); len(p) != 0 {
		t.Errorf("LSUB \\Noselect reported: %q", p)
	}
}
