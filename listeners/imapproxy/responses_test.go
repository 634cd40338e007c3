package imapproxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/store"
)

// withMailbox adds a mailbox to the fake murder's list.
func withMailbox(name, loc string) func(*imapproxy.Config) {
	return func(cfg *imapproxy.Config) {
		e := store.Entry{Name: name, Kind: store.Active, Location: loc, ACL: "alice\tlrswipkxtecda\t"}
		if _, err := cfg.DB.Commit(&store.Batch{Changes: []store.Change{{Name: name, New: &e}}}); err != nil {
			panic(err)
		}
	}
}

// TestProxyCrossCopyRelaysExpunge: an EXPUNGE or a flag change the
// selected backend sends while a cross-backend COPY streams a message
// reaches the client, whose view would otherwise be out of step.
func TestProxyCrossCopyRelaysExpunge(t *testing.T) {
	f1 := startFake(t, "LITERAL+ UIDPLUS", func(c *fakeConn, tag, cmd string) bool {
		switch up := strings.ToUpper(cmd); {
		case strings.HasPrefix(up, "SELECT "):
			c.send("* 2 EXISTS")
			c.send(tag + " OK [READ-WRITE] selected")
		case strings.HasPrefix(up, "FETCH 1 (UID FLAGS INTERNALDATE)"):
			c.send(`* 1 FETCH (UID 5 FLAGS (\Seen) INTERNALDATE "01-Jan-2024 00:00:00 +0000")`)
			c.send(tag + " OK done")
		case strings.HasPrefix(up, "UID FETCH 5 "):
			c.send("* 2 EXPUNGE")                                // another session expunged message 2
			c.send("* 1 FETCH (FLAGS (\\Seen \\Flagged) UID 5)") // and flagged message 1
			c.send("* 1 FETCH (BODY[] {5}\r\nhello UID 5)")
			c.send(tag + " OK done")
		default:
			c.send(tag + " BAD unknown " + cmd)
		}
		return true
	})
	var appended string
	f2 := startFake(t, "LITERAL+ UIDPLUS MULTIAPPEND", func(c *fakeConn, tag, cmd string) bool {
		if strings.HasPrefix(strings.ToUpper(cmd), "APPEND ") {
			body := make([]byte, 5)
			if _, err := io.ReadFull(c.r, body); err != nil {
				return false
			}
			appended = cmd + string(body)
			c.line() // the CRLF ending the command
			c.send(tag + " OK [APPENDUID 7 9] done")
			return true
		}
		return selectHandler(c, tag, cmd)
	})
	addr := fakeMurder(t, map[string]string{"fake1": f1.ln.Addr().String(), "fake2": f2.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	u, tagged := c.cmd("COPY 1 other")
	if !strings.HasPrefix(tagged, "OK [COPYUID 7 5 9]") {
		t.Fatalf("COPY: %s", tagged)
	}
	if !has(u, "* 2 EXPUNGE") || !has(u, `\Flagged`) {
		t.Errorf("the selected mailbox's news were not relayed: %q", u)
	}
	if has(u, "hello") {
		t.Errorf("the copied body reached the client: %q", u)
	}
	if !strings.HasSuffix(appended, "hello") {
		t.Errorf("APPEND got %q", appended)
	}
}

// TestProxyLsubNames: \Noselect is dropped for subscribed mailboxes the
// murder has, whatever form their names take in the backend's answer.
func TestProxyLsubNames(t *testing.T) {
	f := startFake(t, "LITERAL+", func(c *fakeConn, tag, cmd string) bool {
		if strings.HasPrefix(strings.ToUpper(cmd), "LSUB") {
			c.send(`* LSUB (\Noselect) "." other`)
			c.send(`* LSUB (\Noselect) "." "My Folder"`)
			c.send("* LSUB (\\Noselect) \".\" {7}\r\nMy \"Box")
			c.send(`* LSUB (\Noselect) "." gone`)
			c.send(tag + " OK done")
			return true
		}
		return selectHandler(c, tag, cmd)
	})
	f2 := startFake(t, "LITERAL+", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String(), "fake2": f2.ln.Addr().String()},
		withMailbox("My Folder", "fake2!default"), withMailbox(`My "Box`, "fake2!default"))
	u := login(t, addr, "alice", "alicepw").ok(`LSUB "" "*"`)
	if len(u) != 4 {
		t.Fatalf("LSUB: %q", u)
	}
	for _, l := range u[:3] {
		if strings.Contains(l, `\Noselect`) {
			t.Errorf("\\Noselect kept on a murder mailbox: %q", l)
		}
	}
	if !strings.Contains(u[3], `\Noselect`) {
		t.Errorf("\\Noselect dropped on a mailbox nowhere: %q", u[3])
	}
}

// brokenList is a routing session whose mailbox list cannot be read.
type brokenList struct{ frontend.Session }

func (brokenList) Lookup(context.Context, string) (store.Entry, error) {
	return store.Entry{}, errors.New("proxy-session actor did not answer")
}

// TestProxyLookupFailure: a list that cannot be read is not a mailbox
// that does not exist: clients get UNAVAILABLE, and COPY no TRYCREATE.
func TestProxyLookupFailure(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()}, func(cfg *imapproxy.Config) {
		table := &frontend.Table{DB: cfg.DB}
		cfg.NewSession = func(string) frontend.Session { return brokenList{table.Session(func(string, int) {})} }
	})
	c := login(t, addr, "alice", "alicepw")
	for _, cmd := range []string{"SELECT INBOX", "STATUS INBOX (MESSAGES)", "DELETE INBOX.x"} {
		if tagged := c.no("%s", cmd); !strings.Contains(tagged, "[UNAVAILABLE]") {
			t.Errorf("%s: %s", cmd, tagged)
		}
	}
}

