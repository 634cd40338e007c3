package imap

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func TestACLCommands(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice", "bob")
	alice := e.raw()
	alice.cmd("a1", "LOGIN alice alicepw", "OK")
	alice.cmd("a2", "CREATE INBOX.shared", "OK")
	got := alice.cmd("a3", "GETACL INBOX.shared", "OK")
	if got[0] != "* ACL INBOX.shared alice lrswipkxtecdan" {
		t.Fatalf("GETACL: %q", got)
	}
	got = alice.cmd("a4", "MYRIGHTS INBOX", "OK")
	if got[0] != "* MYRIGHTS INBOX lrswipkxtecdan" {
		t.Fatalf("MYRIGHTS: %q", got)
	}
	got = alice.cmd("a5", "LISTRIGHTS INBOX.shared bob", "OK")
	if got[0] != `* LISTRIGHTS INBOX.shared bob "" l r s w i p k x t e a n` {
		t.Fatalf("LISTRIGHTS: %q", got)
	}
	got = alice.cmd("a5b", "LISTRIGHTS INBOX.shared alice", "OK")
	if got[0] != `* LISTRIGHTS INBOX.shared alice lkxcan r s w i p t e` {
		t.Fatalf("LISTRIGHTS owner: %q", got)
	}

	// bob cannot see the mailbox until alice grants him rights.
	bob := e.raw()
	bob.cmd("b1", "LOGIN bob bobpw", "OK")
	if l := bob.cmd("b2", "LIST \"\" user.alice.*", "OK"); len(l) != 1 {
		t.Fatalf("bob lists %q", l)
	}
	bob.cmd("b3", "SELECT user.alice.shared", "NO")
	alice.cmd("a6", "SETACL INBOX.shared bob lr", "OK")
	alice.cmd("a7", "SETACL INBOX.shared bob +c", "OK") // obsolete c is k
	got = alice.cmd("a8", "GETACL INBOX.shared", "OK")
	if got[0] != "* ACL INBOX.shared alice lrswipkxtecdan bob lrkc" {
		t.Fatalf("GETACL after SETACL: %q", got)
	}
	got = bob.cmd("b4", "LIST \"\" user.%", "OK")
	if len(got) != 2 || got[0] != `* LIST (\Noselect \HasChildren) "." user.alice` {
		t.Fatalf("bob LIST user.%%: %q", got)
	}
	got = bob.cmd("b5", "MYRIGHTS user.alice.shared", "OK")
	if got[0] != "* MYRIGHTS user.alice.shared lrkc" {
		t.Fatalf("bob MYRIGHTS: %q", got)
	}
	bob.cmd("b6", "EXAMINE user.alice.shared", "OK [READ-ONLY]")
	bob.cmd("b7", "CREATE user.alice.shared.bobs", "OK")
	bob.cmd("b8", "SETACL user.alice.shared bob lrswi", "NO")
	bob.cmd("b9", "GETACL user.alice.shared", "NO")
	bob.cmd("b10", "APPEND user.alice.shared {3}", "NO")
	alice.cmd("a9", "DELETEACL INBOX.shared bob", "OK")
	bob.cmd("b11", "SELECT user.alice.shared", "NO")
	// Negative rights win over anyone.
	alice.cmd("a10", "SETACL INBOX.shared anyone lr", "OK")
	alice.cmd("a11", "SETACL INBOX.shared -bob r", "OK")
	got = bob.cmd("b12", "MYRIGHTS user.alice.shared", "OK")
	if got[0] != "* MYRIGHTS user.alice.shared l" {
		t.Fatalf("negative rights: %q", got)
	}
	// An admin sees every mailbox and may change ACLs, but reads no mail
	// unless an ACL says so.
	admin := e.raw()
	admin.cmd("c1", "LOGIN admin adminpw", "OK")
	admin.cmd("c2", "SETACL user.bob admin lr", "OK")
	admin.cmd("c3", "EXAMINE user.bob", "OK")
	admin.cmd("c4", "EXAMINE user.alice", "NO")
}

