package node

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rookery/rookery/actors/slave"
	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/store"
)

// replicaNode starts a replica of master (host:port) on port 0.
func replicaNode(t *testing.T, dir, master string) *Node {
	t.Helper()
	return testNode(t, dir, func(c *Config) {
		c.Roles = []Role{RoleReplica}
		c.MUPDATEServer = master
		c.MUPDATEAuthname = "admin"
		c.MUPDATEPassword = "secret"
		c.MUPDATERetryDelay = 300 * time.Millisecond
		c.ClientTimeout = time.Second
	})
}

func dialClient(t *testing.T, n *Node) *mupdate.Client {
	t.Helper()
	c, err := mupdate.Dial(t.Context(), n.MUPDATEAddr(), mupdate.ClientConfig{Username: "admin", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func entries(t *testing.T, n *Node) []store.Entry {
	t.Helper()
	snap := n.Store().Snapshot()
	defer snap.Close()
	var out []store.Entry
	if err := snap.Scan(func(e store.Entry) error { out = append(out, e); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitSame waits until every replica's list equals the master's.
func waitSame(t *testing.T, master *Node, replicas ...*Node) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		want := entries(t, master)
		same := true
		var diff string
		for i, r := range replicas {
			got := entries(t, r)
			if d := firstDiff(want, got); d != "" {
				same, diff = false, fmt.Sprintf("replica %d: %s", i, d)
				break
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replicas did not converge: %s", diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func firstDiff(want, got []store.Entry) string {
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			return fmt.Sprintf("entry %d: want %+v, got %+v", i, want[i], got[i])
		}
	}
	if len(want) != len(got) {
		return fmt.Sprintf("%d entries, want %d", len(got), len(want))
	}
	return ""
}

func activateN(t *testing.T, c *mupdate.Client, prefix string, n int, loc string) {
	t.Helper()
	tags := make([]string, 0, n)
	for i := range n {
		tag, err := c.Send("ACTIVATE", fmt.Sprintf("%s%d", prefix, i), loc, fmt.Sprintf("u%d\tlrswipkxtecdan\t", i))
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, tag)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if _, err := c.Await(tag); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReplicaChain: master → replica → replica-of-replica; every change
// reaches both; a master replaced by one with different data is followed
// exactly (adds, changes, deletes) with no manual step.
func TestReplicaChain(t *testing.T) {
	m := testNode(t, t.TempDir())
	addr := m.MUPDATEAddr()
	c := dialClient(t, m)
	activateN(t, c, "user.pre", 50, "be1!default")

	r1 := replicaNode(t, t.TempDir(), addr)
	r2 := replicaNode(t, t.TempDir(), r1.MUPDATEAddr())
	waitSame(t, m, r1, r2)

	// Streamed changes of every kind.
	activateN(t, c, "user.live", 20, "be2!default")
	if err := c.Reserve("user.res", "be1!default"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("user.pre7"); err != nil {
		t.Fatal(err)
	}
	if err := c.Activate("user.pre8", "be3!x", "anyone\tlr\t"); err != nil {
		t.Fatal(err)
	}
	waitSame(t, m, r1, r2)

	// A replica serves reads and refuses writes, as a Cyrus slave does.
	rc := dialClient(t, r2)
	if g := rc.Greeting(); g.Mode != "mupdate://"+r1.MUPDATEAddr() {
		t.Errorf("replica greeting mode %q", g.Mode)
	}
	if rec, err := rc.Find("user.pre8"); err != nil || rec == nil || rec.Location != "be3!x" {
		t.Errorf("FIND on replica-of-replica: %+v %v", rec, err)
	}
	if err := rc.Activate("user.x", "a!b", ""); err == nil {
		t.Error("replica accepted a write")
	}

	// Replace the master: same address, different data.
	c.Close()
	m.Close()
	m2 := testNode(t, t.TempDir(), func(cfg *Config) { cfg.MUPDATEListen = addr })
	c2 := dialClient(t, m2)
	activateN(t, c2, "user.pre", 10, "be9!default") // same names, new locations
	activateN(t, c2, "user.new", 5, "be9!default")
	waitSame(t, m2, r1, r2)
	if len(entries(t, r2)) != 15 {
		t.Errorf("replica-of-replica has %d entries, want 15", len(entries(t, r2)))
	}
	st := waitStatus(t, r1, func(st slave.Status) bool { return st.Connected })
	if !st.Rookery || st.FullSyncs < 2 {
		t.Errorf("replica status after master replacement: %+v", st)
	}
}

// TestReplicaResumes: a replica that restarts catches up from the master's
// change log instead of reloading the list, and falls back to a full load
// once the log no longer reaches back.
func TestReplicaResumes(t *testing.T) {
	m := testNode(t, t.TempDir())
	c := dialClient(t, m)
	activateN(t, c, "user.a", 300, "be1!default")
	dir := t.TempDir()
	r := replicaNode(t, dir, m.MUPDATEAddr())
	waitSame(t, m, r)
	r.Close()

	activateN(t, c, "user.b", 100, "be1!default")
	if err := c.Delete("user.a5"); err != nil {
		t.Fatal(err)
	}
	r = replicaNode(t, dir, m.MUPDATEAddr())
	waitSame(t, m, r)
	st := waitStatus(t, r, func(st slave.Status) bool { return st.Connected })
	if st.Resumes != 1 || st.FullSyncs != 0 || st.AppliedSeq != m.Store().LastSeq() || !st.TLS {
		t.Errorf("after restart: %+v (master seq %d)", st, m.Store().LastSeq())
	}
	r.Close()

	// More changes than the master keeps (LogRetain is 1000 in tests).
	activateN(t, c, "user.c", 1500, "be1!default")
	r = replicaNode(t, dir, m.MUPDATEAddr())
	waitSame(t, m, r)
	if st := waitStatus(t, r, func(st slave.Status) bool { return st.Connected }); st.FullSyncs != 1 {
		t.Errorf("after the log was trimmed: %+v", st)
	}
}

// relay is a TCP relay whose connections can be cut.
type relay struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   atomic.Bool
	// cutAfter, when set, cuts a connection once that many bytes came
	// from the target.
	cutAfter atomic.Int64
	// frozen drops the target's bytes without closing anything.
	frozen atomic.Bool
}

func newRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); r.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if r.down.Load() {
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, u)
			r.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() {
				limit := r.cutAfter.Load()
				if limit > 0 {
					io.CopyN(c, u, limit)
					c.Close()
					u.Close()
					return
				}
				buf := make([]byte, 32<<10)
				for {
					k, err := u.Read(buf)
					if k > 0 && !r.frozen.Load() {
						if _, err := c.Write(buf[:k]); err != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// TestReplicaSurvivesCuts: the link is cut in the middle of the dump and
// in the middle of the stream; the replica converges once it is back.
func TestReplicaSurvivesCuts(t *testing.T) {
	m := testNode(t, t.TempDir())
	c := dialClient(t, m)
	activateN(t, c, "user.big", 3000, "be1!default")
	rl := newRelay(t, m.MUPDATEAddr())
	// The first connections die 60 KB into the dump.
	rl.cutAfter.Store(60000)
	r := replicaNode(t, t.TempDir(), rl.addr())
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := r.ReplicaStatus()
		if st.LastError != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cut dump was not noticed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.Store().Count() == 3000 {
		t.Fatal("the dump was not cut")
	}
	rl.cutAfter.Store(0)
	waitSame(t, m, r)

	// Mid-stream: cut, change the master while the link is down, restore.
	rl.down.Store(true)
	rl.cut()
	activateN(t, c, "user.during", 50, "be2!default")
	if err := c.Delete("user.big1"); err != nil {
		t.Fatal(err)
	}
	rl.down.Store(false)
	waitSame(t, m, r)
	// A silent link (the master's bytes vanish, nobody closes anything)
	// is found by the keep-alive, and the replica reconnects once the
	// path works again.
	rl.frozen.Store(true)
	activateN(t, c, "user.silent", 5, "be2!default")
	waitStatus(t, r, func(st slave.Status) bool { return !st.Connected })
	rl.frozen.Store(false)
	waitSame(t, m, r)
}

// waitStatus polls the replica's status until ok accepts it.
func waitStatus(t *testing.T, r *Node, ok func(slave.Status) bool) slave.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _ := r.ReplicaStatus()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica status never got there: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReplicaCreateThenDelete: a name created and deleted between two
// points the replica applies (one resume, or one stream batch) must not
// survive on the replica.
func TestReplicaCreateThenDelete(t *testing.T) {
	m := testNode(t, t.TempDir())
	c := dialClient(t, m)
	activateN(t, c, "user.a", 3, "be1!default")
	dir := t.TempDir()
	r := replicaNode(t, dir, m.MUPDATEAddr())
	waitSame(t, m, r)
	r.Close()
	if err := c.Reserve("user.tmp", "be1!default"); err != nil {
		t.Fatal(err)
	}
	if err := c.Activate("user.tmp", "be1!default", "x\tlr\t"); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("user.tmp"); err != nil {
		t.Fatal(err)
	}
	r = replicaNode(t, dir, m.MUPDATEAddr())
	waitStatus(t, r, func(st slave.Status) bool { return st.Connected && st.AppliedSeq == m.Store().LastSeq() })
	if _, found, _ := r.Store().Get("user.tmp"); found {
		t.Fatal("a resumed replica kept a mailbox the master deleted")
	}

	// Live: many create+delete triples arrive in shared batches.
	var tags []string
	for i := range 200 {
		name := fmt.Sprintf("user.t%d", i)
		for _, cmd := range [][]string{{"RESERVE", name, "be!p"}, {"ACTIVATE", name, "be!p", "a\tlr\t"}, {"DELETE", name}} {
			tag, err := c.Send(cmd[0], cmd[1:]...)
			if err != nil {
				t.Fatal(err)
			}
			tags = append(tags, tag)
		}
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if _, err := c.Await(tag); err != nil {
			t.Fatal(err)
		}
	}
	waitStatus(t, r, func(st slave.Status) bool { return st.AppliedSeq == m.Store().LastSeq() })
	waitSame(t, m, r)
}

// TestReplicaKick: once a kick returns, everything the master had when it
// was asked is on the replica (what frontends rely on after a miss).
func TestReplicaKick(t *testing.T) {
	m := testNode(t, t.TempDir())
	c := dialClient(t, m)
	r := replicaNode(t, t.TempDir(), m.MUPDATEAddr())
	waitStatus(t, r, func(st slave.Status) bool { return st.Connected })
	for i := range 20 {
		name := fmt.Sprintf("user.k%d", i)
		if err := c.Activate(name, "be!p", ""); err != nil {
			t.Fatal(err)
		}
		if err := r.kick(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, found, _ := r.Store().Get(name); !found {
			t.Fatalf("%s missing right after a kick", name)
		}
	}
}
