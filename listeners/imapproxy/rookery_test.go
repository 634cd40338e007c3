package imapproxy_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/listeners/pop3"
	"github.com/rookery/rookery/node"
)

// startRookeryMurder is startMurder with Rookery backends: one process
// holds the master, two backends (rb1 with alice, rb2 with bob and the
// shared mailbox) and, once the test starts them, the frontends.
func startRookeryMurder(t testing.TB) (m *murder, rb1, rb2 *node.Node) {
	t.Helper()
	m = startRookeryMaster(t)
	rb1, rb2 = m.rookeryBackend(t, "rb1", nil), m.rookeryBackend(t, "rb2", nil)
	login(t, rb1.IMAPAddr(), "admin", "secret").ok("CREATE user.alice")
	admin2 := login(t, rb2.IMAPAddr(), "admin", "secret")
	admin2.ok("CREATE user.bob")
	admin2.ok("CREATE shared")
	admin2.ok("SETACL shared anyone lrswipte")
	m.waitEntry(t, "user.alice", "rb1")
	m.waitEntry(t, "user.bob", "rb2")
	m.waitEntry(t, "shared", "rb2")
	return m, rb1, rb2
}

// startRookeryMaster starts a murder of a Rookery master alone; its
// users file also holds the proxy user.
func startRookeryMaster(t testing.TB) *murder {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users")
	content := usersFile + cyrustest.ProxyUser + ":{PLAIN}" + cyrustest.ProxyPass + "\n"
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	master := startNode(t, users, "master.test", func(cfg *node.Config) {
		cfg.Roles = []node.Role{node.RoleMaster}
		cfg.MUPDATEListen = "127.0.0.1:0"
	})
	u, err := auth.LoadUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	return &murder{master: master, users: u, usersPath: users, addrs: map[string][3]string{}}
}

// rookeryBackend starts a Rookery backend named name that pushes to the
// murder's master; mutate, if set, adjusts its configuration.
func (m *murder) rookeryBackend(t testing.TB, name string, mutate func(*node.Config)) *node.Node {
	t.Helper()
	n := startNode(t, m.usersPath, name, func(cfg *node.Config) {
		cfg.Roles = []node.Role{node.RoleBackend}
		cfg.MUPDATEServer = m.master.MUPDATEAddr()
		cfg.MUPDATEAuthname = cyrustest.MupdateUser
		cfg.MUPDATEPassword = cyrustest.MupdatePass
		cfg.ClientTimeout = 2 * time.Second
		if mutate != nil {
			mutate(cfg)
		}
	})
	m.addrs[name] = [3]string{n.IMAPAddr(), n.POP3Addr(), n.LMTPAddr()}
	return n
}

