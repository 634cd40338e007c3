package proxy

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store"
)

func newSystem() *actor.ActorSystem {
	return actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
}

func openDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func commit(t testing.TB, db *store.DB, e store.Entry) {
	t.Helper()
	if _, err := db.Commit(&store.Batch{Changes: []store.Change{{Name: e.Name, New: &e}}}); err != nil {
		t.Fatal(err)
	}
}

// counts is a fake Proxying hook.
type counts struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counts) proxying(server string, delta int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[server] += delta
}

func (c *counts) get(server string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[server]
}

func route(t *testing.T, root *actor.RootContext, pid *actor.PID, r *Route) (store.Entry, error) {
	t.Helper()
	res, err := root.RequestFuture(pid, r, 5*time.Second).Result()
	if err != nil {
		t.Fatalf("route %q: %v", r.Mailbox, err)
	}
	reply := res.(*RouteReply)
	return reply.Entry, reply.Err
}

func TestRoute(t *testing.T) {
	db := openDB(t)
	commit(t, db, store.Entry{Name: "user.alice", Kind: store.Active, Location: "be1!p"})
	commit(t, db, store.Entry{Name: "moving", Kind: store.Reserved, Location: "be2!p"})
	var mu sync.Mutex
	kicks := 0
	table := &frontend.Table{DB: db, Kick: func(ctx context.Context) error {
		mu.Lock()
		kicks++
		mu.Unlock()
		if _, ok := ctx.Deadline(); !ok {
			return errors.New("kick without a deadline")
		}
		commit(t, db, store.Entry{Name: "late", Kind: store.Active, Location: "be3!p"})
		return nil
	}}
	kicked := func() int { mu.Lock(); defer mu.Unlock(); return kicks }
	system := newSystem()
	defer system.Shutdown()
	root := system.Root
	pid := root.Spawn(Props(Config{Protocol: "imap", Table: table}))
	defer root.Poison(pid)

	if e, err := route(t, root, pid, &Route{Mailbox: "user.alice", Kick: true}); err != nil || e.Server() != "be1" || kicked() != 0 {
		t.Errorf("hit: %+v %v, %d kicks", e, err, kicked())
	}
	if _, err := route(t, root, pid, &Route{Mailbox: "moving", Kick: true}); !errors.Is(err, frontend.ErrReserved) || kicked() != 0 {
		t.Errorf("reserved: %v, %d kicks", err, kicked())
	}
	if _, err := route(t, root, pid, &Route{Mailbox: "late"}); !errors.Is(err, frontend.ErrNoMailbox) || kicked() != 0 {
		t.Errorf("miss without kick: %v, %d kicks", err, kicked())
	}
	if e, err := route(t, root, pid, &Route{Mailbox: "late", Kick: true, Deadline: time.Now().Add(5 * time.Second)}); err != nil || e.Server() != "be3" || kicked() != 1 {
		t.Errorf("miss, kick, hit: %+v %v, %d kicks", e, err, kicked())
	}
	if _, err := route(t, root, pid, &Route{Mailbox: "never", Kick: true}); !errors.Is(err, frontend.ErrNoMailbox) || kicked() != 2 {
		t.Errorf("miss after a kick: %v, %d kicks", err, kicked())
	}
}

// TestKickDoesNotBlock: while a kick waits, the actor keeps answering.
func TestKickDoesNotBlock(t *testing.T) {
	db := openDB(t)
	commit(t, db, store.Entry{Name: "user.alice", Kind: store.Active, Location: "be1!p"})
	release := make(chan struct{})
	table := &frontend.Table{DB: db, Kick: func(ctx context.Context) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	system := newSystem()
	defer system.Shutdown()
	root := system.Root
	pid := root.Spawn(Props(Config{Table: table}))
	defer root.Poison(pid)

	slow := root.RequestFuture(pid, &Route{Mailbox: "missing", Kick: true}, 5*time.Second)
	if e, err := route(t, root, pid, &Route{Mailbox: "user.alice"}); err != nil || e.Server() != "be1" {
		t.Errorf("during a kick: %+v %v", e, err)
	}
	close(release)
	res, err := slow.Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := res.(*RouteReply).Err; !errors.Is(err, frontend.ErrNoMailbox) {
		t.Errorf("after the kick: %v", err)
	}
}

func TestBackendAccounting(t *testing.T) {
	c := &counts{n: map[string]int{}}
	system := newSystem()
	defer system.Shutdown()
	root := system.Root
	pid := root.Spawn(Props(Config{Protocol: "imap", Table: &frontend.Table{DB: openDB(t)}, Proxying: c.proxying}))

	root.Send(pid, &LoggedIn{User: "alice"})
	root.Send(pid, &BackendOpened{Server: "be1"})
	root.Send(pid, &BackendOpened{Server: "be2"})
	root.Send(pid, &Selected{Mailbox: "INBOX", Server: "be1"})
	root.Send(pid, &BackendClosed{Server: "be2"})
	root.Send(pid, &BackendClosed{Server: "be3"}) // never opened: not counted
	res, err := root.RequestFuture(pid, &GetSession{}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	info := res.(*SessionInfo)
	if info.Protocol != "imap" || info.User != "alice" || info.Mailbox != "INBOX" || info.Server != "be1" ||
		len(info.Backends) != 1 || info.Backends["be1"] != 1 {
		t.Errorf("session: %+v", info)
	}
	if c.get("be1") != 1 || c.get("be2") != 0 || c.get("be3") != 0 {
		t.Errorf("while open: %v", c.n)
	}
	// The session ends without closing be1: stopping counts it closed.
	if err := root.PoisonFuture(pid).Wait(); err != nil {
		t.Fatal(err)
	}
	// Stopped was handled before the poison's future completed.
	if c.get("be1") != 0 || c.get("be2") != 0 {
		t.Errorf("after stop: %v", c.n)
	}
}

// BenchmarkSessionMemory reports the heap held by one idle proxy-session
// actor (part of what an idle proxied session costs).
func BenchmarkSessionMemory(b *testing.B) {
	const n = 10000
	table := &frontend.Table{DB: openDB(b)}
	system := newSystem()
	defer system.Shutdown()
	root := system.Root
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		pids := make([]*actor.PID, n)
		for i := range pids {
			pids[i] = root.Spawn(Props(Config{Protocol: "imap", Table: table}))
			root.Send(pids[i], &LoggedIn{User: "alice"})
			root.Send(pids[i], &BackendOpened{Server: "be1"})
		}
		// Every actor has handled its messages once this answers.
		for _, pid := range pids {
			if _, err := root.RequestFuture(pid, &GetSession{}, 10*time.Second).Result(); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/session")
		for _, pid := range pids {
			_ = root.PoisonFuture(pid).Wait()
		}
	}
}

// BenchmarkRoute is the cost of a routing question through the actor, a
// hit, as a session asks it (SELECT, APPEND, STATUS...).
func BenchmarkRoute(b *testing.B) {
	db := openDB(b)
	commit(b, db, store.Entry{Name: "user.alice", Kind: store.Active, Location: "be1!p"})
	system := newSystem()
	defer system.Shutdown()
	root := system.Root
	pid := root.Spawn(Props(Config{Table: &frontend.Table{DB: db}}))
	defer root.Poison(pid)
	for b.Loop() {
		res, err := root.RequestFuture(pid, &Route{Mailbox: "user.alice"}, 5*time.Second).Result()
		if err != nil || res.(*RouteReply).Err != nil {
			b.Fatal(err)
		}
	}
}