func TestQuota(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	admin := e.raw()
	admin.cmd("c1", "LOGIN admin adminpw", "OK")
	admin.cmd("c2", "SETQUOTA user.alice (STORAGE 2)", "OK")
	c := e.client("alice", "alicepw", nil)
	appendMsg(t, c, "INBOX", testMessage("small", strings.Repeat("a", 1000)))
	roots, err := c.GetQuotaRoot("INBOX").Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].Root != "INBOX" || roots[0].Resources[imap.QuotaResourceStorage].Limit != 2 ||
		roots[0].Resources[imap.QuotaResourceStorage].Usage != 1 {
		t.Fatalf("quota roots %+v", roots)
	}
	msg := testMessage("big", strings.Repeat("b", 1500))
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	_, _ = cmd.Write([]byte(msg))
	_ = cmd.Close()
	if _, err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "OVERQUOTA") {
		t.Fatalf("append over quota: %v", err)
	}
	q, err := c.GetQuota("INBOX").Wait()
	if err != nil || q.Resources[imap.QuotaResourceStorage].Usage != 1 {
		t.Fatalf("GETQUOTA %+v %v", q, err)
	}
	alice := e.raw()
	alice.cmd("a1", "LOGIN alice alicepw", "OK")
	alice.cmd("a2", "SETQUOTA user.alice (STORAGE 100)", "NO")
	// The connection is still in step after a refused non-synchronising
	// literal.
	alice.cmd("a3", "APPEND INBOX {2000+}\r\n"+strings.Repeat("x", 2000), "NO [OVERQUOTA]")
	alice.cmd("a4", "NOOP", "OK")
}

// TestProxyLogin: a proxy server may act as a user (authzid), never as an
// admin; nobody else may name another identity.
func TestProxyLogin(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	plain := func(authz, authc, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + pass))
	}
	p := e.raw()
	got := p.cmd("A01", "AUTHENTICATE PLAIN "+plain("alice", "proxy", "proxypw"), "OK")
	if !strings.Contains(got[len(got)-1], "[CAPABILITY") {
		t.Errorf("no capabilities in OK: %q", got)
	}
	p.cmd("A02", "SELECT INBOX", "OK") // alice's INBOX
	p.cmd("A03", "MYRIGHTS INBOX", "OK")
	// Two-step form, as a SASL client without SASL-IR sends it.
	p2 := e.raw()
	p2.send("A01 AUTHENTICATE PLAIN\r\n")
	if l := p2.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation: %q", l)
	}
	p2.send(plain("admin", "proxy", "proxypw") + "\r\n")
	p2.until("A01 OK")
	// An admin through a frontend is an admin here too, as in Cyrus.
	p2.cmd("A02", "CREATE user.mallory", "OK")

	b := e.raw()
	b.cmd("B1", "AUTHENTICATE PLAIN "+plain("alice", "bob", "bobpw"), "NO")
	b.cmd("B2", "AUTHENTICATE PLAIN "+plain("alice", "admin", "adminpw"), "NO")
	b.cmd("B3", "AUTHENTICATE PLAIN "+plain("", "alice", "wrong"), "NO")
	b.cmd("B4", "AUTHENTICATE PLAIN "+plain("bob", "bob", "bobpw"), "OK")

	// LOCALAPPEND, exactly as a Cyrus frontend sends it for its user.
	msg := testMessage("via frontend", "proxied")
	got = p.cmd("A04", fmt.Sprintf("Localappend {5+}\r\nINBOX \"\" (\\Seen) {%d+}\r\n%s", len(msg), msg), "OK [APPENDUID ")
	if !strings.Contains(got[len(got)-1], " 1]") {
		t.Errorf("LOCALAPPEND reply %q", got)
	}
	// A plain user may not use it.
	b.cmd("B5", "LOCALAPPEND INBOX \"\" {2+}\r\nhi", "BAD")
	b.cmd("B6", "NOOP", "OK")
	// MULTIAPPEND, as a Cyrus frontend's cross-backend COPY sends it: all
	// messages in one command, added together.
	got = p.cmd("A06", "Append {5+}\r\nINBOX (\\Seen) \"02-Jan-2006 15:04:05 -0700\" {10+}\r\nSubject: a (\\Flagged) {10+}\r\nSubject: b", "OK [APPENDUID ")
	if !strings.HasSuffix(got[len(got)-1], " 2:3] Completed") {
		t.Errorf("MULTIAPPEND reply %q", got)
	}
	got = p.cmd("A05", "FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])", "OK")
	if !strings.Contains(got[0], `\Seen`) || got[1] != "Subject: via frontend" {
		t.Errorf("fetch after LOCALAPPEND: %q", got)
	}
}