// TestRookeryBackends: the frontend in front of Rookery backends, all in
// one process: both users' trees and the shared mailbox listed, SELECT,
// APPEND, FETCH, COPY and MOVE within and across backends, an IDLE woken
// by an LMTP delivery through the frontend, POP3 through the frontend.
func TestRookeryBackends(t *testing.T) {
	m, _, rb2 := startRookeryMurder(t)
	_, imapAddr := m.frontend(t)
	lmtpAddr := m.lmtpFrontend(t, lmtp.Limits{})
	pop3Addr := m.pop3Frontend(t)

	alice := login(t, imapAddr, "alice", "alicepw")
	alice.ok("CREATE INBOX.work")
	m.waitEntry(t, "user.alice.work", "rb1")
	list := alice.ok(`LIST "" "*"`)
	for _, want := range []string{`(\HasChildren) "." INBOX`, `"." INBOX.work`, `"." shared`} {
		if !has(list, want) {
			t.Errorf("alice's LIST lacks %s:\n%s", want, strings.Join(list, "\n"))
		}
	}
	bob := login(t, imapAddr, "bob", "bobpw")
	if list := bob.ok(`LIST "" "*"`); !has(list, `"." INBOX`) || !has(list, `"." shared`) || has(list, "work") {
		t.Errorf("bob's LIST:\n%s", strings.Join(list, "\n"))
	}

	msg := message("hello", "through the frontend")
	alice.ok("APPEND INBOX (\\Flagged) {%d+}\r\n%s", len(msg), msg)
	alice.ok("SELECT INBOX")
	if f := alice.ok("FETCH 1 (FLAGS BODY.PEEK[])"); !has(f, msg) || !has(f, `\Flagged`) {
		t.Errorf("FETCH:\n%s", strings.Join(f, "\n"))
	}
	alice.ok("COPY 1 INBOX.work")
	if _, tagged := alice.cmd("COPY 1 shared"); !strings.HasPrefix(tagged, "OK [COPYUID ") {
		t.Errorf("COPY to rb2: %s", tagged)
	}
	if u := alice.ok("MOVE 1 shared"); !has(u, "EXPUNGE") {
		t.Errorf("MOVE to rb2:\n%s", strings.Join(u, "\n"))
	}
	if st := bob.ok("STATUS shared (MESSAGES)"); !has(st, "MESSAGES 2") {
		t.Errorf("shared on rb2 after COPY and MOVE: %v", st)
	}

	alice.ok("SELECT INBOX")
	alice.send("i1 IDLE\r\n")
	if l := alice.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	mta := dialLMTP(t, lmtpAddr)
	rcpt, data := mta.deliver(message("lmtp", "to both"), "alice@example.com", "bob@example.com")
	if rcpt[0].Code != 250 || rcpt[1].Code != 250 || len(data) != 2 || data[0].Code != 250 || data[1].Code != 250 {
		t.Errorf("LMTP: %v %v", rcpt, data)
	}
	if l := alice.line(); !strings.HasSuffix(l, "EXISTS") {
		t.Errorf("IDLE update: %q", l)
	}
	alice.send("DONE\r\n")
	for l := alice.line(); !strings.HasPrefix(l, "i1 "); l = alice.line() {
	}
	if stat, first := pop3Retr(t, pop3Addr, "bob", "bobpw"); !strings.HasPrefix(stat, "1 ") || !strings.Contains(first, "to both") {
		t.Errorf("bob over POP3: %q\n%s", stat, first)
	}

	// rb2 goes away: alice's own mailboxes still work.
	rb2.Close()
	if tagged := alice.no("STATUS shared (MESSAGES)"); !strings.Contains(tagged, "UNAVAILABLE") {
		t.Errorf("STATUS with rb2 down: %s", tagged)
	}
	alice.ok("FETCH 1:* (FLAGS)")
	if rcpt, _ := mta.deliver(message("x", "y"), "bob@example.com"); rcpt[0].Code != 451 {
		t.Errorf("LMTP to bob with rb2 down: %v", rcpt)
	}
}

// TestINBOXPasswordCheck: a frontend without users of its own checks
// passwords at each user's INBOX backend, for IMAP and POP3; a wrong
// password, a user without an INBOX and an INBOX backend that is down are
// refused, and the proxy's own backend login still follows a check.
func TestINBOXPasswordCheck(t *testing.T) {
	m, _, _ := startRookeryMurder(t)
	dead := deadAddr(t)
	var downRB2 atomic.Bool
	resolve := func(server string) (string, string, string, bool) {
		if server == "rb2" && downRB2.Load() {
			return dead, dead, dead, true
		}
		return m.resolve(server)
	}
	// Longer than the backends' pause after a failed login.
	check := &imapproxy.INBOXCheck{DB: m.master.Store(), Resolve: resolve, Timeout: 5 * time.Second}
	_, imapAddr := m.frontend(t, func(cfg *imapproxy.Config) { cfg.Users = check; cfg.Resolve = resolve })
	pop3Addr := m.pop3Frontend(t, func(cfg *pop3.ProxyConfig) { cfg.Users = check; cfg.Resolve = resolve })

	alice := login(t, imapAddr, "alice", "alicepw")
	alice.ok("SELECT INBOX")
	c := dial(t, imapAddr)
	for _, l := range []string{"LOGIN alice wrong", "LOGIN nobody alicepw", "LOGIN admin secret"} {
		// admin is a user of the backends but has no INBOX.
		if tagged := c.no("%s", l); !strings.Contains(tagged, "AUTHENTICATIONFAILED") {
			t.Errorf("%s: %s", l, tagged)
		}
	}
	c.ok("AUTHENTICATE PLAIN AGJvYgBib2Jwdw==") // "\x00bob\x00bobpw", INBOX on rb2
	if ok, text := pop3Login(t, pop3Addr, "bob", "bobpw"); !ok {
		t.Errorf("bob over POP3: -ERR %s", text)
	}
	if ok, text := pop3Login(t, pop3Addr, "bob", "wrong"); ok {
		t.Errorf("POP3 with a wrong password: +OK %s", text)
	}

	for _, tc := range []struct{ user, pass string }{{"alice", "wrong"}, {"nobody", "x"}} {
		if err := check.Verify(tc.user, tc.pass); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("Verify(%s, %s) = %v, want bad credentials", tc.user, tc.pass, err)
		}
	}

	downRB2.Store(true)
	if err := check.Verify("bob", "bobpw"); err == nil || errors.Is(err, auth.ErrBadCredentials) {
		t.Errorf("Verify with bob's backend down = %v, want an error saying so", err)
	}
	if tagged := dial(t, imapAddr).no("LOGIN bob bobpw"); !strings.Contains(tagged, "AUTHENTICATIONFAILED") {
		t.Errorf("bob with rb2 down: %s", tagged)
	}
	login(t, imapAddr, "alice", "alicepw").ok("SELECT INBOX")
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// pop3Login tries USER and PASS and reports whether PASS was accepted
// (which, through a frontend, includes opening the maildrop).
func pop3Login(t *testing.T, addr, user, pass string) (bool, string) {
	t.Helper()
	c := dialPOP3(t, addr)
	c.cmd("")
	c.cmd("USER " + user)
	rep := c.cmd("PASS " + pass)
	return rep.OK, rep.Text
}

