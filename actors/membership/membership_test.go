package membership

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

type testNode struct {
	name   string
	sys    *actor.ActorSystem
	pid    *actor.PID
	g      *Gossip
	events chan any
	once   sync.Once
}

type nodeOpts struct {
	bind    string
	key     []byte
	cluster string
	join    []string
	log     *slog.Logger
}

func start(t *testing.T, name string, o nodeOpts) *testNode {
	t.Helper()
	if o.bind == "" {
		o.bind = "127.0.0.1:0"
	}
	// ROOKERY_TEST_LOG=1 shows the nodes' logs, memberlist's included.
	if o.log == nil && os.Getenv("ROOKERY_TEST_LOG") != "" {
		o.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
	}
	if o.cluster == "" {
		o.cluster = "test"
	}
	g, err := Open(Config{
		Bind: o.bind, Join: o.join, Key: o.key, Preset: Local, Logger: o.log,
		Meta: Meta{
			Cluster: o.cluster, Server: name, Roles: []string{"backend"},
			IMAP: "127.0.0.1:143", LMTP: "127.0.0.1:24", Version: "0.1.0",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	n := &testNode{name: name, sys: sys, g: g, events: make(chan any, 1024)}
	n.pid = sys.Root.Spawn(g.Props())
	sub := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		switch c.Message().(type) {
		case *MemberJoined, *MemberUpdated, *MemberLeft:
			n.events <- c.Message()
		}
	}))
	sys.Root.Send(n.pid, &Subscribe{Subscriber: sub})
	t.Cleanup(n.kill)
	return n
}

// kill stops the node without leaving, as a crash would.
func (n *testNode) kill() {
	n.once.Do(func() {
		_ = n.sys.Root.PoisonFuture(n.pid).Wait()
		n.sys.Shutdown()
	})
}

func (n *testNode) members(t *testing.T) []Member {
	t.Helper()
	res, err := n.sys.Root.RequestFuture(n.pid, &GetMembers{}, 5*time.Second).Result()
	if err != nil {
		t.Fatal(err)
	}
	return res.(*MembersReply).Members
}

func (n *testNode) member(t *testing.T, name string) (Member, bool) {
	t.Helper()
	for _, m := range n.members(t) {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitEvent returns the first event from n that matches.
func (n *testNode) waitEvent(t *testing.T, within time.Duration, match func(any) bool) any {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case ev := <-n.events:
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("%s: no matching event within %v", n.name, within)
		}
	}
}

func alive(t *testing.T, n *testNode, names ...string) func() bool {
	return func() bool {
		var have []string
		for _, m := range n.members(t) {
			if m.State == Alive {
				have = append(have, m.Name)
			}
		}
		return slices.Equal(have, names)
	}
}

func cluster(t *testing.T, size int, key []byte) []*testNode {
	t.Helper()
	var nodes []*testNode
	var names []string
	for i := range size {
		o := nodeOpts{key: key}
		if i > 0 {
			o.join = []string{nodes[i-1].g.Addr()}
		}
		nodes = append(nodes, start(t, fmt.Sprintf("n%d", i), o))
		names = append(names, fmt.Sprintf("n%d", i))
	}
	for _, n := range nodes {
		eventually(t, 5*time.Second, n.name+" sees everyone", alive(t, n, names...))
	}
	return nodes
}