// fakeRegistry records calls and can be made unreachable.
type fakeRegistry struct {
	mu       sync.Mutex
	down     bool
	refuse   string // name Reserve refuses
	calls    []string
	entries  map[string]string
	failNext string // a method to fail once
}

func (f *fakeRegistry) call(op, name string, acl string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op+" "+name)
	if f.down {
		return fmt.Errorf("dial: %w", ErrRegistryUnavailable)
	}
	if f.failNext == op {
		f.failNext = ""
		return errors.New("master said NO")
	}
	switch op {
	case "reserve":
		if name == f.refuse {
			return ErrRegistryRefused
		}
		f.entries[name] = "reserved"
	case "activate":
		f.entries[name] = acl
	case "delete":
		delete(f.entries, name)
	}
	return nil
}

func (f *fakeRegistry) Reserve(_ context.Context, name string) error {
	return f.call("reserve", name, "")
}
func (f *fakeRegistry) Activate(_ context.Context, name, acl string) error {
	return f.call("activate", name, acl)
}
func (f *fakeRegistry) Delete(_ context.Context, name string) error {
	return f.call("delete", name, "")
}

func (f *fakeRegistry) set(fn func(f *fakeRegistry)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func TestRegistry(t *testing.T) {
	reg := &fakeRegistry{entries: map[string]string{}}
	e := startEnv(t, t.TempDir(), func(c *Config) { c.Registry = reg })
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "CREATE INBOX.a", "OK")
	a.cmd("3", "RENAME INBOX.a INBOX.b", "OK")
	a.cmd("4", "SETACL INBOX.b bob lr", "OK")
	want := []string{"reserve user.alice", "activate user.alice", "reserve user.alice.a", "activate user.alice.a",
		"reserve user.alice.b", "activate user.alice.b", "delete user.alice.a", "activate user.alice.b"}
	if !slices.Equal(reg.calls, want) {
		t.Fatalf("calls %q\nwant %q", reg.calls, want)
	}
	if reg.entries["user.alice.b"] != "alice\tlrswipkxtecdan\tbob\tlr\t" {
		t.Errorf("registered ACL %q", reg.entries["user.alice.b"])
	}

	// Master down: every change is refused and nothing changes here.
	reg.set(func(f *fakeRegistry) { f.down = true })
	a.cmd("5", "CREATE INBOX.c", "NO no connection to server")
	a.cmd("6", "RENAME INBOX.b INBOX.d", "NO no connection to server")
	a.cmd("7", "DELETE INBOX.b", "NO no connection to server")
	a.cmd("8", "SETACL INBOX.b bob lrs", "NO no connection to server")
	got := a.cmd("9", "LIST \"\" *", "OK")
	if len(got) != 3 || !strings.HasSuffix(got[1], "INBOX.b") {
		t.Fatalf("after refusals: %q", got)
	}
	if acl := a.cmd("10", "GETACL INBOX.b", "OK"); acl[0] != "* ACL INBOX.b alice lrswipkxtecdan bob lr" {
		t.Fatalf("ACL changed: %q", acl)
	}
	reg.set(func(f *fakeRegistry) { f.down = false; f.refuse = "user.alice.taken" })
	a.cmd("11", "CREATE INBOX.taken", "NO unable to reserve mailbox on mupdate server")
	// A failed activation rolls the reservation back.
	reg.set(func(f *fakeRegistry) { f.failNext = "activate" })
	a.cmd("12", "CREATE INBOX.e", "NO the mupdate operation failed")
	if _, ok := reg.entries["user.alice.e"]; ok {
		t.Error("reservation of user.alice.e left behind")
	}
	a.cmd("13", "SELECT INBOX.e", "NO")
	a.cmd("14", "DELETE INBOX.b", "OK")
	if _, ok := reg.entries["user.alice.b"]; ok {
		t.Error("deleted mailbox still registered")
	}
}