// TestSpecialUse: special-use attributes, which only backends know, come
// through the frontend for LIST with the SPECIAL-USE selection or return
// option (RFC 6154), from both backends, each mailbox once.
func TestSpecialUse(t *testing.T) {
	m, rb1, rb2 := startRookeryMurder(t)
	_, addr := m.frontend(t)
	login(t, rb1.IMAPAddr(), "alice", "alicepw").ok(`CREATE INBOX.Sent (USE (\Sent))`)
	admin2 := login(t, rb2.IMAPAddr(), "admin", "secret")
	admin2.ok(`CREATE shared.Archive (USE (\Archive))`)
	admin2.ok("SETACL shared.Archive anyone lrs")
	m.waitEntry(t, "user.alice.Sent", "rb1")
	m.waitEntry(t, "shared.Archive", "rb2")

	alice := login(t, addr, "alice", "alicepw")
	if caps := alice.ok("CAPABILITY"); !has(caps, " SPECIAL-USE") {
		t.Errorf("CAPABILITY: %v", caps)
	}
	all := alice.ok(`LIST "" "*" RETURN (SPECIAL-USE)`)
	for _, want := range []string{`\Sent) "." INBOX.Sent`, `\Archive) "." shared.Archive`, `"." INBOX`, `"." shared`} {
		if !has(all, want) {
			t.Errorf("LIST RETURN (SPECIAL-USE) lacks %s:\n%s", want, strings.Join(all, "\n"))
		}
	}
	names := map[string]int{}
	for _, l := range all {
		names[l[strings.LastIndexByte(l, ' ')+1:]]++
	}
	for n, k := range names {
		if k > 1 {
			t.Errorf("%s listed %d times:\n%s", n, k, strings.Join(all, "\n"))
		}
	}
	if only := alice.ok(`LIST (SPECIAL-USE) "" "*"`); len(only) != 2 || !has(only, "INBOX.Sent") || !has(only, "shared.Archive") {
		t.Errorf("LIST (SPECIAL-USE):\n%s", strings.Join(only, "\n"))
	}
	if plain := alice.ok(`LIST "" "*"`); !has(plain, `"." INBOX.Sent`) || has(plain, `\Sent`) {
		t.Errorf("plain LIST (from the mailbox list, no special-use):\n%s", strings.Join(plain, "\n"))
	}
	if _, tagged := alice.cmd(`LIST (SUBSCRIBED) "" "*"`); !strings.HasPrefix(tagged, "OK") {
		t.Errorf("LIST (SUBSCRIBED): %s", tagged)
	}
	// Bob sees the shared archive but not alice's Sent.
	if only := login(t, addr, "bob", "bobpw").ok(`LIST (SPECIAL-USE) "" "*"`); len(only) != 1 || !has(only, "shared.Archive") {
		t.Errorf("bob's LIST (SPECIAL-USE):\n%s", strings.Join(only, "\n"))
	}
}
