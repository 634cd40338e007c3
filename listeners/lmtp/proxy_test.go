package lmtp_test

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/testserve"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/store"
)

// fakeLMTP is a backend that knows the users in its list, requires the
// proxy's AUTH and records the messages it receives.
type fakeLMTP struct {
	ln    net.Listener
	users map[string]bool
	opts  fakeOptions
	mu    sync.Mutex
	got   []string // "rcpt1,rcpt2:message"
	froms []string // the MAIL FROM address of each message in got
}

// fakeOptions make a fakeLMTP misbehave.
type fakeOptions struct {
	// closeAfterData ends each connection after one delivery, as a
	// backend's idle timeout or restart would between transactions.
	closeAfterData bool
	// replyDelay is how long the backend takes over each recipient's
	// reply after a message.
	replyDelay time.Duration
}

func startFakeLMTP(t *testing.T, opts fakeOptions, users ...string) *fakeLMTP {
	f := &fakeLMTP{users: map[string]bool{}, opts: opts}
	for _, u := range users {
		f.users[u] = true
	}
	f.ln = testserve.Serve(t, "127.0.0.1:0", f.serve)
	return f
}

func (f *fakeLMTP) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := lmtp.NewReader(bufio.NewReader(c), 1000)
	w := lmtp.NewWriter(bufio.NewWriter(c))
	w.Reply(220, "fake ready")
	w.Flush()
	authed := false
	var from string
	var rcpts []string
	for {
		cmd, err := r.ReadCommand()
		if err != nil {
			return
		}
		switch cmd.Verb {
		case "LHLO":
			w.Reply(250, "fake", "PIPELINING", "AUTH PLAIN")
		case "AUTH":
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(cmd.Arg, "PLAIN "))
			if string(raw) == "\x00proxy\x00pw" {
				authed = true
				w.Reply(235, "2.7.0 ok")
			} else {
				w.Reply(535, "5.7.8 no")
			}
		case "RSET":
			from, rcpts = "", nil
			w.Reply(250, "2.0.0 ok")
		case "MAIL":
			if !authed {
				w.Reply(530, "5.7.0 auth first")
				break
			}
			if from != "" {
				w.Reply(503, "5.5.1 nested MAIL")
				break
			}
			from, _, _ = lmtp.ParsePath(cmd.Arg, "FROM")
			rcpts = nil
			w.Reply(250, "2.1.0 ok")
		case "RCPT":
			addr, _, _ := lmtp.ParsePath(cmd.Arg, "TO")
			user, _, _ := strings.Cut(addr, "@")
			user, _, _ = strings.Cut(strings.ToLower(user), "+")
			if !f.users[user] {
				w.Reply(550, "5.1.1 unknown here")
				break
			}
			rcpts = append(rcpts, addr)
			w.Reply(250, "2.1.5 ok")
		case "DATA":
			w.Reply(354, "go")
			w.Flush()
			msg, err := io.ReadAll(r.DotReader())
			if err != nil {
				return
			}
			f.mu.Lock()
			f.got = append(f.got, strings.Join(rcpts, ",")+":"+string(msg))
			f.froms = append(f.froms, from)
			f.mu.Unlock()
			for range rcpts {
				if f.opts.replyDelay > 0 {
					w.Flush()
					time.Sleep(f.opts.replyDelay) // a slow backend, not synchronisation
				}
				w.Reply(250, "2.1.5 delivered")
			}
			from, rcpts = "", nil
			if f.opts.closeAfterData {
				w.Flush()
				return
			}
		case "QUIT":
			w.Reply(221, "bye")
			w.Flush()
			return
		default:
			w.Reply(500, "what")
		}
		if r.Buffered() == 0 {
			w.Flush()
		}
	}
}

func (f *fakeLMTP) messages() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func (f *fakeLMTP) senders() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.froms...)
}

type mta struct {
	t    *testing.T
	conn net.Conn
	r    *lmtp.Reader
	w    *lmtp.Writer
}

func (m *mta) setConn(c net.Conn) {
	m.conn = c
	m.r = lmtp.NewReader(bufio.NewReader(c), 1000)
	m.w = lmtp.NewWriter(bufio.NewWriter(c))
}