func TestLimits(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) {
		c.MaxMessageSize = 1000
		c.MaxLine = 200
		c.MaxConnsPerUser = 2
		c.IdleTimeout = 300 * time.Millisecond
	})
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	// A synchronising literal over the limit is refused before it is sent.
	a.cmd("2", "APPEND INBOX {1001}", "NO [TOOBIG]")
	// A non-synchronising one is skipped, and the next command works.
	a.cmd("3", "APPEND INBOX (\\Seen) {1001+}\r\n"+strings.Repeat("y", 1001), "NO [TOOBIG]")
	a.cmd("4", "APPEND INBOX {10+}\r\nSubject: x", "OK")
	a.cmd("5", "FOO", "BAD")
	a.cmd("6", "SELECT", "BAD")
	// A second user connection is fine, a third is refused.
	b := e.raw()
	b.cmd("1", "LOGIN alice alicepw", "OK")
	c := e.raw()
	c.cmd("1", "LOGIN alice alicepw", "NO [LIMIT]")
	// An over-long line ends the connection with a clear BYE.
	a.send("7 NOOP " + strings.Repeat("z", 300) + "\r\n")
	if l := a.line(); l != "* BYE Line too long" {
		t.Fatalf("long line: %q", l)
	}
	// An idle connection (and so a session in IDLE) is closed after the
	// idle timeout.
	b.cmd("2", "SELECT INBOX", "OK")
	b.send("3 IDLE\r\n")
	if l := b.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("idle: %q", l)
	}
	if l := b.line(); l != "* BYE Idle timeout" {
		t.Fatalf("idle timeout: %q", l)
	}
	// The freed slot can be used again once the server has noticed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := e.raw()
		d.send("1 LOGIN alice alicepw\r\n")
		l := d.until("1 ")
		if strings.HasPrefix(l[len(l)-1], "1 OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slot not freed: %q", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The stored message is intact: nothing partial was kept.
	mb, _, _ := e.store.Mailbox("user.alice")
	if mb.Exists != 1 || mb.Size != 10 {
		t.Fatalf("mailbox after refusals: %+v", mb)
	}
}

