package imapproxy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/node"
	"github.com/rookery/rookery/store"
)

// TestListNamesAsLiterals: names the master already holds that a quoted
// string cannot carry (CR LF, 8-bit, over 1 KiB) are listed as literals,
// so none can inject a response into the client's stream.
func TestListNamesAsLiterals(t *testing.T) {
	inject := "user.alice.x\r\n t9 OK fake \r\n * 99 EXISTS"
	long := "user.alice." + strings.Repeat("l", 1100)
	addr := fakeMurder(t, map[string]string{"fake1": closedAddr(t)}, func(cfg *imapproxy.Config) {
		var b store.Batch
		for _, name := range []string{inject, "user.alice.caf\xc3\xa9", long, `user.alice.q"uote`} {
			b.Changes = append(b.Changes, store.Change{Name: name, New: &store.Entry{Name: name, Kind: store.Active,
				Location: "fake1!default", ACL: "alice\tlrswipkxtecda\t"}})
		}
		if _, err := cfg.DB.Commit(&b); err != nil {
			t.Fatal(err)
		}
	})
	c := login(t, addr, "alice", "alicepw")
	got := c.ok(`LIST "" *`)
	want := []string{
		`* LIST (\HasChildren) "." INBOX`,
		`* LIST (\HasNoChildren) "." "INBOX.q\"uote"`,
		`* LIST (\HasNoChildren) "." other`,
		`* LIST (\HasNoChildren) "." {35}` + "\r\nINBOX.x\r\n t9 OK fake \r\n * 99 EXISTS",
		`* LIST (\HasNoChildren) "." {11}` + "\r\nINBOX.caf\xc3\xa9",
		`* LIST (\HasNoChildren) "." {1106}` + "\r\nINBOX." + strings.Repeat("l", 1100),
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("LIST:\n%q\nwant\n%q", got, want)
	}
	c.ok("NOOP") // still in step
}

// TestFrontendRefusesBadNames: the frontend checks client names as the
// backends do (internal/mboxname), before any backend is asked.
func TestFrontendRefusesBadNames(t *testing.T) {
	addr := fakeMurder(t, map[string]string{"fake1": closedAddr(t)})
	c := login(t, addr, "alice", "alicepw")
	for _, name := range []string{"INBOX.\xff\xfe", "INBOX.caf\xc3\xa9", "INBOX.&Jjo", "INBOX.a\r\nb", "INBOX.a\x7f"} {
		lit := "{" + itoa(len(name)) + "+}\r\n" + name
		for _, cmd := range []string{"CREATE ", "SELECT ", "SUBSCRIBE ", "DELETE ", "RENAME INBOX.x "} {
			if got := c.no("%s", cmd+lit); got != "NO Invalid mailbox name" {
				t.Errorf("%s%q: %s", cmd, name, got)
			}
		}
	}
}

// TestSubscribeOtherBackend: alice's subscriptions live on rb1 with her
// INBOX; the shared mailbox is on rb2. SUBSCRIBE to it through the
// frontend works, and LSUB shows it selectable.
func TestSubscribeOtherBackend(t *testing.T) {
	m, _, _ := startRookeryMurder(t)
	_, imapAddr := m.frontend(t)
	alice := login(t, imapAddr, "alice", "alicepw")
	alice.ok("SUBSCRIBE shared")
	alice.ok("SUBSCRIBE INBOX")
	got := alice.ok(`LSUB "" *`)
	slices.Sort(got)
	if want := []string{`* LSUB () "." INBOX`, `* LSUB () "." shared`}; !slices.Equal(got, want) {
		t.Errorf("LSUB: %q, want %q", got, want)
	}
	// Parents a '%' stops at are \Noselect, whether they exist or not
	// (RFC 3501 6.3.9), unless subscribed themselves.
	alice.ok("CREATE INBOX.p")
	alice.ok("CREATE INBOX.p.c")
	alice.ok("SUBSCRIBE INBOX.p.c")
	alice.ok("CREATE INBOX.q.d") // INBOX.q is no mailbox
	alice.ok("SUBSCRIBE INBOX.q.d")
	got = alice.ok("%s", `LSUB "" INBOX.%`)
	slices.Sort(got)
	if want := []string{`* LSUB (\Noselect) "." INBOX.p`, `* LSUB (\Noselect) "." INBOX.q`}; !slices.Equal(got, want) {
		t.Errorf("LSUB INBOX.%%: %q, want %q", got, want)
	}
	got = alice.ok(`LSUB "INBOX." "*"`)
	slices.Sort(got)
	if want := []string{`* LSUB () "." INBOX.p.c`, `* LSUB () "." INBOX.q.d`}; !slices.Equal(got, want) {
		t.Errorf("LSUB INBOX.*: %q, want %q", got, want)
	}
	if tagged := alice.no("SUBSCRIBE nowhere"); tagged != "NO Mailbox does not exist" {
		t.Errorf("SUBSCRIBE to a mailbox the murder lacks: %s", tagged)
	}
	alice.ok("UNSUBSCRIBE shared")
	if got := alice.ok(`LSUB "" shared`); len(got) != 0 {
		t.Errorf("LSUB after UNSUBSCRIBE: %q", got)
	}
}

// TestCyrusFrontendSubscribe: a real Cyrus 3.6 frontend in front of two
// Rookery backends: SUBSCRIBE to the shared mailbox on the backend that
// does not hold alice's INBOX (where her subscriptions live) works, LSUB
// shows it selectable, and MOVE into the selected mailbox works.
func TestCyrusFrontendSubscribe(t *testing.T) {
	cyrustest.Require(t)
	m := startRookeryMaster(t)
	backend := func(name string) *node.Node {
		port := cyrustest.FreePort(t)
		// A Cyrus frontend dials a backend's server name: host:port.
		addr := "127.0.0.1:" + itoa(port)
		return m.rookeryBackend(t, addr, func(cfg *node.Config) { cfg.IMAPListen = addr })
	}
	rb1, rb2 := backend("rb1"), backend("rb2")
	login(t, rb1.IMAPAddr(), "admin", "secret").ok("CREATE user.alice")
	admin2 := login(t, rb2.IMAPAddr(), "admin", "secret")
	admin2.ok("CREATE shared")
	admin2.ok("SETACL shared anyone lrs")
	m.waitEntry(t, "shared", rb2.IMAPAddr())

	fe := cyrustest.Start(t, cyrustest.RoleFrontend, cyrustest.Options{
		Master: m.master.MUPDATEAddr(), IMAPPort: cyrustest.FreePort(t),
	})
	fe.AddUser(t, "alice", "alicepw", false)
	fe.Sync(t)
	alice := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
	defer alice.Close()
	cmd := func(line string) []string {
		t.Helper()
		u, status, err := alice.Cmd("%s", line)
		if err != nil || !strings.HasPrefix(status, "OK") {
			t.Fatalf("%s: %s %v", line, status, err)
		}
		return u
	}
	cmd("SUBSCRIBE shared")
	if got := cmd(`LSUB "" shared`); !slices.Equal(got, []string{`* LSUB () "." shared`}) {
		t.Errorf("LSUB: %q", got)
	}
	cmd("APPEND INBOX {7+}\r\nx: y\r\n\r\n")
	cmd("SELECT INBOX")
	if got := cmd("MOVE 1 INBOX"); !slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "* OK [COPYUID ") }) {
		t.Errorf("MOVE into INBOX: %q", got)
	}
	if got := cmd("FETCH 1:* (UID)"); !slices.Equal(got, []string{"* 1 FETCH (UID 2)"}) {
		t.Errorf("after MOVE: %q", got)
	}
}
