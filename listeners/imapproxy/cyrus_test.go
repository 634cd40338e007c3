package imapproxy_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/listeners/lmtp"
)

// TestCyrusBackends drives the frontend against two real Cyrus 3.6
// backends that push their mailboxes to a Rookery master.
func TestCyrusBackends(t *testing.T) {
	m := startMurder(t)
	_, addr := m.frontend(t)

	t.Run("login", func(t *testing.T) {
		c := dial(t, addr)
		if tagged := c.no("LOGIN alice wrong"); !strings.Contains(tagged, "AUTHENTICATIONFAILED") {
			t.Errorf("bad password: %s", tagged)
		}
		_, tagged := c.cmd("SELECT INBOX")
		if !strings.HasPrefix(tagged, "BAD") {
			t.Errorf("SELECT before login: %s", tagged)
		}
		// AUTHENTICATE PLAIN with SASL-IR: "\x00alice\x00alicepw".
		c.ok("AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=")
		c.ok("SELECT INBOX")
	})

	t.Run("password checked at the Cyrus backend", func(t *testing.T) {
		// No users file: alice's password is checked in her backend's
		// sasldb.
		check := &imapproxy.INBOXCheck{DB: m.master.Store(), Resolve: m.resolve, Timeout: 10 * time.Second}
		_, addr := m.frontend(t, func(cfg *imapproxy.Config) { cfg.Users = check })
		if err := check.Verify("alice", "wrong"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("wrong password: %v", err)
		}
		login(t, addr, "alice", "alicepw").ok("SELECT INBOX")
	})

	t.Run("special-use", func(t *testing.T) {
		direct := cyrustest.DialIMAP(t, m.be1.IMAPAddr(), "alice", "alicepw")
		if _, _, err := direct.Cmd(`CREATE INBOX.Sent (USE (\Sent))`); err != nil {
			t.Fatal(err)
		}
		direct.Close()
		m.waitEntry(t, "user.alice.Sent", m.be1.ServerName)
		alice := login(t, addr, "alice", "alicepw")
		if l := alice.ok(`LIST (SPECIAL-USE) "" "*"`); len(l) != 1 || !strings.Contains(l[0], `\Sent`) || !strings.HasSuffix(l[0], "INBOX.Sent") {
			t.Errorf("LIST (SPECIAL-USE) through the frontend:\n%s", strings.Join(l, "\n"))
		}
		if l := alice.ok(`LIST "" "INBOX*" RETURN (SPECIAL-USE)`); !has(l, `\Sent) "." INBOX.Sent`) || !has(l, `"." INBOX`) {
			t.Errorf("LIST RETURN (SPECIAL-USE) through the frontend:\n%s", strings.Join(l, "\n"))
		}
		// Cyrus refuses to delete a special-use mailbox until the use is
		// taken away.
		direct = cyrustest.DialIMAP(t, m.be1.IMAPAddr(), "alice", "alicepw")
		if _, _, err := direct.Cmd("SETMETADATA INBOX.Sent (/private/specialuse NIL)"); err != nil {
			t.Fatal(err)
		}
		direct.Close()
		alice.ok("DELETE INBOX.Sent")
		m.waitGone(t, "user.alice.Sent")
	})

	t.Run("list", func(t *testing.T) {
		alice := login(t, addr, "alice", "alicepw")
		alice.ok("CREATE INBOX.work")
		m.waitEntry(t, "user.alice.work", m.be1.ServerName)
		list := alice.ok(`LIST "" "*"`)
		for _, want := range []string{`(\HasChildren) "." INBOX`, `(\HasNoChildren) "." INBOX.work`, `(\HasNoChildren) "." shared`} {
			if !has(list, want) {
				t.Errorf("alice's LIST lacks %s:\n%s", want, strings.Join(list, "\n"))
			}
		}
		if has(list, "user.bob") {
			t.Errorf("alice sees bob's mailboxes:\n%s", strings.Join(list, "\n"))
		}
		alice.ok("SUBSCRIBE INBOX.work")
		if tagged := alice.no("SUBSCRIBE INBOX.nothing"); !strings.Contains(tagged, "does not exist") {
			t.Errorf("SUBSCRIBE to a missing mailbox: %s", tagged)
		}
		if lsub := alice.ok(`LSUB "" "*"`); len(lsub) != 1 || !has(lsub, "INBOX.work") {
			t.Errorf("LSUB: %v", lsub)
		}
		alice.ok("UNSUBSCRIBE INBOX.work")
		if lsub := alice.ok(`LSUB "" "*"`); len(lsub) != 0 {
			t.Errorf("LSUB after UNSUBSCRIBE: %v", lsub)
		}
		bob := login(t, addr, "bob", "bobpw")
		list = bob.ok(`LIST "" "%%"`)
		for _, want := range []string{`(\HasNoChildren) "." INBOX`, `"." shared`} {
			if !has(list, want) {
				t.Errorf("bob's LIST lacks %s:\n%s", want, strings.Join(list, "\n"))
			}
		}
		admin := login(t, addr, "admin", "secret")
		list = admin.ok(`LIST "" "%%"`)
		if !has(list, `(\Noselect \HasChildren) "." user`) {
			t.Errorf("admin's LIST %% lacks the user parent:\n%s", strings.Join(list, "\n"))
		}
		list = admin.ok(`LIST "user." "%%"`)
		if !has(list, `"." user.alice`) || !has(list, `"." user.bob`) {
			t.Errorf("admin's LIST user.%%:\n%s", strings.Join(list, "\n"))
		}
	})

	t.Run("create placement", func(t *testing.T) {
		bob := login(t, addr, "bob", "bobpw")
		bob.ok("CREATE INBOX.x1")
		bob.ok("CREATE INBOX.x1.deeper")
		m.waitEntry(t, "user.bob.x1.deeper", m.be2.ServerName)
		// be2 now holds more mailboxes: a new top-level one goes to be1.
		admin := login(t, addr, "admin", "secret")
		admin.ok("CREATE newtop")
		m.waitEntry(t, "newtop", m.be1.ServerName)
		admin.ok("SETACL newtop anyone lr")
		if e := m.waitEntry(t, "newtop", m.be1.ServerName); !strings.Contains(e.ACL, "anyone\tlr\t") {
			t.Errorf("SETACL through the proxy: ACL %q", e.ACL)
		}
		if list := bob.ok(`LIST "" "newtop"`); len(list) != 1 {
			t.Errorf("bob's LIST newtop after SETACL: %v", list)
		}
		// A proxied admin is not a full admin on a Cyrus backend: it
		// needs the x right to delete.
		admin.ok("SETACL newtop admin lrswipkxtecda")
		admin.ok("DELETE newtop")
		m.waitGone(t, "newtop")
		if tagged := bob.no("CREATE INBOX.x1"); !strings.Contains(tagged, "ALREADYEXISTS") {
			t.Errorf("CREATE of an existing mailbox: %s", tagged)
		}
		bob.ok("RENAME INBOX.x1.deeper INBOX.x1.renamed")
		m.waitEntry(t, "user.bob.x1.renamed", m.be2.ServerName)
	})

	t.Run("append fetch copy move", func(t *testing.T) {
		alice := login(t, addr, "alice", "alicepw")
		msg := message("first", "hello through the proxy")
		// A synchronising literal: the client waits for "+".
		alice.send("a1 APPEND INBOX (\\Flagged) {" + itoa(len(msg)) + "}\r\n")
		if l := alice.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("APPEND continuation: %q", l)
		}
		alice.send(msg + "\r\n")
		if r := alice.response(); !strings.HasPrefix(r, "a1 OK [APPENDUID") {
			t.Fatalf("APPEND: %q", r)
		}
		msg2 := message("second", "non-synchronising")
		alice.ok("APPEND INBOX {%d+}\r\n%s", len(msg2), msg2)
		sel := alice.ok("SELECT INBOX")
		if !has(sel, "2 EXISTS") {
			t.Errorf("SELECT INBOX:\n%s", strings.Join(sel, "\n"))
		}
		f := alice.ok("FETCH 1:2 (FLAGS BODY.PEEK[])")
		if len(f) != 2 || !strings.Contains(f[0], msg) || !strings.Contains(f[0], `\Flagged`) || !strings.Contains(f[1], msg2) {
			t.Errorf("FETCH:\n%s", strings.Join(f, "\n"))
		}
		alice.ok("COPY 1 INBOX.work")
		u := alice.ok("UID MOVE 2 INBOX.work")
		if !has(u, "EXPUNGE") {
			t.Errorf("MOVE sent no EXPUNGE:\n%s", strings.Join(u, "\n"))
		}
		st := alice.ok("STATUS INBOX.work (MESSAGES)")
		if !has(st, "MESSAGES 2") {
			t.Errorf("STATUS INBOX.work: %s", strings.Join(st, "\n"))
		}
		// Across backends: shared is on be2.
		_, tagged := alice.cmd("COPY 1 shared")
		if !strings.HasPrefix(tagged, "OK [COPYUID ") {
			t.Errorf("cross-backend COPY: %s", tagged)
		}
		alice.ok("SELECT shared")
		f = alice.ok("FETCH 1 (FLAGS BODY.PEEK[])")
		if !has(f, msg) || !has(f, `\Flagged`) {
			t.Errorf("copied message on be2:\n%s", strings.Join(f, "\n"))
		}
		u = alice.ok("MOVE 1 INBOX")
		if !has(u, "EXPUNGE") {
			t.Errorf("cross-backend MOVE sent no EXPUNGE:\n%s", strings.Join(u, "\n"))
		}
		alice.ok("SELECT INBOX")
		if f := alice.ok("FETCH 1:* (FLAGS)"); len(f) != 2 {
			t.Errorf("INBOX after the moves:\n%s", strings.Join(f, "\n"))
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestCyrusDelivery: LMTP through the frontend reaches each recipient's
// backend and wakes an IDLE through the IMAP frontend; POP3 through the
// frontend reads what was delivered.
func TestCyrusDelivery(t *testing.T) {
	m := startMurder(t)
	_, imapAddr := m.frontend(t)
	// Small, so that the big message below is spooled to a file.
	lmtpAddr := m.lmtpFrontend(t, lmtp.Limits{SpoolMemory: 4096, TempDir: t.TempDir()})
	pop3Addr := m.pop3Frontend(t)

	alice := login(t, imapAddr, "alice", "alicepw")
	alice.ok("SELECT INBOX")
	alice.send("idle1 IDLE\r\n")
	if l := alice.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}

	mta := dialLMTP(t, lmtpAddr)
	// Two backends and an unknown user in one transaction: the message
	// is spooled once and sent to each backend.
	msg := message("to both", "one message, two backends")
	rcpt, data := mta.deliver(msg, "alice@example.com", "bob+lists@example.com", "nobody@example.com")
	if rcpt[0].Code != 250 || rcpt[1].Code != 250 || rcpt[2].Code != 550 {
		t.Errorf("RCPT replies: %v", rcpt)
	}
	if len(data) != 2 || data[0].Code != 250 || data[1].Code != 250 {
		t.Errorf("DATA replies: %v", data)
	}
	// alice's IDLE hears of the delivery.
	if l := alice.line(); !strings.HasSuffix(l, "EXISTS") {
		t.Errorf("IDLE update: %q", l)
	}
	alice.send("DONE\r\n")
	for {
		l := alice.line()
		if strings.HasPrefix(l, "idle1 ") {
			if !strings.HasPrefix(l, "idle1 OK") {
				t.Errorf("IDLE end: %q", l)
			}
			break
		}
	}
	if f := alice.ok("FETCH 1 BODY.PEEK[TEXT]"); !has(f, "one message, two backends") {
		t.Errorf("delivered message:\n%s", strings.Join(f, "\n"))
	}

	// One backend: streamed straight through.
	msg2 := message("to bob", "just bob\r\n.leading dot")
	_, data = mta.deliver(msg2, "bob@example.com")
	if len(data) != 1 || data[0].Code != 250 {
		t.Errorf("DATA replies for bob: %v", data)
	}
	// Two backends and a message over the spool's memory part: spooled
	// to a file, which is gone afterwards.
	big := message("big", strings.Repeat("0123456789abcdef\r\n", 8<<10))
	_, data = mta.deliver(big, "alice@example.com", "bob@example.com")
	if len(data) != 2 || data[0].Code != 250 || data[1].Code != 250 {
		t.Errorf("DATA replies for the spooled message: %v", data)
	}
	stat, first := pop3Retr(t, pop3Addr, "bob", "bobpw")
	if !strings.HasPrefix(stat, "3 ") {
		t.Errorf("bob's STAT through the POP3 frontend: %q", stat)
	}
	if !strings.Contains(first, "one message, two backends") {
		t.Errorf("bob's first message:\n%s", first)
	}

	// A backend that is down costs its own mailboxes only.
	if err := m.be2.Stop(); err != nil {
		t.Fatal(err)
	}
	rcpt, data = mta.deliver(message("again", "x"), "bob@example.com", "alice@example.com")
	if rcpt[0].Code != 451 || !strings.HasPrefix(rcpt[0].Text(), "4.4.3") || rcpt[1].Code != 250 {
		t.Errorf("RCPT with bob's backend down: %v", rcpt)
	}
	if len(data) != 1 || data[0].Code != 250 {
		t.Errorf("DATA with bob's backend down: %v", data)
	}
	if tagged := alice.no("STATUS shared (MESSAGES)"); !strings.Contains(tagged, "UNAVAILABLE") {
		t.Errorf("STATUS on the stopped backend: %s", tagged)
	}
	if u := alice.ok("NOOP"); !has(u, "3 EXISTS") {
		t.Errorf("alice's INBOX after the delivery with be2 down:\n%s", strings.Join(u, "\n"))
	}
	bigBody := strings.Repeat("0123456789abcdef\r\n", 8<<10) + "\r\n"
	if f := alice.ok("FETCH 2 BODY.PEEK[TEXT]"); len(f) != 1 || !strings.Contains(f[0], fmt.Sprintf("{%d}\r\n%s)", len(bigBody), bigBody)) {
		t.Errorf("the spooled message on be1:\n%s", strings.Join(f, "\n"))
	}
}

// TestCyrusPythonClients: Python's imaplib, poplib and smtplib (LMTP)
// work through the frontend.
func TestCyrusPythonClients(t *testing.T) {
	python := cyrustest.RequireTool(t, "python3", "python3")
	m := startMurder(t)
	_, imapAddr := m.frontend(t)
	lmtpAddr := m.lmtpFrontend(t, lmtp.Limits{})
	pop3Addr := m.pop3Frontend(t)
	out, err := exec.Command(python, "testdata/clients.py", imapAddr, pop3Addr, lmtpAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("clients.py: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestCyrusBigMessage: a 100 MiB message goes through the proxy both
// ways without the proxy holding it: what the test process allocates
// meanwhile (proxy and streaming test client together) stays far below
// the message's size.
func TestCyrusBigMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MiB")
	}
	m := startMurder(t)
	_, addr := m.frontend(t)
	alice := login(t, addr, "alice", "alicepw")
	const size = 100 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	// Selected first, so that the literal goes to the selected backend,
	// which the proxy splices to.
	alice.ok("SELECT INBOX")
	alice.send("big APPEND INBOX {" + strconv.Itoa(size) + "}\r\n")
	if l := alice.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	sent := sha256.New()
	_ = alice.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	w := bufio.NewWriterSize(io.MultiWriter(alice.conn, sent), 64<<10)
	writeBody(w, size)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	alice.send("\r\n")
	l := alice.line()
	for ; strings.HasPrefix(l, "* "); l = alice.line() {
	}
	if !strings.HasPrefix(l, "big OK") {
		t.Fatalf("APPEND: %q", l)
	}

	alice.send("f FETCH 1 BODY.PEEK[]\r\n")
	head := alice.line()
	n, ok := litSize(head)
	if !ok || n != size {
		t.Fatalf("FETCH: %q", head)
	}
	got := sha256.New()
	_ = alice.conn.SetDeadline(time.Now().Add(2 * time.Minute))
	if _, err := io.CopyN(got, alice.r, int64(n)); err != nil {
		t.Fatal(err)
	}
	if l := alice.line(); l != ")" {
		t.Errorf("after the literal: %q", l)
	}
	if l := alice.line(); !strings.HasPrefix(l, "f OK") {
		t.Errorf("FETCH: %q", l)
	}
	runtime.ReadMemStats(&after)
	if !bytes.Equal(sent.Sum(nil), got.Sum(nil)) {
		t.Error("the message came back different")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Errorf("allocated %d bytes while moving 2×%d", alloc, size)
	} else {
		t.Logf("allocated %d KiB while moving 2×%d MiB", alloc>>10, size>>20)
	}
}

// writeBody writes a message of exactly size bytes in 100-byte lines,
// without allocating per line.
func writeBody(w io.Writer, size int) {
	line := make([]byte, 100)
	for i := 0; i < size; i += len(line) {
		for j := range line[:98] {
			line[j] = 'a' + byte((i/100+j)%26)
		}
		copy(line, "Line ")
		strconv.AppendInt(line[5:5], int64(i/100), 10)
		line[98], line[99] = '\r', '\n'
		if i == 0 {
			copy(line, "Subject: big\r\n\r\n")
		}
		n := min(len(line), size-i)
		w.Write(line[:n])
	}
}

// TestCyrusStandardPorts: a backend named by a bare host listens on the
// standard ports (143, 110, 2003) of its own loopback address, and the
// frontends find all three services with the default resolver (Cyrus's
// convention), as a Cyrus frontend would.
func TestCyrusStandardPorts(t *testing.T) {
	m := startMurder(t)
	host := cyrustest.FreeLoopbackAddr(t, 143, 110, 2003)
	be := cyrustest.Start(t, cyrustest.RoleBackend, cyrustest.Options{
		Master: m.master.MUPDATEAddr(), Addr: host,
		IMAPPort: 143, POP3Port: 110, LMTPPort: 2003,
	})
	if be.ServerName != host {
		t.Fatalf("servername %q, want the bare %q", be.ServerName, host)
	}
	be.AddUser(t, "carol", "carolpw", true)
	m.waitEntry(t, "user.carol", host)
	m.users = authUsers(t, usersFile+"carol:{PLAIN}carolpw\n")
	defaultResolve := func(cfg *imapproxy.Config) { cfg.Resolve = nil }
	_, imapAddr := m.frontend(t, defaultResolve)
	m.resolveDefault = true
	lmtpAddr := m.lmtpFrontend(t, lmtp.Limits{})
	pop3Addr := m.pop3Frontend(t)

	mta := dialLMTP(t, lmtpAddr)
	if _, data := mta.deliver(message("hi carol", "by default ports"), "carol@example.com"); len(data) != 1 || data[0].Code != 250 {
		t.Errorf("LMTP to carol: %v", data)
	}
	carol := login(t, imapAddr, "carol", "carolpw")
	if u := carol.ok("SELECT INBOX"); !has(u, "1 EXISTS") {
		t.Errorf("carol's INBOX: %v", u)
	}
	if stat, _ := pop3Retr(t, pop3Addr, "carol", "carolpw"); !strings.HasPrefix(stat, "1 ") {
		t.Errorf("carol's STAT: %q", stat)
	}
}
