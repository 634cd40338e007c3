package mailboxdb

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/store"
)

func start(t *testing.T) (*actor.ActorSystem, *actor.PID, *store.DB) {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sys := actor.NewActorSystem()
	pid := sys.Root.Spawn(Props(Config{Store: st}))
	t.Cleanup(func() {
		sys.Root.PoisonFuture(pid).Wait()
		sys.Shutdown()
		st.Close()
	})
	return sys, pid, st
}

func ask(t *testing.T, sys *actor.ActorSystem, pid *actor.PID, msg any) *UpdateReply {
	t.Helper()
	res, err := sys.Root.RequestFuture(pid, msg, 10*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res.(*UpdateReply)
}

// TestDecideSeesUndurableState: concurrent read-modify-writes of one name
// see each other's decided but not yet durable changes, so none is lost,
// and every reply comes after its change is durable.
func TestDecideSeesUndurableState(t *testing.T) {
	sys, pid, st := start(t)
	var notified sync.Map
	sys.Root.RequestFuture(pid, &Watch{Notify: func(seq uint64) { notified.Store(seq, true) }}, time.Second).Wait()

	const n = 200
	incr := &Update{Name: "counter", Decide: func(cur *store.Entry) (*store.Entry, error) {
		k := 0
		if cur != nil {
			fmt.Sscan(cur.ACL, &k)
		}
		return &store.Entry{Kind: store.Active, Location: "s!p", ACL: fmt.Sprint(k + 1)}, nil
	}}
	futures := make([]*actor.Future, n)
	for i := range futures {
		futures[i] = sys.Root.RequestFuture(pid, incr, 10*time.Second)
	}
	seqs := map[uint64]bool{}
	for _, f := range futures {
		res, err := f.Result()
		if err != nil {
			t.Fatal(err)
		}
		r := res.(*UpdateReply)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Seq > st.LastSeq() {
			t.Fatalf("reply for seq %d before it was durable (store at %d)", r.Seq, st.LastSeq())
		}
		seqs[r.Seq] = true
	}
	if len(seqs) != n {
		t.Errorf("%d distinct seqs for %d updates", len(seqs), n)
	}
	e, _, _ := st.Get("counter")
	if e.ACL != fmt.Sprint(n) {
		t.Errorf("counter = %s, want %d", e.ACL, n)
	}
	if _, ok := notified.Load(st.LastSeq()); !ok {
		t.Error("watcher was not told about the last commit")
	}
}

func TestRefusalAndApply(t *testing.T) {
	sys, pid, st := start(t)
	no := errors.New("no")
	r := ask(t, sys, pid, &Update{Name: "x", Decide: func(*store.Entry) (*store.Entry, error) { return nil, no }})
	if !errors.Is(r.Err, no) || st.LastSeq() != 0 {
		t.Fatalf("refusal: %+v, seq %d", r, st.LastSeq())
	}
	r = ask(t, sys, pid, &Apply{
		Changes: []store.Change{
			{Name: "a", New: &store.Entry{Kind: store.Active, Location: "s!p"}},
			{Name: "b", New: &store.Entry{Kind: store.Reserved, Location: "s!p"}},
		},
		Meta: map[string]string{"k": "v"},
	})
	if r.Err != nil || r.Seq != 2 {
		t.Fatalf("apply: %+v", r)
	}
	r = ask(t, sys, pid, &Apply{Changes: []store.Change{{Name: "a"}}})
	if r.Err != nil || r.Seq != 3 || st.Count() != 1 {
		t.Fatalf("apply delete: %+v count %d", r, st.Count())
	}
	if v, ok, _ := st.Meta("k"); !ok || v != "v" {
		t.Errorf("meta k = %q %v", v, ok)
	}
}