// TestProxyTryCreate: COPY to a mailbox that does not exist says
// TRYCREATE (RFC 3501), one being created does not.
func TestProxyTryCreate(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()}, func(cfg *imapproxy.Config) {
		e := store.Entry{Name: "user.alice.new", Kind: store.Reserved, Location: "fake1!default"}
		if _, err := cfg.DB.Commit(&store.Batch{Changes: []store.Change{{Name: e.Name, New: &e}}}); err != nil {
			t.Fatal(err)
		}
	})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	if tagged := c.no("COPY 1 INBOX.nothing"); !strings.Contains(tagged, "[TRYCREATE]") {
		t.Errorf("COPY to a missing mailbox: %s", tagged)
	}
	if tagged := c.no("COPY 1 INBOX.new"); strings.Contains(tagged, "TRYCREATE") || !strings.Contains(tagged, "reserved") {
		t.Errorf("COPY to a reserved mailbox: %s", tagged)
	}
}

// TestProxyCondstoreCarried: SELECT (CONDSTORE) enables CONDSTORE for the
// session, so the next backend selected gets ENABLE CONDSTORE first.
func TestProxyCondstoreCarried(t *testing.T) {
	f1 := startFake(t, "LITERAL+ CONDSTORE ENABLE UNSELECT", selectHandler)
	f2 := startFake(t, "LITERAL+ CONDSTORE ENABLE UNSELECT", func(c *fakeConn, tag, cmd string) bool {
		if strings.HasPrefix(strings.ToUpper(cmd), "ENABLE ") {
			c.send("* ENABLED CONDSTORE")
			c.send(tag + " OK enabled")
			return true
		}
		return selectHandler(c, tag, cmd)
	})
	addr := fakeMurder(t, map[string]string{"fake1": f1.ln.Addr().String(), "fake2": f2.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX (CONDSTORE)")
	c.ok("SELECT other")
	got := strings.Join(f2.received(), "\n")
	if i, j := strings.Index(got, "ENABLE CONDSTORE"), strings.Index(got, "SELECT"); i < 0 || j < i {
		t.Errorf("the second backend got:\n%s", got)
	}
}

// TestProxyBeforeLoginLimits: before login, CHECK needs a selection like
// after it, and a non-synchronising literal larger than a command line
// ends the connection instead of being read and dropped.
func TestProxyBeforeLoginLimits(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	if _, tagged := c.cmd("CHECK"); !strings.HasPrefix(tagged, "BAD") {
		t.Errorf("CHECK with nothing selected: %s", tagged)
	}
	c = dial(t, addr)
	c.ok("LOGIN {5+}\r\nalice {7+}\r\nalicepw") // small literals still work
	c = dial(t, addr)
	c.send("x LOGIN {1000000+}\r\n")
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	var lines []string
	for {
		l, err := c.r.ReadString('\n')
		if l != "" {
			lines = append(lines, l)
		}
		if err != nil {
			break
		}
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "* BYE") {
		t.Errorf("a 1 MB literal before login: %q", lines)
	}
}

// TestProxyCrossCopyLimit: a COPY between backends of more messages than
// the proxy keeps track of at once is refused with [LIMIT] before anything
// is appended.
func TestProxyCrossCopyLimit(t *testing.T) {
	const n = 100_001
	f1 := startFake(t, "LITERAL+ UIDPLUS", func(c *fakeConn, tag, cmd string) bool {
		if strings.HasPrefix(strings.ToUpper(cmd), "FETCH 1:* (UID FLAGS INTERNALDATE)") {
			var b strings.Builder
			for i := 1; i <= n; i++ {
				fmt.Fprintf(&b, "* %d FETCH (UID %d FLAGS () INTERNALDATE \"01-Jan-2024 00:00:00 +0000\")\r\n", i, i)
			}
			io.WriteString(c.conn, b.String())
			c.send(tag + " OK done")
			return true
		}
		return selectHandler(c, tag, cmd)
	})
	f2 := startFake(t, "LITERAL+ UIDPLUS MULTIAPPEND", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f1.ln.Addr().String(), "fake2": f2.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	if tagged := c.no("COPY 1:* other"); !strings.Contains(tagged, "[LIMIT]") {
		t.Errorf("COPY of %d messages: %s", n, tagged)
	}
	for _, cmd := range f2.received() {
		if strings.Contains(strings.ToUpper(cmd), "APPEND") {
			t.Errorf("the destination got %q", cmd)
		}
	}
	c.ok("NOOP") // the session goes on
}

// TestProxyLongAnswerAfterIdle: an answer the proxy builds itself, longer
// than its write buffer, is written in full after the client has been
// quiet for longer than the write timeout.
func TestProxyLongAnswerAfterIdle(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	var more []func(*imapproxy.Config)
	for i := range 300 {
		more = append(more, withMailbox(fmt.Sprintf("user.alice.folder%03d", i), "fake1!default"))
	}
	more = append(more, func(cfg *imapproxy.Config) { cfg.Limits.WriteTimeout = 300 * time.Millisecond })
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()}, more...)
	c := login(t, addr, "alice", "alicepw")
	time.Sleep(time.Second) // the client reads mail for a while
	if u := c.ok(`LIST "" "*"`); len(u) < 301 {
		t.Errorf("LIST after a quiet second: %d lines", len(u))
	}
}

// TestProxySpecialUseMerge: special-use attributes come from the backend
// holding each mailbox, whatever placeholders other backends send for it,
// and asking for them changes no names in the answer (RFC 5258).
func TestProxySpecialUseMerge(t *testing.T) {
	lister := func(lines ...string) func(c *fakeConn, tag, cmd string) bool {
		return func(c *fakeConn, tag, cmd string) bool {
			if strings.HasPrefix(strings.ToUpper(cmd), "LIST ") {
				for _, l := range lines {
					c.send(l)
				}
				c.send(tag + " OK done")
				return true
			}
			return selectHandler(c, tag, cmd)
		}
	}
	f1 := startFake(t, "LITERAL+", lister(
		`* LIST (\HasChildren) "." INBOX`,
		`* LIST (\HasNoChildren \Sent) "." INBOX.Sent`,
		`* LIST (\Noselect \HasChildren) "." shared`, // a placeholder for shared.x's parent
		`* LIST (\HasNoChildren) "." shared.x`,
		`* LIST (\HasNoChildren) "." proj.x`))
	f2 := startFake(t, "LITERAL+", lister(`* LIST (\HasChildren \Archive) "." shared`))
	addr := fakeMurder(t, map[string]string{"fake1": f1.ln.Addr().String(), "fake2": f2.ln.Addr().String()},
		withMailbox("user.alice.Sent", "fake1!default"), withMailbox("shared.x", "fake1!default"),
		withMailbox("shared", "fake2!default"), withMailbox("proj.x", "fake1!default"))
	c := login(t, addr, "alice", "alicepw")
	u := c.ok(`LIST "" "*" RETURN (SPECIAL-USE)`)
	for _, want := range []string{`(\HasNoChildren \Sent) "." INBOX.Sent`, `(\HasChildren \Archive) "." shared`} {
		if !has(u, want) {
			t.Errorf("LIST RETURN (SPECIAL-USE) lacks %s:\n%s", want, strings.Join(u, "\n"))
		}
	}
	if only := c.ok(`LIST (SPECIAL-USE) "" "*"`); len(only) != 2 {
		t.Errorf("LIST (SPECIAL-USE):\n%s", strings.Join(only, "\n"))
	}
	// The extended form says \NonExistent where the plain one says
	// \Noselect (RFC 5258 3); the names are the same.
	plain, special := c.ok(`LIST "" "p%%"`), c.ok(`LIST "" "p%%" RETURN (SPECIAL-USE)`)
	if len(plain) != 1 || !has(plain, `(\Noselect \HasChildren) "." proj`) || len(special) != 1 || !has(special, `(\NonExistent \HasChildren) "." proj`) {
		t.Errorf("LIST p%%:\n%s\nwith RETURN (SPECIAL-USE):\n%s", strings.Join(plain, "\n"), strings.Join(special, "\n"))
	}
}

// TestProxySpecialUseSelectedLost: the selected backend failing during a
// special-use LIST ends the session as any loss of the selected backend
// does, rather than leaving the client selected on nothing.
func TestProxySpecialUseSelectedLost(t *testing.T) {
	f := startFake(t, "LITERAL+", func(c *fakeConn, tag, cmd string) bool {
		if strings.HasPrefix(strings.ToUpper(cmd), "LIST ") {
			return false
		}
		return selectHandler(c, tag, cmd)
	})
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	c.send(`l LIST "" "INBOX" RETURN (SPECIAL-USE)` + "\r\n")
	var last string
	for {
		l, err := c.r.ReadString('\n')
		if l != "" {
			last = l
		}
		if err != nil {
			break
		}
	}
	if !strings.HasPrefix(last, "* BYE") {
		t.Errorf("last line after losing the selected backend: %q", last)
	}
}

// TestProxyStalledUpload: a client that stalls in the middle of a large
// APPEND to the selected backend is logged out for idleness, not told
// that the backend was lost.
func TestProxyStalledUpload(t *testing.T) {
	f := startFake(t, "LITERAL+", func(c *fakeConn, tag, cmd string) bool {
		if strings.HasPrefix(strings.ToUpper(cmd), "APPEND ") {
			c.send("+ go ahead")
			_, _ = io.Copy(io.Discard, c.r) // until the proxy hangs up
			return false
		}
		return selectHandler(c, tag, cmd)
	})
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()}, func(cfg *imapproxy.Config) {
		cfg.Limits.IdleTimeout = 300 * time.Millisecond
	})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	c.send("a APPEND INBOX {400000}\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND: %q", l)
	}
	c.send(strings.Repeat("x", 100000)) // and no more
	var last string
	for {
		l, err := c.r.ReadString('\n')
		if l != "" {
			last = l
		}
		if err != nil {
			break
		}
	}
	if !strings.HasPrefix(last, "* BYE") || strings.Contains(last, "backend") {
		t.Errorf("last line after stalling: %q", last)
	}
}