func TestCondstoreNamespaceAndSlash(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) { c.Separator = '/' })
	e.makeUsers("alice", "john.doe")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	if got := a.cmd("2", "NAMESPACE", "OK"); got[0] != `* NAMESPACE (("INBOX/" "/")) (("user/" "/")) (("" "/"))` {
		t.Fatalf("namespace %q", got)
	}
	a.cmd("3", "CREATE INBOX/a.b", "OK")
	if _, ok, _ := e.store.Mailbox("user.alice.a^b"); !ok {
		t.Fatal("INBOX/a.b is not stored as user.alice.a^b")
	}
	if got := a.cmd("4", `LIST "" "INBOX/*"`, "OK"); got[0] != `* LIST (\HasNoChildren) "/" INBOX/a.b` {
		t.Fatalf("list %q", got)
	}
	if _, ok, _ := e.store.Mailbox("user.john^doe"); !ok {
		t.Fatal("user john.doe's INBOX is not user.john^doe")
	}
	a.cmd("5", "APPEND INBOX/a.b {10+}\r\nSubject: x", "OK")
	a.cmd("6", "APPEND INBOX/a.b {10+}\r\nSubject: y", "OK")
	got := a.cmd("7", "SELECT INBOX/a.b (CONDSTORE)", "OK [READ-WRITE]")
	var hms string
	for _, l := range got {
		if strings.HasPrefix(l, "* OK [HIGHESTMODSEQ ") {
			hms = strings.TrimSuffix(strings.TrimPrefix(l, "* OK [HIGHESTMODSEQ "), "] Ok")
		}
	}
	if hms == "" {
		t.Fatalf("no HIGHESTMODSEQ: %q", got)
	}
	got = a.cmd("8", "STORE 1 +FLAGS.SILENT (\\Flagged)", "OK")
	if len(got) != 2 || !strings.Contains(got[0], "MODSEQ (") {
		t.Fatalf("store with condstore: %q", got)
	}
	got = a.cmd("9", "FETCH 1:* (FLAGS) (CHANGEDSINCE "+hms+")", "OK")
	if len(got) != 2 || !strings.HasPrefix(got[0], "* 1 FETCH (FLAGS (\\Flagged \\Recent) MODSEQ (") {
		t.Fatalf("changedsince: %q", got)
	}
	got = a.cmd("10", "UID STORE 1,2 (UNCHANGEDSINCE "+hms+") +FLAGS (\\Seen)", "OK [MODIFIED 1]")
	if len(got) != 2 || !strings.Contains(got[0], "UID 2") {
		t.Fatalf("unchangedsince: %q", got)
	}
	got = a.cmd("11", "SEARCH MODSEQ "+hms, "OK")
	if !strings.HasPrefix(got[0], "* SEARCH 1 2 (MODSEQ ") {
		t.Fatalf("search modseq: %q", got)
	}
	got = a.cmd("12", "ID NIL", "OK")
	if !strings.HasPrefix(got[0], `* ID ("name" "Rookery"`) {
		t.Fatalf("id: %q", got)
	}
	a.cmd("13", "ENABLE CONDSTORE", "OK")
	a.cmd("14", "LOGOUT", "OK")
}

// TestLocalCreateDelete: LOCALCREATE and LOCALDELETE change this backend
// only, the master never told, for admins; for anyone else they do not
// exist.
func TestLocalCreateDelete(t *testing.T) {
	reg := &fakeRegistry{entries: map[string]string{}}
	e := startEnv(t, t.TempDir(), func(c *Config) { c.Registry = reg })
	e.makeUsers("alice")
	reg.set(func(f *fakeRegistry) { f.calls = nil })
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "LOCALCREATE user.alice.x", "BAD Unrecognized command")
	admin := e.raw()
	admin.cmd("1", "LOGIN admin adminpw", "OK")
	admin.cmd("2", "LOCALCREATE user.alice.moved default", "OK")
	if got := a.cmd("3", `LIST "" INBOX.moved`, "OK"); len(got) != 2 || !strings.HasSuffix(got[0], "INBOX.moved") {
		t.Errorf("after LOCALCREATE: %q", got)
	}
	if acl := a.cmd("4", "GETACL INBOX.moved", "OK"); !strings.HasPrefix(acl[0], "* ACL INBOX.moved alice lrswipkxtecda") {
		t.Errorf("LOCALCREATE's ACL: %q", acl)
	}
	admin.cmd("3", "LOCALCREATE user.alice.moved", "NO")
	a.cmd("5", "LOCALDELETE user.alice.moved", "BAD Unrecognized command")
	admin.cmd("4", "LOCALDELETE user.alice.moved", "OK")
	admin.cmd("5", "LOCALDELETE user.alice.moved", "NO")
	if got := a.cmd("6", `LIST "" INBOX.moved`, "OK"); len(got) != 1 {
		t.Errorf("after LOCALDELETE: %q", got)
	}
	if len(reg.calls) != 0 {
		t.Errorf("the master was told: %q", reg.calls)
	}
}