// TestJoinMetaAndUpdates: members joined through a chain see each other
// with their metadata; a subscriber gets the current members first; a
// metadata update reaches every member.
func TestJoinMetaAndUpdates(t *testing.T) {
	nodes := cluster(t, 3, nil)
	for _, n := range nodes {
		for _, m := range n.members(t) {
			want := Meta{Cluster: "test", Server: m.Name, Roles: []string{"backend"},
				IMAP: "127.0.0.1:143", LMTP: "127.0.0.1:24", Version: "0.1.0"}
			if fmt.Sprint(m.Meta) != fmt.Sprint(want) {
				t.Errorf("%s sees %s with %+v, want %+v", n.name, m.Name, m.Meta, want)
			}
		}
	}
	if got, want := nodes[2].members(t)[0].Addr, nodes[0].g.Addr(); got != want {
		t.Errorf("n2 sees n0 at %s, want %s", got, want)
	}

	// A late subscriber gets every current member as MemberJoined.
	late := make(chan string, 10)
	sub := nodes[1].sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) {
		if j, ok := c.Message().(*MemberJoined); ok {
			late <- j.Member.Name
		}
	}))
	nodes[1].sys.Root.Send(nodes[1].pid, &Subscribe{Subscriber: sub})
	var got []string
	for range 3 {
		select {
		case name := <-late:
			got = append(got, name)
		case <-time.After(5 * time.Second):
			t.Fatalf("late subscriber got %v", got)
		}
	}
	if !slices.Equal(got, []string{"n0", "n1", "n2"}) {
		t.Errorf("late subscriber got %v", got)
	}

	meta := Meta{Cluster: "test", Server: "n1", Roles: []string{"backend", "frontend"},
		IMAP: "127.0.0.1:1143", MUPDATE: "127.0.0.1:3905", Version: "0.1.0"}
	res, err := nodes[1].sys.Root.RequestFuture(nodes[1].pid, &UpdateMeta{Meta: meta}, 5*time.Second).Result()
	if err != nil || res.(*UpdateMetaReply).Err != nil {
		t.Fatalf("UpdateMeta: %v %v", err, res)
	}
	for _, n := range []*testNode{nodes[0], nodes[2]} {
		ev := n.waitEvent(t, 5*time.Second, func(ev any) bool {
			u, ok := ev.(*MemberUpdated)
			return ok && u.Member.Name == "n1"
		}).(*MemberUpdated)
		if !ev.Member.Meta.HasRole("frontend") || ev.Member.Meta.MUPDATE != "127.0.0.1:3905" || ev.Member.State != Alive {
			t.Errorf("%s: update %+v", n.name, ev.Member)
		}
		m, _ := n.member(t, "n1")
		if fmt.Sprint(m.Meta) != fmt.Sprint(meta) {
			t.Errorf("%s: n1's meta %+v, want %+v", n.name, m.Meta, meta)
		}
	}

	bad := meta
	bad.Server = "other"
	res, err = nodes[1].sys.Root.RequestFuture(nodes[1].pid, &UpdateMeta{Meta: bad}, 5*time.Second).Result()
	if err != nil || res.(*UpdateMetaReply).Err == nil {
		t.Errorf("renaming a member was accepted: %v %v", err, res)
	}
}

// TestFailureNoticedQuickly: a member that stops without leaving is
// reported failed by every other member in under 2 s (Local preset).
func TestFailureNoticedQuickly(t *testing.T) {
	nodes := cluster(t, 4, nil)
	nodes[3].kill()
	start := time.Now()
	for _, n := range nodes[:3] {
		ev := n.waitEvent(t, 5*time.Second, func(ev any) bool {
			l, ok := ev.(*MemberLeft)
			return ok && l.Member.Name == "n3"
		}).(*MemberLeft)
		if ev.Member.State != Failed {
			t.Errorf("%s: n3 is %s, want failed", n.name, ev.Member.State)
		}
	}
	took := time.Since(start)
	t.Logf("a killed member was noticed by all in %v", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("noticing a dead member took %v, want under 2s", took)
	}
	if m, _ := nodes[0].member(t, "n3"); m.State != Failed || m.Since.Before(start) {
		t.Errorf("GetMembers has n3 as %+v", m)
	}
}

// TestLeaveIsNotFailure: a member that announces its departure is
// recorded as left, not failed.
func TestLeaveIsNotFailure(t *testing.T) {
	nodes := cluster(t, 3, nil)
	res, err := nodes[2].sys.Root.RequestFuture(nodes[2].pid, &Leave{Timeout: 2 * time.Second}, 5*time.Second).Result()
	if err != nil || res.(*LeaveReply).Err != nil {
		t.Fatalf("Leave: %v %v", err, res)
	}
	nodes[2].kill()
	for _, n := range nodes[:2] {
		ev := n.waitEvent(t, 5*time.Second, func(ev any) bool {
			l, ok := ev.(*MemberLeft)
			return ok && l.Member.Name == "n2"
		}).(*MemberLeft)
		if ev.Member.State != Left {
			t.Errorf("%s: n2 is %s, want left", n.name, ev.Member.State)
		}
	}
}

// TestRejoin: a failed member restarted on another port comes back under
// its name.
func TestRejoin(t *testing.T) {
	nodes := cluster(t, 3, nil)
	old := nodes[2].g.Addr()
	nodes[2].kill()
	for _, n := range nodes[:2] {
		eventually(t, 5*time.Second, n.name+" sees n2 failed", func() bool {
			m, _ := n.member(t, "n2")
			return m.State == Failed
		})
	}
	back := start(t, "n2", nodeOpts{join: []string{nodes[1].g.Addr()}})
	if back.g.Addr() == old {
		t.Fatal("the restarted node got its old port; the test wants a new one")
	}
	for _, n := range []*testNode{nodes[0], nodes[1], back} {
		eventually(t, 5*time.Second, n.name+" sees n2 back", alive(t, n, "n0", "n1", "n2"))
	}
	if m, _ := nodes[0].member(t, "n2"); m.Addr != back.g.Addr() {
		t.Errorf("n0 has n2 at %s, want %s", m.Addr, back.g.Addr())
	}
}

