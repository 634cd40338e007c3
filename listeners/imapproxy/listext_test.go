package imapproxy_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/imapproxy"
)

// checkListExtended drives LIST-EXTENDED, LIST-STATUS and XLIST through
// the frontend at addr, whose murder holds alice's INBOX on one backend
// and "shared" (anyone lrswipte) on the other. It makes INBOX.lx and
// shared.lx, puts two and one messages in them and subscribes alice to
// both; waitEntry waits for a new mailbox to reach the mailbox list.
func checkListExtended(t *testing.T, addr string, waitEntry func(name string)) {
	t.Helper()
	alice := login(t, addr, "alice", "alicepw")
	admin := login(t, addr, "admin", "secret")
	alice.ok("CREATE INBOX.lx")
	admin.ok("CREATE shared.lx")
	waitEntry("user.alice.lx")
	waitEntry("shared.lx")
	for _, box := range []string{"INBOX.lx", "INBOX.lx", "shared.lx"} {
		msg := message("lx", "for LIST-STATUS")
		alice.ok("APPEND %s {%d+}\r\n%s", box, len(msg), msg)
	}
	alice.ok("SUBSCRIBE INBOX.lx")
	alice.ok("SUBSCRIBE shared.lx")

	caps := strings.Join(alice.ok("CAPABILITY"), " ") + " "
	for _, c := range []string{" LIST-EXTENDED ", " LIST-STATUS ", " XLIST "} {
		if !strings.Contains(caps, c) {
			t.Errorf("CAPABILITY lacks%s: %s", c, caps)
		}
	}
	expect := func(cmd string, want ...string) {
		t.Helper()
		got := alice.ok("%s", cmd)
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant:\n%s", cmd, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	expect(`LIST (SUBSCRIBED) "" "*"`,
		`* LIST (\Subscribed \HasNoChildren) "." INBOX.lx`,
		`* LIST (\Subscribed \HasNoChildren) "." shared.lx`)
	// RFC 5258 3.5: a parent that matches but is not subscribed is
	// listed for its subscribed children that do not match.
	expect(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"`,
		`* LIST (\HasChildren) "." INBOX ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\HasChildren) "." shared ("CHILDINFO" ("SUBSCRIBED"))`)
	expect(`LIST "" ("shared" "INBOX.lx" "nothing*") RETURN (SUBSCRIBED CHILDREN)`,
		`* LIST (\Subscribed \HasNoChildren) "." INBOX.lx`,
		`* LIST (\HasChildren) "." shared`)
	expect(`LIST (REMOTE) "" "*lx" RETURN (CHILDREN)`,
		`* LIST (\HasNoChildren) "." INBOX.lx`,
		`* LIST (\HasNoChildren) "." shared.lx`)
	// Each mailbox's STATUS follows its LIST line, from both backends.
	expect(`LIST "" "*lx" RETURN (STATUS (MESSAGES UNSEEN))`,
		`* LIST (\HasNoChildren) "." INBOX.lx`,
		`* STATUS INBOX.lx (MESSAGES 2 UNSEEN 2)`,
		`* LIST (\HasNoChildren) "." shared.lx`,
		`* STATUS shared.lx (MESSAGES 1 UNSEEN 1)`)
	expect(`LIST (SUBSCRIBED) "" "*" RETURN (STATUS (MESSAGES))`,
		`* LIST (\Subscribed \HasNoChildren) "." INBOX.lx`,
		`* STATUS INBOX.lx (MESSAGES 2)`,
		`* LIST (\Subscribed \HasNoChildren) "." shared.lx`,
		`* STATUS shared.lx (MESSAGES 1)`)
	if x := alice.ok(`XLIST "" "INBOX"`); len(x) != 1 || !strings.HasPrefix(x[0], `* XLIST (`) || !strings.HasSuffix(x[0], `\Inbox) "." INBOX`) {
		t.Errorf("XLIST INBOX: %q", x)
	}
	if x := alice.ok(`XLIST "" "*lx"`); len(x) != 2 || !has(x, `XLIST (\HasNoChildren) "." shared.lx`) {
		t.Errorf("XLIST *lx: %q", x)
	}
	for _, cmd := range []string{
		`LIST (BOGUS) "" "*"`,
		`LIST (RECURSIVEMATCH) "" "*"`,
		`LIST "" "*" RETURN (STATUS (BOGUS))`,
		`LIST "" "*" RETURN (BOGUS)`,
		`LIST "" ("*" RETURN (CHILDREN)`,
	} {
		if _, tagged := alice.cmd("%s", cmd); !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("%s: %s", cmd, tagged)
		}
	}
	alice.ok("NOOP")
}

