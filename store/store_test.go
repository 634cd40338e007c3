package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/store/fault"
)

func openT(t testing.TB, dir string, opts Options) *DB {
	t.Helper()
	db, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return db
}

// openTemp opens a store that is closed when the test ends.
func openTemp(t testing.TB, opts Options) *DB {
	t.Helper()
	db := openT(t, t.TempDir(), opts)
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return db
}

func put(e Entry) Change     { return Change{Name: e.Name, New: &e} }
func del(name string) Change { return Change{Name: name} }

func commit(t testing.TB, db *DB, changes ...Change) uint64 {
	t.Helper()
	seq, err := db.Commit(&Batch{Changes: changes})
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return seq
}

func mustGet(t testing.TB, db *DB, name string) (Entry, bool) {
	t.Helper()
	e, ok, err := db.Get(name)
	if err != nil {
		t.Fatalf("get %q: %v", name, err)
	}
	return e, ok
}

func scanAll(t testing.TB, s *Snapshot) []Entry {
	t.Helper()
	var got []Entry
	if err := s.Scan(func(e Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatalf("scan: %v", err)
	}
	return got
}

func changesSince(t testing.TB, db *DB, after uint64, limit int) ([]Change, uint64) {
	t.Helper()
	var got []Change
	last, err := db.ChangesSince(after, limit, func(c Change) error { got = append(got, c); return nil })
	if err != nil {
		t.Fatalf("changes since %d: %v", after, err)
	}
	return got, last
}

var oddEntries = []Entry{
	{Name: "user.bob", Kind: Active, Location: "be1!default", ACL: "bob\tlrswipkxtecdan\tanyone\tlrs\t"},
	{Name: "user.nopart", Kind: Active, Location: "be1", ACL: "x\tl\t"},
	{Name: "user.emptypart", Kind: Active, Location: "be1!", ACL: ""},
	{Name: "user.bangs", Kind: Active, Location: "a!b!c", ACL: "a\tb\t"},
	{Name: "user.reserved", Kind: Reserved, Location: "be2!p"},
	{Name: "user.noloc", Kind: Reserved},
	{Name: "example.com!user.eve", Kind: Active, Location: "be3!p2", ACL: "eve@example.com\tlrswipkxtecdan\t"},
	{Name: "user.zoë^x", Kind: Active, Location: "bé!ü", ACL: "zoë\tlr\t"},
	{Name: "shared", Kind: Active, Location: "be1!default", ACL: string(make([]byte, 300))},
}

func TestRoundTrip(t *testing.T) {
	db := openTemp(t, Options{})
	var changes []Change
	for _, e := range oddEntries {
		changes = append(changes, put(e))
	}
	commit(t, db, changes...)
	snap := db.Snapshot()
	defer snap.Close()
	for _, want := range oddEntries {
		got, ok := mustGet(t, db, want.Name)
		if !ok || got != want {
			t.Errorf("Get(%q) = %+v, %v; want %+v", want.Name, got, ok, want)
		}
		got, ok, err := snap.Get(want.Name)
		if err != nil || !ok || got != want {
			t.Errorf("snapshot Get(%q) = %+v, %v, %v; want %+v", want.Name, got, ok, err, want)
		}
	}
	if _, ok := mustGet(t, db, "user.absent"); ok {
		t.Error("absent name found")
	}
	logged, _ := changesSince(t, db, 0, 0)
	for i, c := range logged {
		if c.Old != nil || c.New == nil || *c.New != oddEntries[i] {
			t.Errorf("log %d = %+v old %v new %+v; want new %+v", c.Seq, c, c.Old, c.New, oddEntries[i])
		}
	}
}

func TestServer(t *testing.T) {
	for loc, want := range map[string]string{
		"be1!default": "be1", "be1": "be1", "be1!": "be1", "a!b!c": "a", "": "", "!p": "",
	} {
		if got := (Entry{Location: loc}).Server(); got != want {
			t.Errorf("Server of %q = %q, want %q", loc, got, want)
		}
	}
}

func TestDBName(t *testing.T) {
	for name, want := range map[string]string{
		"user.bob":             "user\x1fbob",
		"example.com!user.eve": "example.com\x1duser\x1feve",
		"user^bob":             "user.bob",
		"user.b^o.b":           "user\x1fb.o\x1fb",
		"":                     "",
	} {
		if got := string(DBName(name)); got != want {
			t.Errorf("DBName(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestScanOrder checks Scan yields Cyrus's LIST order (mupdate-protocol.md 3.9).
func TestScanOrder(t *testing.T) {
	want := []string{
		// Domains sort as written: Cyrus keeps them verbatim in dbnames.
		"example-mail.com!user.a",
		"example.com!user.eve",
		"shared",
		"shared.x",
		"user.alice",
		"user.bob",
		"user.bob.sub",
		"user.bob.sub.deep",
		"user.bob-x",
		"user.bobby",
		"user.carol",
		"user.zoe",
		"user^bob",
		"user^bob.x",
		"zz",
	}
	db := openTemp(t, Options{})
	shuffled := slices.Clone(want)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for _, name := range shuffled {
		commit(t, db, put(Entry{Name: name, Kind: Active, Location: "be1!p"}))
	}
	snap := db.Snapshot()
	defer snap.Close()
	var got []string
	for _, e := range scanAll(t, snap) {
		got = append(got, e.Name)
	}
	if !slices.Equal(got, want) {
		t.Errorf("scan order\n got %q\nwant %q", got, want)
	}

	// Subtree: the name and its descendants, not a sibling sharing a
	// prefix.
	got = nil
	if err := snap.Subtree("user.bob", func(e Entry) error { got = append(got, e.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"user.bob", "user.bob.sub", "user.bob.sub.deep"}; !slices.Equal(got, want) {
		t.Errorf("Subtree(user.bob) = %q, want %q", got, want)
	}

	stop := errors.New("stop")
	n := 0
	err := snap.Scan(func(Entry) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Scan with failing fn: err %v after %d calls", err, n)
	}
}

// TestAliasedNames: "a.b" and "a\x1fb" share a dbname, so the second must not
// silently replace the first.
func TestAliasedNames(t *testing.T) {
	db := openTemp(t, Options{})
	commit(t, db, put(Entry{Name: "a.b", Kind: Active, Location: "be1"}))
	for _, name := range []string{"a\x1fb", "x\x1dy", ""} {
		if _, err := db.Commit(&Batch{Changes: []Change{put(Entry{Name: name, Kind: Active})}}); err == nil {
			t.Errorf("commit of %q succeeded", name)
		}
	}
	if _, ok := mustGet(t, db, "a\x1fb"); ok {
		t.Error("Get of the aliased name found a.b")
	}
	if e, ok := mustGet(t, db, "a.b"); !ok || e.Location != "be1" {
		t.Errorf("a.b = %+v, %v", e, ok)
	}
}

func TestCommitRejects(t *testing.T) {
	db := openTemp(t, Options{})
	for _, c := range []Change{
		{Name: "user.a", New: &Entry{Name: "user.b", Kind: Active}},
		{Name: "user.a", New: &Entry{Name: "user.a", Kind: 0}},
		{Name: "user.a", New: &Entry{Name: "user.a", Kind: 3}},
	} {
		if _, err := db.Commit(&Batch{Changes: []Change{put(Entry{Name: "user.ok", Kind: Active}), c}}); err == nil {
			t.Errorf("commit of %+v %+v succeeded", c, c.New)
		}
	}
	if db.LastSeq() != 0 || db.Count() != 0 {
		t.Errorf("rejected batches wrote: LastSeq %d Count %d", db.LastSeq(), db.Count())
	}
	if _, ok := mustGet(t, db, "user.ok"); ok {
		t.Error("rejected batch partly written")
	}
}

func TestCommitSeqsAndChangesSince(t *testing.T) {
	db := openTemp(t, Options{})
	if db.LastSeq() != 0 || db.OldestSeq() != 1 {
		t.Fatalf("empty store: LastSeq %d OldestSeq %d", db.LastSeq(), db.OldestSeq())
	}
	a1 := Entry{Name: "user.a", Kind: Reserved, Location: "be1!p"}
	a2 := Entry{Name: "user.a", Kind: Active, Location: "be1!p", ACL: "a\tlrs\t"}
	b := &Batch{Changes: []Change{put(a1), put(Entry{Name: "user.b", Kind: Active, Location: "be2"})}}
	if seq, err := db.Commit(b); err != nil || seq != 2 {
		t.Fatalf("first commit: %d, %v", seq, err)
	}
	if b.Changes[0].Seq != 1 || b.Changes[1].Seq != 2 {
		t.Errorf("seqs filled in: %d %d", b.Changes[0].Seq, b.Changes[1].Seq)
	}
	// The caller's Old is replaced by the stored state, including changes
	// earlier in the same batch.
	b = &Batch{Changes: []Change{put(a2), {Name: "user.a", Old: &Entry{Name: "bogus"}}, del("user.never")}}
	if seq, err := db.Commit(b); err != nil || seq != 5 {
		t.Fatalf("second commit: %d, %v", seq, err)
	}
	if b.Changes[0].Old == nil || *b.Changes[0].Old != a1 || b.Changes[1].Old == nil || *b.Changes[1].Old != a2 || b.Changes[2].Old != nil {
		t.Errorf("Olds: %+v %+v %+v", b.Changes[0].Old, b.Changes[1].Old, b.Changes[2].Old)
	}
	if seq, err := db.Commit(&Batch{Meta: map[string]string{"k": "v"}}); err != nil || seq != 5 || db.LastSeq() != 5 {
		t.Errorf("meta-only commit: %d, %v, LastSeq %d", seq, err, db.LastSeq())
	}

	all, last := changesSince(t, db, 0, 0)
	if last != 5 || len(all) != 5 {
		t.Fatalf("ChangesSince(0) = %d changes, last %d", len(all), last)
	}
	wantNames := []string{"user.a", "user.b", "user.a", "user.a", "user.never"}
	for i, c := range all {
		if c.Seq != uint64(i+1) || c.Name != wantNames[i] {
			t.Errorf("change %d: seq %d name %q", i, c.Seq, c.Name)
		}
	}
	if !reflect.DeepEqual(all[2], b.Changes[0]) || all[3].New != nil || *all[3].Old != a2 || all[4].Old != nil || all[4].New != nil {
		t.Errorf("logged changes differ: %+v %+v %+v", all[2], all[3], all[4])
	}

	// Paging by 2 delivers everything once, in order.
	var paged []Change
	for after := uint64(0); ; {
		page, last := changesSince(t, db, after, 2)
		if len(page) > 2 {
			t.Fatalf("page of %d", len(page))
		}
		if len(page) == 0 {
			if last != after {
				t.Errorf("empty page returned %d, want %d", last, after)
			}
			break
		}
		paged = append(paged, page...)
		after = last
	}
	if !reflect.DeepEqual(paged, all) {
		t.Errorf("paged changes differ from one walk")
	}
	if got, last := changesSince(t, db, 5, 0); len(got) != 0 || last != 5 {
		t.Errorf("ChangesSince(last) = %d changes, %d", len(got), last)
	}
	if got, last := changesSince(t, db, 99, 0); len(got) != 0 || last != 99 {
		t.Errorf("ChangesSince(future) = %d changes, %d", len(got), last)
	}

	stop := errors.New("stop")
	last, err := db.ChangesSince(1, 0, func(c Change) error {
		if c.Seq == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || last != 2 {
		t.Errorf("ChangesSince with failing fn = %d, %v; want 2, stop", last, err)
	}
}

func TestTrim(t *testing.T) {
	dir := t.TempDir()
	const retain = 8
	db := openT(t, dir, Options{LogRetain: retain})
	for i := range 50 {
		commit(t, db, put(Entry{Name: fmt.Sprintf("user.u%d", i%7), Kind: Active, Location: "be1"}))
		if held := db.LastSeq() - db.OldestSeq() + 1; held < min(retain, db.LastSeq()) {
			t.Fatalf("after seq %d the log holds %d records, fewer than %d", db.LastSeq(), held, retain)
		}
	}
	oldest := db.OldestSeq()
	if oldest <= 1 {
		t.Fatalf("log never trimmed: OldestSeq %d", oldest)
	}
	called := false
	if _, err := db.ChangesSince(0, 0, func(Change) error { called = true; return nil }); !errors.Is(err, ErrTrimmed) || called {
		t.Errorf("ChangesSince(0) = %v, fn called %v; want ErrTrimmed, not called", err, called)
	}
	if _, err := db.ChangesSince(oldest-2, 0, func(Change) error { return nil }); !errors.Is(err, ErrTrimmed) {
		t.Errorf("ChangesSince(oldest-2) = %v, want ErrTrimmed", err)
	}
	got, last := changesSince(t, db, oldest-1, 0)
	if last != 50 || len(got) != int(50-oldest+1) || got[0].Seq != oldest {
		t.Errorf("ChangesSince(oldest-1) = %d changes, last %d", len(got), last)
	}
	if db.Count() != 7 {
		t.Errorf("Count = %d, want 7", db.Count())
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openT(t, dir, Options{LogRetain: retain})
	defer db.Close()
	if db.OldestSeq() != oldest || db.LastSeq() != 50 {
		t.Errorf("reopened: OldestSeq %d LastSeq %d, want %d 50", db.OldestSeq(), db.LastSeq(), oldest)
	}
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, Options{})
	epoch := db.Epoch()
	if len(epoch) != 32 {
		t.Fatalf("epoch %q", epoch)
	}
	var changes []Change
	for _, e := range oddEntries {
		changes = append(changes, put(e))
	}
	if _, err := db.Commit(&Batch{Changes: changes, Meta: map[string]string{"master": "m1", "gone": "x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Commit(&Batch{Changes: []Change{del("shared")}, Meta: map[string]string{"gone": "", "resume": "42"}}); err != nil {
		t.Fatal(err)
	}
	wantLog, _ := changesSince(t, db, 0, 0)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err == nil {
		t.Error("second Close succeeded")
	}

	db = openT(t, dir, Options{})
	defer db.Close()
	if db.Epoch() != epoch {
		t.Errorf("epoch %q after reopen, want %q", db.Epoch(), epoch)
	}
	n := uint64(len(oddEntries))
	if db.LastSeq() != n+1 || db.Count() != n-1 || db.OldestSeq() != 1 || db.Reserved() != 2 {
		t.Errorf("reopened: LastSeq %d Count %d OldestSeq %d Reserved %d", db.LastSeq(), db.Count(), db.OldestSeq(), db.Reserved())
	}
	for _, want := range oddEntries {
		got, ok := mustGet(t, db, want.Name)
		if want.Name == "shared" {
			if ok {
				t.Error("deleted entry back after reopen")
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("Get(%q) = %+v, %v; want %+v", want.Name, got, ok, want)
		}
	}
	for k, want := range map[string]string{"master": "m1", "resume": "42", "gone": ""} {
		got, ok, err := db.Meta(k)
		if err != nil || got != want || ok != (want != "") {
			t.Errorf("Meta(%q) = %q, %v, %v; want %q", k, got, ok, err, want)
		}
	}
	if gotLog, _ := changesSince(t, db, 0, 0); !reflect.DeepEqual(gotLog, wantLog) {
		t.Error("log differs after reopen")
	}
	snap := db.Snapshot()
	defer snap.Close()
	if snap.Seq() != n+1 || uint64(len(scanAll(t, snap))) != n-1 {
		t.Errorf("snapshot after reopen: Seq %d", snap.Seq())
	}
}

func TestSnapshotIsolation(t *testing.T) {
	db := openTemp(t, Options{})
	a := Entry{Name: "user.a", Kind: Active, Location: "be1!p"}
	commit(t, db, put(a), put(Entry{Name: "user.b", Kind: Reserved, Location: "be2"}))
	snap := db.Snapshot()
	defer snap.Close()
	before := scanAll(t, snap)

	commit(t, db, put(Entry{Name: "user.a", Kind: Active, Location: "be9!p"}), del("user.b"), put(Entry{Name: "user.c", Kind: Active}))
	if snap.Seq() != 2 {
		t.Errorf("snapshot Seq %d, want 2", snap.Seq())
	}
	if got, ok, err := snap.Get("user.a"); err != nil || !ok || got != a {
		t.Errorf("snapshot sees the later commit: %+v, %v, %v", got, ok, err)
	}
	if after := scanAll(t, snap); !reflect.DeepEqual(after, before) {
		t.Errorf("snapshot scan changed:\n%+v\n%+v", before, after)
	}
	fresh := db.Snapshot()
	defer fresh.Close()
	if fresh.Seq() != 5 || len(scanAll(t, fresh)) != 2 {
		t.Errorf("fresh snapshot: Seq %d", fresh.Seq())
	}
}

func TestCount(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, Options{})
	e := func(name string, k Kind) Change { return put(Entry{Name: name, Kind: k, Location: "be1"}) }
	steps := []struct {
		changes  []Change
		want     uint64
		reserved uint64
	}{
		{[]Change{e("user.a", Reserved)}, 1, 1},
		{[]Change{e("user.a", Active)}, 1, 0}, // overwrite
		{[]Change{e("user.b", Active), e("user.c", Active)}, 3, 0},
		{[]Change{del("user.b")}, 2, 0},
		{[]Change{del("user.b")}, 2, 0},                        // delete of absent
		{[]Change{e("user.d", Active), del("user.d")}, 2, 0},   // put+delete in one batch
		{[]Change{del("user.a"), e("user.a", Reserved)}, 2, 1}, // delete+put in one batch
		{[]Change{e("user.e", Active), e("user.e", Active)}, 3, 1},
		{[]Change{e("user.c", Reserved), e("user.f", Reserved)}, 4, 3}, // demote, new
		{[]Change{e("user.f", Reserved), e("user.f", Active), e("user.f", Reserved)}, 4, 3},
		{[]Change{del("user.f"), e("user.c", Active)}, 3, 1},
		{[]Change{del("user.a"), del("user.c"), del("user.e")}, 0, 0},
	}
	for i, s := range steps {
		commit(t, db, s.changes...)
		if db.Count() != s.want || db.Reserved() != s.reserved {
			t.Fatalf("step %d: Count %d, Reserved %d; want %d, %d", i, db.Count(), db.Reserved(), s.want, s.reserved)
		}
		snap := db.Snapshot()
		var n, r uint64
		for _, e := range scanAll(t, snap) {
			n++
			if e.Kind == Reserved {
				r++
			}
		}
		snap.Close()
		if n != s.want || r != s.reserved {
			t.Fatalf("step %d: scan found %d entries, %d reserved; want %d, %d", i, n, r, s.want, s.reserved)
		}
		// The counts survive a restart.
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openT(t, dir, Options{})
		if db.Count() != s.want || db.Reserved() != s.reserved {
			t.Fatalf("step %d reopened: Count %d, Reserved %d; want %d, %d", i, db.Count(), db.Reserved(), s.want, s.reserved)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestReservedCountedOnOpen: a store written before the reserved count
// was kept gets it counted at Open, once.
func TestReservedCountedOnOpen(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, dir, Options{})
	var changes []Change
	for _, e := range oddEntries {
		changes = append(changes, put(e))
	}
	commit(t, db, changes...)
	if db.Reserved() != 2 {
		t.Fatalf("Reserved %d, want 2", db.Reserved())
	}
	// What an older store looks like: no reserved key.
	if err := db.pdb.Delete(sysReserved, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openT(t, dir, Options{})
	if db.Reserved() != 2 {
		t.Errorf("Reserved after upgrade %d, want 2", db.Reserved())
	}
	if n, ok, err := db.getUvarint(sysReserved); err != nil || !ok || n != 2 {
		t.Errorf("reserved key after upgrade: %d, %v, %v", n, ok, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentReaders runs readers beside the single writer (useful under
// -race): whatever a reader sees must be at least as new as LastSeq before it
// looked.
func TestConcurrentReaders(t *testing.T) {
	db := openTemp(t, Options{LogRetain: 1000})
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				seen := db.LastSeq()
				snap := db.Snapshot()
				seq := snap.Seq()
				n := 0
				err := snap.Scan(func(Entry) error { n++; return nil })
				snap.Close()
				if err != nil || seq < seen || uint64(n) > seq {
					errs <- fmt.Errorf("snapshot: seq %d < %d or %d entries, err %v", seq, seen, n, err)
					return
				}
				last, err := db.ChangesSince(0, 0, func(Change) error { return nil })
				if err != nil || last < seen {
					errs <- fmt.Errorf("ChangesSince: last %d < %d, err %v", last, seen, err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(time.Second)
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		commit(t, db, put(Entry{Name: fmt.Sprintf("user.u%03d", i), Kind: Active, Location: "be1"}))
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func benchEntry(i int) Entry {
	name := fmt.Sprintf("user.u%07d", i)
	return Entry{Name: name, Kind: Active, Location: fmt.Sprintf("be%d!default", i%4),
		ACL: fmt.Sprintf("u%07d\tlrswipkxtecdan\tanyone\tlrs\t", i)}
}

func BenchmarkCommitSingle(b *testing.B) {
	db := openTemp(b, Options{})
	i := 0
	for b.Loop() {
		commit(b, db, put(benchEntry(i)))
		i++
	}
}

func BenchmarkCommitBatch64(b *testing.B) {
	db := openTemp(b, Options{})
	changes := make([]Change, 64)
	i := 0
	for b.Loop() {
		for j := range changes {
			changes[j] = put(benchEntry(i))
			i++
		}
		commit(b, db, changes...)
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "changes/s")
}

func BenchmarkScan100k(b *testing.B) {
	const n = 100_000
	db := openTemp(b, Options{})
	changes := make([]Change, 0, 1000)
	for i := range n {
		changes = append(changes, put(benchEntry(i)))
		if len(changes) == cap(changes) {
			commit(b, db, changes...)
			changes = changes[:0]
		}
	}
	scanned, loops := 0, 0
	for b.Loop() {
		loops++
		snap := db.Snapshot()
		if err := snap.Scan(func(Entry) error { scanned++; return nil }); err != nil {
			b.Fatal(err)
		}
		snap.Close()
	}
	if scanned != n*loops {
		b.Fatalf("scanned %d entries, want %d", scanned, n*loops)
	}
	b.ReportMetric(float64(scanned)/b.Elapsed().Seconds(), "entries/s")
}

// TestFolderRemovedRefusesCommits: with the folder gone Pebble's open WAL
// would still take a commit, into a deleted file; none is acknowledged,
// reads go on, and Close does not wait on the flush it cannot do.
func TestFolderRemovedRefusesCommits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	var faults []string
	db := openT(t, dir, Options{OnFault: func(st fault.State, err error) { faults = append(faults, st.String()) }})
	e := Entry{Name: "user.a", Kind: Active, Location: "be1!default"}
	if _, err := db.Commit(&Batch{Changes: []Change{put(e)}}); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(dir)
	for _, name := range []string{"user.b", "user.c"} {
		seq, err := db.Commit(&Batch{Changes: []Change{put(Entry{Name: name, Kind: Reserved, Location: "be1"})}})
		if !errors.Is(err, ErrFailed) || seq != 1 || db.LastSeq() != 1 {
			t.Fatalf("commit of %s with the folder gone: seq %d, %v", name, seq, err)
		}
	}
	if got, ok, err := db.Get("user.a"); err != nil || !ok || got != e {
		t.Errorf("reading after the fault: %+v %v %v", got, ok, err)
	}
	if st, cause := db.Health(); st != fault.Failed || cause == nil || fmt.Sprint(faults) != "[failed]" {
		t.Errorf("health %v %v, told %v", st, cause, faults)
	}
	start := time.Now()
	_ = db.Close()
	if d := time.Since(start); d > 2*closeWait {
		t.Errorf("Close took %v", d)
	}
}