// TestClusterKey: with a key, members gossip; a node with another key, no
// key, or another cluster name cannot join.
func TestClusterKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	nodes := cluster(t, 2, key)
	seed := nodes[0].g.Addr()
	intruders := map[string]nodeOpts{
		"wrongkey":  {key: bytes.Repeat([]byte{8}, 32)},
		"shortkey":  {key: bytes.Repeat([]byte{7}, 16)},
		"nokey":     {},
		"othername": {key: key, cluster: "elsewhere"},
	}
	rec := newRecorder()
	nodes = append(nodes, start(t, "n2", nodeOpts{key: key, join: []string{seed}, log: slog.New(rec)}))
	eventually(t, 5*time.Second, "n2 joins", alive(t, nodes[2], "n0", "n1", "n2"))
	seed = nodes[2].g.Addr()
	for name, o := range intruders {
		n := start(t, name, o)
		// Join directly: the actor's join loop would retry forever.
		if k, err := n.g.ml.Join([]string{seed}); err == nil || k != 0 {
			t.Errorf("%s: joined %d members", name, k)
		}
		if got := nodes[2].g.ml.NumMembers(); got != 3 {
			t.Errorf("%s: the seed has %d members, want 3", name, got)
		}
		if got := n.g.ml.NumMembers(); got != 1 {
			t.Errorf("%s: the intruder has %d members, want 1", name, got)
		}
		n.kill()
	}
	// The seed said why, through slog, with the peer's address.
	if !rec.has(slog.LevelWarn, "installed keys could decrypt the message component=memberlist remote=127.0.0.1:") {
		t.Errorf("the seed logged no decryption failure: %q", rec.lines())
	}
	// The right key still works.
	n := start(t, "friend", nodeOpts{key: key, join: []string{seed}})
	eventually(t, 5*time.Second, "friend joins", alive(t, n, "friend", "n0", "n1", "n2"))
}

// recorder is a slog.Handler that keeps "LEVEL msg attrs" lines.
type recorder struct {
	attrs []slog.Attr
	log   *recorded
}

type recorded struct {
	mu    sync.Mutex
	lines []string
}

func newRecorder() *recorder { return &recorder{log: &recorded{}} }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	for _, a := range r.attrs {
		line += " " + a.String()
	}
	rec.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	r.log.lines = append(r.log.lines, line)
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{attrs: append(slices.Clone(r.attrs), as...), log: r.log}
}

func (r *recorder) WithGroup(string) slog.Handler { return r }

func (r *recorder) lines() []string {
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	return slices.Clone(r.log.lines)
}

// has reports whether a line at level contains text.
func (r *recorder) has(level slog.Level, text string) bool {
	for _, l := range r.lines() {
		if strings.HasPrefix(l, level.String()+" ") && strings.Contains(l, text) {
			return true
		}
	}
	return false
}

// TestJoinRetries: a node whose join address is not up yet keeps trying,
// so nodes may start in any order; its own address under another name in
// the list does not count as a join.
func TestJoinRetries(t *testing.T) {
	addr, bAddr := freePort(t), freePort(t)
	_, bPort, _ := net.SplitHostPort(bAddr)
	rec := newRecorder()
	b := start(t, "b", nodeOpts{bind: bAddr, join: []string{"localhost:" + bPort, addr}, log: slog.New(rec)})
	eventually(t, 5*time.Second, "b fails to join", func() bool {
		return rec.has(slog.LevelWarn, "no member to join answered yet")
	})
	a := start(t, "a", nodeOpts{bind: addr, join: []string{addr}})
	eventually(t, 5*time.Second, "b joins a late seed", alive(t, b, "a", "b"))
	eventually(t, 5*time.Second, "a sees b", alive(t, a, "a", "b"))
}

// freePort finds a loopback port free for both TCP and UDP.
func freePort(t *testing.T) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

func TestOpenRefusesBadConfig(t *testing.T) {
	good := Config{Bind: "127.0.0.1:0", Meta: Meta{Cluster: "c", Server: "s"}, Preset: Local}
	for name, mod := range map[string]func(*Config){
		"no server":        func(c *Config) { c.Meta.Server = "" },
		"bad key":          func(c *Config) { c.Key = []byte("short") },
		"bad preset":       func(c *Config) { c.Preset = "moon" },
		"bad bind":         func(c *Config) { c.Bind = "127.0.0.1" },
		"advertise port 0": func(c *Config) { c.Advertise = "127.0.0.1:0" },
		"huge meta":        func(c *Config) { c.Meta.Version = string(make([]byte, 600)) },
		"comma in role":    func(c *Config) { c.Meta.Roles = []string{"a,b"} },
	} {
		cfg := good
		mod(&cfg)
		if g, err := Open(cfg); err == nil {
			g.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	// Bind with a host name and the default (LAN) preset.
	cfg := good
	cfg.Bind, cfg.Preset = "localhost:0", ""
	g, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if host, _, _ := net.SplitHostPort(g.Addr()); host != "127.0.0.1" {
		t.Errorf("bound to %s", g.Addr())
	}
}
