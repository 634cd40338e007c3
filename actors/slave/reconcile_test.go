package slave

import (
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/actors/mailboxdb"
	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/store"
)

// reconcile loads local into a fresh list, reconciles it with dump as a
// full sync does, and returns the list after and the out-of-order count.
func reconcile(t *testing.T, local []store.Entry, dump []mupdate.Record) (map[string]store.Entry, int) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var b store.Batch
	for _, e := range local {
		b.Changes = append(b.Changes, store.Change{Name: e.Name, New: &e})
	}
	if _, err := st.Commit(&b); err != nil {
		t.Fatal(err)
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	db := sys.Root.Spawn(mailboxdb.Props(mailboxdb.Config{Store: st}))
	defer func() {
		sys.Root.PoisonFuture(db).Wait()
		sys.Shutdown()
	}()
	l := &link{cfg: Config{DB: db, Store: st}, root: sys.Root, log: slog.New(slog.DiscardHandler)}

	r := l.newReconciler()
	defer r.close()
	for _, rec := range dump {
		if err := r.add(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.finish(nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]store.Entry{}
	snap := st.Snapshot()
	defer snap.Close()
	if err := snap.Scan(func(e store.Entry) error { got[e.Name] = e; return nil }); err != nil {
		t.Fatal(err)
	}
	return got, r.disorder
}

// want is the list a dump describes: its last record for each name.
func want(dump []mupdate.Record) map[string]store.Entry {
	out := map[string]store.Entry{}
	for _, rec := range dump {
		out[rec.Name] = *change(rec).New
	}
	return out
}

func mailbox(name, loc string) mupdate.Record {
	return mupdate.Record{Kind: "MAILBOX", Name: name, Location: loc, ACL: "anyone\tlr\t"}
}

func entry(name, loc string) store.Entry {
	return *change(mailbox(name, loc)).New
}

// TestReconcileWalksInListOrder: adds, changes and deletes between a
// local list and a dump in list order, including names where list order
// and byte order disagree ("user.bob.sub" sorts before "user.bob-x").
func TestReconcileWalksInListOrder(t *testing.T) {
	local := []store.Entry{entry("a", "s!p"), entry("user.bob", "s!p"), entry("user.bob-x", "s!p"),
		entry("user.bob.sub", "s!p"), entry("user.carol", "s!p"), entry("zed", "s!p")}
	dump := []mupdate.Record{mailbox("user.bob", "s!p"), mailbox("user.bob.sub", "t!p"),
		mailbox("user.bob-x", "s!p"), {Kind: "RESERVE", Name: "user.dave", Location: "s!p"}}
	got, disorder := reconcile(t, local, dump)
	if !maps.Equal(got, want(dump)) {
		t.Errorf("list after reconcile: %v\nwant %v", got, want(dump))
	}
	if disorder != 0 {
		t.Errorf("a dump in list order counted %d records out of order", disorder)
	}

	swapped := slices.Clone(dump)
	swapped[1], swapped[2] = swapped[2], swapped[1] // bob-x before bob.sub
	if got, disorder = reconcile(t, local, swapped); !maps.Equal(got, want(dump)) || disorder != 1 {
		t.Errorf("out of order: %d records counted, list %v\nwant %v", disorder, got, want(dump))
	}

	got, _ = reconcile(t, local, nil)
	if len(got) != 0 {
		t.Errorf("an empty dump left %v", got)
	}
}

// TestReconcileAnyOrder: a dump in any order, with repeated names, still
// ends in the master's list.
func TestReconcileAnyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		var local []store.Entry
		var dump []mupdate.Record
		for i := range 60 {
			name := "user.u" + strconv.Itoa(i)
			if r.IntN(2) == 0 {
				local = append(local, entry(name, "s!p"))
			}
			if r.IntN(3) > 0 {
				dump = append(dump, mailbox(name, "s"+strconv.Itoa(r.IntN(2))+"!p"))
			}
		}
		slices.SortFunc(dump, func(a, b mupdate.Record) int {
			return slices.Compare(store.DBName(a.Name), store.DBName(b.Name))
		})
		for range r.IntN(4) { // swaps and repeats
			i, j := r.IntN(len(dump)), r.IntN(len(dump))
			dump[i], dump[j] = dump[j], dump[i]
			dump = append(dump, dump[r.IntN(len(dump))])
		}
		got, _ := reconcile(t, local, dump)
		if !maps.Equal(got, want(dump)) {
			t.Fatalf("round %d: list after reconcile: %v\nwant %v", round, got, want(dump))
		}
	}
}

// BenchmarkResync reconciles a replica holding 200,000 entries with a
// master's dump of the same list (a resync after the log was trimmed):
// the walk's memory should not grow with the list.
func BenchmarkResync(b *testing.B) {
	const n = 200_000
	st, err := store.Open(b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	dump := make([]mupdate.Record, n)
	var batch store.Batch
	for i := range n {
		dump[i] = mailbox(fmt.Sprintf("user.u%07d", i), "s!p")
		batch.Changes = append(batch.Changes, change(dump[i]))
	}
	if _, err := st.Commit(&batch); err != nil {
		b.Fatal(err)
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
	db := sys.Root.Spawn(mailboxdb.Props(mailboxdb.Config{Store: st}))
	defer func() {
		sys.Root.PoisonFuture(db).Wait()
		sys.Shutdown()
	}()
	l := &link{cfg: Config{DB: db, Store: st}, root: sys.Root, log: slog.New(slog.DiscardHandler)}
	b.ResetTimer()
	for b.Loop() {
		r := l.newReconciler()
		for _, rec := range dump {
			if err := r.add(rec); err != nil {
				b.Fatal(err)
			}
		}
		if err := r.finish(nil); err != nil {
			b.Fatal(err)
		}
		r.close()
	}
}
