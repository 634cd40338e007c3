package lmtp_test

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/store"
)

// fakeLMTP is a backend that knows the users in its list, requires the
// proxy's AUTH and records the messages it receives.
type fakeLMTP struct {
	ln    net.Listener
	users map[string]bool
	mu    sync.Mutex
	got   []string // "rcpt1,rcpt2:message"
}

func startFakeLMTP(t *testing.T, users ...string) *fakeLMTP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLMTP{ln: ln, users: map[string]bool{}}
	for _, u := range users {
		f.users[u] = true
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); f.serve(c) }()
		}
	}()
	return f
}

func (f *fakeLMTP) serve(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	r := lmtp.NewReader(bufio.NewReader(c), 1000)
	w := lmtp.NewWriter(bufio.NewWriter(c))
	w.Reply(220, "fake ready")
	w.Flush()
	authed := false
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
			rcpts = nil
			w.Reply(250, "2.0.0 ok")
		case "MAIL":
			if !authed {
				w.Reply(530, "5.7.0 auth first")
				break
			}
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
			f.mu.Unlock()
			for range rcpts {
				w.Reply(250, "2.1.5 delivered")
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

type mta struct {
	t *testing.T
	r *lmtp.Reader
	w *lmtp.Writer
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
	one := startFakeLMTP(t, "alice", "bob")
	two := startFakeLMTP(t, "dave")
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
	p, err := lmtp.NewProxy(lmtp.ProxyConfig{
		ServerName: "fe.test",
		DB:         db,
		Resolve: func(server string) (string, string, string, bool) {
			a, ok := addrs[server]
			return a, a, a, ok
		},
		Users:  users,
		Admins: []string{"admin"},
		Proxy:  auth.ProxyCredentials{Authname: "proxy", Password: "pw"},
		Limits: limits,
	})
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
	m := &mta{t: t, r: lmtp.NewReader(bufio.NewReader(conn), 1000), w: lmtp.NewWriter(bufio.NewWriter(conn))}
	if rep := m.reply(); rep.Code != 220 {
		t.Fatalf("greeting %s", rep)
	}
	return m, one, two
}

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