// TestListExtendedRookery: LIST-EXTENDED, LIST-STATUS and XLIST through
// the frontend to Rookery backends give, for mailboxes all on one
// backend, the lines that backend gives itself.
func TestListExtendedRookery(t *testing.T) {
	m, rb1, _ := startRookeryMurder(t)
	_, addr := m.frontend(t)
	server := map[string]string{"user.alice.lx": "rb1", "shared.lx": "rb2"}
	checkListExtended(t, addr, func(name string) { m.waitEntry(t, name, server[name]) })

	alice, direct := login(t, addr, "alice", "alicepw"), login(t, rb1.IMAPAddr(), "alice", "alicepw")
	direct.ok(`CREATE INBOX.Sent (USE (\Sent))`)
	direct.ok(`CREATE INBOX.a.b`)
	direct.ok(`SUBSCRIBE INBOX.a.b`)
	direct.ok(`SUBSCRIBE INBOX.gone`) // no such mailbox: \NonExistent
	m.waitEntry(t, "user.alice.a.b", "rb1")
	m.waitEntry(t, "user.alice.Sent", "rb1")
	for _, cmd := range []string{
		`LIST (SUBSCRIBED) "" "INBOX*"`,
		`LIST (SUBSCRIBED RECURSIVEMATCH) "" "INBOX.%"`,
		`LIST (SUBSCRIBED) "" "INBOX*" RETURN (CHILDREN)`,
		`LIST "" "INBOX*" RETURN (SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UIDNEXT UNSEEN))`,
		`LIST (SPECIAL-USE RECURSIVEMATCH) "" "INBOX"`,
		`LIST "INBOX." ("a" "%") RETURN (CHILDREN)`,
		`XLIST "" "INBOX*"`,
		`XLIST "" "INBOX.%"`,
	} {
		if got, want := alice.ok("%s", cmd), direct.ok("%s", cmd); !slices.Equal(got, want) || len(got) == 0 {
			t.Errorf("%s through the frontend:\n%s\nfrom the backend:\n%s", cmd, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// TestCyrusListExtended: the same through the frontend to real Cyrus 3.6
// backends, which have LIST-EXTENDED and LIST-STATUS themselves.
func TestCyrusListExtended(t *testing.T) {
	m := startMurder(t)
	_, addr := m.frontend(t)
	server := map[string]string{"user.alice.lx": m.be1.ServerName, "shared.lx": m.be2.ServerName}
	checkListExtended(t, addr, func(name string) { m.waitEntry(t, name, server[name]) })
}

// TestListStatusOnePerBackend: a LIST-STATUS reaches each backend holding
// a listed mailbox as one LIST command, not a STATUS per mailbox, and the
// backends are asked at the same time: each fake backend answers only
// once the other has the command too, which a proxy asking one after the
// other never achieves.
func TestListStatusOnePerBackend(t *testing.T) {
	var (
		mu      sync.Mutex
		arrived = map[string]chan struct{}{"one": make(chan struct{}), "two": make(chan struct{})}
	)
	lister := func(me, other string, names ...string) func(c *fakeConn, tag, cmd string) bool {
		return func(c *fakeConn, tag, cmd string) bool {
			if !strings.HasPrefix(strings.ToUpper(cmd), "LIST ") {
				c.send(tag + " NO unexpected")
				return true
			}
			mu.Lock()
			select {
			case <-arrived[me]: // asked again: the count below fails
			default:
				close(arrived[me])
			}
			mu.Unlock()
			select {
			case <-arrived[other]:
			case <-time.After(3 * time.Second): // below the proxy's backend timeout
				c.send(tag + " NO the other backend was not asked meanwhile")
				return true
			}
			for i, n := range names {
				c.send(`* LIST (\HasNoChildren) "." ` + n)
				c.send(fmt.Sprintf("* STATUS %s (MESSAGES %d)", n, 10+i))
			}
			c.send(tag + " OK done")
			return true
		}
	}
	f1 := startFake(t, "LITERAL+ LIST-EXTENDED LIST-STATUS", lister("one", "two", "INBOX", "INBOX.a", "INBOX.b"))
	f2 := startFake(t, "LITERAL+ LIST-EXTENDED LIST-STATUS", lister("two", "one", "other", "other.c"))
	addr := fakeMurder(t, map[string]string{"fake1": f1.ln.Addr().String(), "fake2": f2.ln.Addr().String()},
		withMailbox("user.alice.a", "fake1!default"), withMailbox("user.alice.b", "fake1!default"),
		withMailbox("other.c", "fake2!default"))
	c := login(t, addr, "alice", "alicepw")
	got := c.ok(`LIST "" "*" RETURN (STATUS (MESSAGES))`)
	want := []string{
		`* LIST (\HasChildren) "." INBOX`, `* STATUS INBOX (MESSAGES 10)`,
		`* LIST (\HasNoChildren) "." INBOX.a`, `* STATUS INBOX.a (MESSAGES 11)`,
		`* LIST (\HasNoChildren) "." INBOX.b`, `* STATUS INBOX.b (MESSAGES 12)`,
		`* LIST (\HasChildren) "." other`, `* STATUS other (MESSAGES 10)`,
		`* LIST (\HasNoChildren) "." other.c`, `* STATUS other.c (MESSAGES 11)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("LIST-STATUS across two backends:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range []*fakeBackend{f1, f2} {
		var cmds []string
		for _, l := range f.received() {
			if !strings.HasPrefix(l, "AUTHENTICATE ") && l != "LOGOUT" {
				cmds = append(cmds, l)
			}
		}
		if len(cmds) != 1 || cmds[0] != `LIST "" ("*") RETURN (STATUS (MESSAGES))` {
			t.Errorf("a backend got %q", cmds)
		}
	}
}

// TestListStatusWithoutBackendListStatus: a backend without LIST-STATUS
// is sent STATUS for each of its listed mailboxes, all at once, and no
// LIST; one it refuses is shown \Noselect without a STATUS (RFC 5819).
func TestListStatusWithoutBackendListStatus(t *testing.T) {
	f1 := startFake(t, "LITERAL+", func(c *fakeConn, tag, cmd string) bool {
		name, _, ok := strings.Cut(strings.TrimPrefix(cmd, "STATUS "), " (UIDNEXT)")
		switch {
		case !strings.HasPrefix(cmd, "STATUS ") || !ok:
			c.send(tag + " BAD unexpected")
		case name == "INBOX.locked":
			c.send(tag + " NO Permission denied")
		default:
			c.send("* STATUS " + name + " (UIDNEXT 7)")
			c.send(tag + " OK done")
		}
		return true
	})
	boxes := []func(*imapproxy.Config){withMailbox("user.alice.locked", "fake1!default"), withMailbox(`user.alice.sp ace`, "fake1!default")}
	for i := range 3 * 64 {
		boxes = append(boxes, withMailbox(fmt.Sprintf("user.alice.many.%03d", i), "fake1!default"))
	}
	addr := fakeMurder(t, map[string]string{"fake1": f1.ln.Addr().String(), "fake2": closedAddr(t)}, boxes...)
	c := login(t, addr, "alice", "alicepw")
	got := c.ok(`LIST "" "INBOX*" RETURN (STATUS (UIDNEXT))`)
	if n := len(got); n < 2*3*64 {
		t.Fatalf("LIST-STATUS of %d mailboxes gave %d lines", 3*64, n)
	}
	first := slices.Index(got, `* LIST (\HasNoChildren) "." INBOX.many.000`)
	if first < 0 || first+2*3*64 > len(got) {
		t.Fatalf("LIST-STATUS of %d mailboxes:\n%s", 3*64, strings.Join(got, "\n"))
	}
	for i := range 3 * 64 {
		l := got[first+2*i:]
		name := fmt.Sprintf("INBOX.many.%03d", i)
		if l[0] != `* LIST (\HasNoChildren) "." `+name || l[1] != "* STATUS "+name+" (UIDNEXT 7)" {
			t.Fatalf("LIST-STATUS of %s: %q", name, l[:2])
		}
	}
	got = slices.DeleteFunc(got, func(l string) bool { return strings.Contains(l, "INBOX.many.") })
	want := []string{
		`* LIST (\HasChildren) "." INBOX`, `* STATUS INBOX (UIDNEXT 7)`,
		`* LIST (\Noselect \HasNoChildren) "." INBOX.locked`,
		`* LIST (\NonExistent \HasChildren) "." INBOX.many`,
		`* LIST (\HasNoChildren) "." "INBOX.sp ace"`, `* STATUS "INBOX.sp ace" (UIDNEXT 7)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("LIST-STATUS from a backend without it:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var cmds []string
	for _, l := range f1.received() {
		if !strings.HasPrefix(l, "AUTHENTICATE ") && l != "LOGOUT" {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) != 3+3*64 {
		t.Errorf("the backend got %q", cmds)
	}
	// The other backend is down: its mailboxes make the answer NO.
	if tagged := c.no(`LIST "" "*" RETURN (STATUS (UIDNEXT))`); !strings.Contains(tagged, "UNAVAILABLE") {
		t.Errorf("LIST-STATUS with a backend down: %s", tagged)
	}
}