func (m *mta) cmd(line string) lmtp.Reply {
	m.t.Helper()
	m.w.Line(line)
	m.w.Flush()
	return m.reply()
}

func (m *mta) reply() lmtp.Reply {
	m.t.Helper()
	rep, err := m.r.ReadReply()
	if err != nil {
		m.t.Fatal(err)
	}
	return rep
}

func (m *mta) want(code int, line string) lmtp.Reply {
	m.t.Helper()
	rep := m.cmd(line)
	if rep.Code != code {
		m.t.Fatalf("%q: %s, want %d", line, rep, code)
	}
	return rep
}

// setup runs an LMTP proxy over a mailbox list where alice and bob live
// on backend "one", dave on "two", carol's INBOX is being moved, and
// erin's backend is down; "one" also lists stale, whom it does not know.
func setup(t *testing.T, limits lmtp.Limits) (*mta, *fakeLMTP, *fakeLMTP) {
	return setupWith(t, fakeOptions{}, func(c *lmtp.ProxyConfig) { c.Limits = limits })
}

// setupWith is setup with backends that behave as opts says and a proxy
// configured further by configure.
func setupWith(t *testing.T, opts fakeOptions, configure func(*lmtp.ProxyConfig)) (*mta, *fakeLMTP, *fakeLMTP) {
	one := startFakeLMTP(t, opts, "alice", "bob")
	two := startFakeLMTP(t, opts, "dave")
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var b store.Batch
	for _, e := range []store.Entry{
		{Name: "user.alice", Kind: store.Active, Location: "one!p"},
		{Name: "user.bob", Kind: store.Active, Location: "one!p"},
		{Name: "user.stale", Kind: store.Active, Location: "one!p"},
		{Name: "user.dave", Kind: store.Active, Location: "two!p"},
		{Name: "user.carol", Kind: store.Reserved, Location: "one!p"},
		{Name: "user.erin", Kind: store.Active, Location: "down!p"},
	} {
		b.Changes = append(b.Changes, store.Change{Name: e.Name, New: &e})
	}
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(t.TempDir(), "users")
	os.WriteFile(usersFile, []byte("admin:{PLAIN}secret\nalice:{PLAIN}a\n"), 0o600)
	users, err := auth.LoadUsers(usersFile)
	if err != nil {
		t.Fatal(err)
	}
	downLn, _ := net.Listen("tcp", "127.0.0.1:0")
	down := downLn.Addr().String()
	downLn.Close()
	addrs := map[string]string{"one": one.ln.Addr().String(), "two": two.ln.Addr().String(), "down": down}
	cfg := lmtp.ProxyConfig{
		ServerName: "fe.test",
		DB:         db,
		Resolve: func(server string) (string, string, string, bool) {
			a, ok := addrs[server]
			return a, a, a, ok
		},
		Users:  users,
		Admins: []string{"admin"},
		Proxy:  auth.ProxyCredentials{Authname: "proxy", Password: "pw"},
	}
	configure(&cfg)
	p, err := lmtp.NewProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() { p.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	m := &mta{t: t}
	m.setConn(conn)
	if rep := m.reply(); rep.Code != 220 {
		t.Fatalf("greeting %s", rep)
	}
	return m, one, two
}

// Without TLS configured, AUTH is offered and accepted in plaintext.
func TestProxyAuth(t *testing.T) {
	m, _, _ := setup(t, lmtp.Limits{})
	m.want(503, "MAIL FROM:<x@y>") // LHLO first
	lhlo := m.want(250, "LHLO mta")
	if !strings.Contains(lhlo.Text(), "AUTH PLAIN") || !strings.Contains(lhlo.Text(), "PIPELINING") {
		t.Errorf("LHLO: %s", lhlo)
	}
	m.want(530, "MAIL FROM:<x@y>")
	m.want(535, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00a"))) // not an admin
	m.want(535, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00admin\x00wrong")))
	m.want(334, "AUTH PLAIN")
	m.want(235, base64.StdEncoding.EncodeToString([]byte("\x00admin\x00secret")))
	m.want(250, "MAIL FROM:<x@y>")
}

func TestProxyRouting(t *testing.T) {
	m, one, two := setup(t, lmtp.Limits{MaxMessageSize: 1000})
	m.want(250, "LHLO mta")
	m.want(235, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00admin\x00secret")))
	m.want(503, "DATA")
	m.want(552, "MAIL FROM:<x@y> SIZE=5000")
	m.want(250, "MAIL FROM:<x@y> SIZE=100")
	m.want(250, "RCPT TO:<Alice+folder@example.com>")
	m.want(550, "RCPT TO:<nobody@example.com>")
	if rep := m.want(451, "RCPT TO:<carol@example.com>"); !strings.HasPrefix(rep.Text(), "4.2.1") {
		t.Errorf("reserved: %s", rep)
	}
	if rep := m.want(451, "RCPT TO:<erin@example.com>"); !strings.HasPrefix(rep.Text(), "4.4.3") {
		t.Errorf("backend down: %s", rep)
	}
	if rep := m.want(451, "RCPT TO:<stale@example.com>"); !strings.HasPrefix(rep.Text(), "4.3.0") {
		t.Errorf("stale list: %s", rep)
	}
	m.want(250, "RCPT TO:<dave@example.com>")
	m.want(250, "RCPT TO:<bob@example.com>")
	m.want(354, "DATA")
	m.w.Line("Subject: hi")
	m.w.Line("")
	m.w.Line("..dotted") // stuffed
	m.w.Line(".")
	m.w.Flush()
	for i := range 3 { // alice, dave, bob
		if rep := m.reply(); rep.Code != 250 {
			t.Errorf("reply %d after DATA: %s", i, rep)
		}
	}
	want := "Subject: hi\r\n\r\n.dotted\r\n"
	if got := one.messages(); len(got) != 1 || got[0] != "Alice+folder@example.com,bob@example.com:"+want {
		t.Errorf("backend one got %q", got)
	}
	if got := two.messages(); len(got) != 1 || got[0] != "dave@example.com:"+want {
		t.Errorf("backend two got %q", got)
	}

	// Over the size limit: refused for every recipient, and the
	// session goes on.
	m.want(250, "MAIL FROM:<x@y>")
	m.want(250, "RCPT TO:<alice@example.com>")
	m.want(354, "DATA")
	for range 20 {
		m.w.Line(strings.Repeat("x", 99))
	}
	m.w.Line(".")
	m.w.Flush()
	if rep := m.reply(); rep.Code != 552 {
		t.Errorf("oversized message: %s", rep)
	}
	m.want(250, "MAIL FROM:<x@y>")
	m.want(250, "RCPT TO:<alice@example.com>")
	m.want(354, "DATA")
	m.w.Line("small")
	m.w.Line(".")
	m.w.Flush()
	if rep := m.reply(); rep.Code != 250 {
		t.Errorf("after the oversized message: %s", rep)
	}
	if got := one.messages(); len(got) != 2 || got[1] != "alice@example.com:small\r\n" {
		t.Errorf("backend one got %q", got)
	}
	m.want(221, "QUIT")
}

// login says LHLO and authenticates as the admin.
func (m *mta) login() {
	m.t.Helper()
	m.want(250, "LHLO mta")
	m.want(235, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00admin\x00secret")))
}

// send sends a one-line message after DATA's 354.
func (m *mta) send(body string) {
	m.t.Helper()
	m.want(354, "DATA")
	m.w.Line(body)
	m.w.Line(".")
	m.w.Flush()
}

// received checks what a backend received: one message per entry of
// want ("rcpt1,rcpt2:body") from the matching sender.
func received(t *testing.T, name string, f *fakeLMTP, senders []string, want ...string) {
	t.Helper()
	if got := f.messages(); !slices.Equal(got, want) {
		t.Errorf("backend %s got %q, want %q", name, got, want)
	}
	if got := f.senders(); !slices.Equal(got, senders) {
		t.Errorf("backend %s got senders %q, want %q", name, got, senders)
	}
}

// A transaction the client resets (RSET, LHLO) must not survive on the
// backend: its recipients would get the next message.
func TestProxyResetEndsBackendTransaction(t *testing.T) {
	m, one, _ := setup(t, lmtp.Limits{})
	m.login()
	m.want(250, "MAIL FROM:<probe@x>")
	m.want(250, "RCPT TO:<bob@x>")
	m.want(250, "RSET")
	m.want(250, "MAIL FROM:<sender@x>")
	m.want(250, "RCPT TO:<alice@x>")
	m.send("for alice only")
	if rep := m.reply(); rep.Code != 250 {
		t.Fatalf("delivery: %s", rep)
	}
	received(t, "one", one, []string{"sender@x"}, "alice@x:for alice only\r\n")

	m.want(250, "MAIL FROM:<probe2@x>")
	m.want(250, "RCPT TO:<alice@x>")
	m.want(250, "LHLO mta")
	m.want(250, "MAIL FROM:<sender2@x>")
	m.want(250, "RCPT TO:<bob@x>")
	m.send("for bob only")
	if rep := m.reply(); rep.Code != 250 {
		t.Fatalf("delivery: %s", rep)
	}
	received(t, "one", one, []string{"sender@x", "sender2@x"},
		"alice@x:for alice only\r\n", "bob@x:for bob only\r\n")
}

// A message refused for its size after the backends accepted recipients
// (two backends: the message is spooled before any backend sees DATA)
// must leave no transaction open there.
func TestProxyOversizedMessageEndsBackendTransactions(t *testing.T) {
	m, one, two := setup(t, lmtp.Limits{MaxMessageSize: 50})
	m.login()
	m.want(250, "MAIL FROM:<s1@x>")
	m.want(250, "RCPT TO:<bob@x>")
	m.want(250, "RCPT TO:<dave@x>")
	m.send(strings.Repeat("x", 200))
	for range 2 {
		if rep := m.reply(); rep.Code != 552 {
			t.Fatalf("oversized message: %s", rep)
		}
	}
	m.want(250, "MAIL FROM:<s2@x>")
	m.want(250, "RCPT TO:<alice@x>")
	m.want(250, "RCPT TO:<dave@x>")
	m.send("small")
	for range 2 {
		if rep := m.reply(); rep.Code != 250 {
			t.Fatalf("delivery: %s", rep)
		}
	}
	received(t, "one", one, []string{"s2@x"}, "alice@x:small\r\n")
	received(t, "two", two, []string{"s2@x"}, "dave@x:small\r\n")
}

// A backend that dropped the cached connection between transactions (an
// idle timeout, a restart) is dialled again rather than the recipient
// deferred.
func TestProxyRedialsClosedBackend(t *testing.T) {
	m, one, _ := setupWith(t, fakeOptions{closeAfterData: true}, func(*lmtp.ProxyConfig) {})
	m.login()
	for i := range 3 {
		m.want(250, "MAIL FROM:<s@x>")
		m.want(250, "RCPT TO:<bob@x>")
		m.send("hi")
		if rep := m.reply(); rep.Code != 250 {
			t.Fatalf("transaction %d: %s", i, rep)
		}
	}
	received(t, "one", one, []string{"s@x", "s@x", "s@x"}, "bob@x:hi\r\n", "bob@x:hi\r\n", "bob@x:hi\r\n")
}

// BackendTimeout bounds each reply after a message, not all of them
// together.
func TestProxyBackendTimeoutPerReply(t *testing.T) {
	m, one, _ := setupWith(t, fakeOptions{replyDelay: 150 * time.Millisecond}, func(c *lmtp.ProxyConfig) {
		c.Limits.BackendTimeout = 400 * time.Millisecond
	})
	m.login()
	rcpts := []string{"alice@x", "bob@x", "alice+a@x", "bob+b@x"}
	m.want(250, "MAIL FROM:<s@x>")
	for _, r := range rcpts {
		m.want(250, "RCPT TO:<"+r+">")
	}
	m.send("slow")
	for _, r := range rcpts {
		if rep := m.reply(); rep.Code != 250 {
			t.Errorf("%s: %s", r, rep)
		}
	}
	received(t, "one", one, []string{"s@x"}, strings.Join(rcpts, ",")+":slow\r\n")
}
