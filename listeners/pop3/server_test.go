package pop3_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/pop3"
	"github.com/rookery/rookery/store/mailstore"

	"github.com/rookery/rookery/internal/cyrustest"
)

const srvUsers = "admin:{PLAIN}adminpw\nalice:{PLAIN}alice pw\nbob:{PLAIN}bobpw\nproxy:{PLAIN}proxypw\n"

// srvEnv is a backend: a store in dir and a POP3 server on loopback.
type srvEnv struct {
	t     *testing.T
	dir   string
	store *mailstore.Store
	srv   *pop3.Server
	addr  string
	done  chan struct{}
}

func srvLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func startSrv(t *testing.T, dir string, mod func(*pop3.ServerConfig)) *srvEnv {
	t.Helper()
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(srvUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := auth.LoadUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	policy := &auth.MailPolicy{Users: u, Admins: []string{"admin"}, ProxyServers: []string{"proxy"}}
	e := &srvEnv{t: t, dir: dir, done: make(chan struct{})}
	e.store, err = mailstore.Open(filepath.Join(dir, "mail"), mailstore.Options{Logger: srvLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := pop3.ServerConfig{ServerName: "be1", Store: e.store, Login: policy.Login, FailedLoginPause: -1, Logger: srvLogger()}
	if mod != nil {
		mod(&cfg)
	}
	e.srv, err = pop3.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	go func() {
		defer close(e.done)
		// A server closed before it got to serve says ErrClosed.
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(e.stop)
	return e
}

// stop closes the server and the store (idempotent).
func (e *srvEnv) stop() {
	if e.srv == nil {
		return
	}
	_ = e.srv.Close()
	<-e.done
	if err := e.store.Close(); err != nil {
		e.t.Errorf("store close: %v", err)
	}
	e.srv = nil
}

func (e *srvEnv) inbox(user string) mailstore.Mailbox {
	e.t.Helper()
	m, ok, err := e.store.Mailbox("user." + user)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ok {
		m, err = e.store.CreateMailbox("user."+user, user+"\tlrswipkxtecda\t", "")
		if err != nil {
			e.t.Fatal(err)
		}
	}
	return m
}

func (e *srvEnv) deliver(user string, msgs ...string) {
	e.t.Helper()
	e.inbox(user)
	for _, m := range msgs {
		if _, err := e.store.Deliver(context.Background(), "user."+user, nil, time.Now(), strings.NewReader(m), 0); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *srvEnv) uids(user string) []uint32 {
	e.t.Helper()
	var uids []uint32
	if err := e.store.Messages(e.inbox(user).ID, 1, ^uint32(0), func(m *mailstore.Message) bool {
		uids = append(uids, m.UID)
		return true
	}); err != nil {
		e.t.Fatal(err)
	}
	return uids
}

// popClient speaks POP3 with the package's codec.
type popClient struct {
	t    *testing.T
	conn net.Conn
	r    *pop3.Reader
	w    *pop3.Writer
}

func (e *srvEnv) dial() *popClient {
	e.t.Helper()
	conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	c := &popClient{t: e.t, conn: conn, r: pop3.NewReader(bufio.NewReader(conn), 1<<20), w: pop3.NewWriter(bufio.NewWriter(conn))}
	if rep := c.reply(); !rep.OK || !strings.Contains(rep.Text, "be1") {
		e.t.Fatalf("greeting %+v", rep)
	}
	return c
}

func (c *popClient) reply() pop3.Reply {
	c.t.Helper()
	rep, err := c.r.ReadReply()
	if err != nil {
		c.t.Fatal(err)
	}
	return rep
}

func (c *popClient) cmd(line string) pop3.Reply {
	c.t.Helper()
	c.w.Line(line)
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
	return c.reply()
}

// ok sends line and wants +OK.
func (c *popClient) ok(line string) string {
	c.t.Helper()
	rep := c.cmd(line)
	if !rep.OK {
		c.t.Fatalf("%s: -ERR %s", line, rep.Text)
	}
	return rep.Text
}

// fail sends line and wants -ERR holding want.
func (c *popClient) fail(line, want string) {
	c.t.Helper()
	rep := c.cmd(line)
	if rep.OK || !strings.Contains(rep.Text, want) {
		c.t.Fatalf("%s: got %+v, want -ERR with %q", line, rep, want)
	}
}

// multi sends line, wants +OK and returns the multi-line body.
func (c *popClient) multi(line string) string {
	c.t.Helper()
	c.ok(line)
	b, err := io.ReadAll(c.r.DotReader())
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b)
}

func (c *popClient) login(user, pass string) {
	c.t.Helper()
	c.ok("USER " + user)
	c.ok("PASS " + pass)
}

func srvMessage(subject string, bodyLines ...string) string {
	return "From: a@example.org\r\nSubject: " + subject + "\r\n\r\n" + strings.Join(bodyLines, "\r\n") + "\r\n"
}

func TestServerSession(t *testing.T) {
	dir := t.TempDir()
	e := startSrv(t, dir, nil)
	long := strings.Repeat("x", 10000)
	big := srvMessage("big", strings.Repeat("0123456789abcdef\r\n", 20000)+".dot line")
	msgs := []string{
		srvMessage("one", "line 1", ".starts with a dot", long, "line 4"),
		srvMessage("two", "hello"),
		big,
	}
	e.deliver("alice", msgs...)
	mb := e.inbox("alice")

	c := e.dial()
	caps := c.multi("CAPA")
	for _, want := range []string{"TOP", "UIDL", "USER", "SASL PLAIN", "RESP-CODES", "PIPELINING"} {
		if !strings.Contains(caps, want+"\r\n") {
			t.Errorf("CAPA lacks %s: %q", want, caps)
		}
	}
	c.fail("STAT", "Not logged in")
	c.fail("PASS x", "USER first")
	c.login("alice", "alice pw") // a password with a space
	if strings.Contains(c.multi("CAPA"), "USER") {
		t.Error("CAPA offers USER after login")
	}
	total := len(msgs[0]) + len(msgs[1]) + len(msgs[2])
	if got, want := c.ok("STAT"), fmt.Sprintf("3 %d", total); got != want {
		t.Errorf("STAT %q, want %q", got, want)
	}
	wantList := fmt.Sprintf("1 %d\r\n2 %d\r\n3 %d\r\n", len(msgs[0]), len(msgs[1]), len(msgs[2]))
	if got := c.multi("LIST"); got != wantList {
		t.Errorf("LIST %q, want %q", got, wantList)
	}
	if got, want := c.ok("LIST 2"), fmt.Sprintf("2 %d", len(msgs[1])); got != want {
		t.Errorf("LIST 2: %q, want %q", got, want)
	}
	c.fail("LIST 4", "No such message")
	c.fail("LIST x", "No such message")
	wantUIDL := fmt.Sprintf("1 %d.1\r\n2 %d.2\r\n3 %d.3\r\n", mb.UIDValidity, mb.UIDValidity, mb.UIDValidity)
	if got := c.multi("UIDL"); got != wantUIDL {
		t.Errorf("UIDL %q, want %q", got, wantUIDL)
	}
	if got, want := c.multi("TOP 1 0"), "From: a@example.org\r\nSubject: one\r\n\r\n"; got != want {
		t.Errorf("TOP 1 0: %q, want %q", got, want)
	}
	if got, want := c.multi("TOP 1 3"), "From: a@example.org\r\nSubject: one\r\n\r\nline 1\r\n.starts with a dot\r\n"+long+"\r\n"; got != want {
		t.Errorf("TOP 1 3: %q", got)
	}
	if got := c.multi("TOP 1 100"); got != msgs[0] {
		t.Errorf("TOP 1 100: %q", got)
	}
	c.fail("TOP 1", "arguments")
	if got := c.multi("RETR 3"); got != big {
		t.Errorf("RETR 3: %d bytes, want %d", len(got), len(big))
	}
	if got := c.multi("RETR 1"); got != msgs[0] {
		t.Errorf("RETR 1: %q", got)
	}
	c.ok("DELE 2")
	c.fail("DELE 2", "already deleted")
	c.fail("RETR 2", "already deleted")
	if got, want := c.ok("STAT"), fmt.Sprintf("2 %d", len(msgs[0])+len(msgs[2])); got != want {
		t.Errorf("STAT after DELE %q, want %q", got, want)
	}
	if got := c.multi("UIDL"); strings.Contains(got, "2 ") {
		t.Errorf("UIDL lists a deleted message: %q", got)
	}
	c.ok("RSET")
	c.ok("STAT")
	c.ok("DELE 1")
	c.ok("DELE 2")
	c.ok("NOOP")
	c.fail("USER bob", "Already logged in")
	if text := c.ok("QUIT"); !strings.Contains(text, "1 messages left") {
		t.Errorf("QUIT: %q", text)
	}
	if got := e.uids("alice"); !slices.Equal(got, []uint32{3}) {
		t.Fatalf("after QUIT the INBOX holds %v, want [3]", got)
	}
	m, _, err := e.store.Message(mb.ID, 3)
	if err != nil || !slices.Contains(m.Flags, `\Seen`) {
		t.Errorf("retrieved message 3 has flags %v (%v), want \\Seen", m.Flags, err)
	}

	// Everything QUIT did survives a restart.
	e.stop()
	e = startSrv(t, dir, nil)
	c = e.dial()
	c.login("alice", "alice pw")
	if got, want := c.multi("UIDL"), fmt.Sprintf("1 %d.3\r\n", mb.UIDValidity); got != want {
		t.Errorf("UIDL after restart %q, want %q", got, want)
	}
	if got := c.multi("RETR 1"); got != big {
		t.Errorf("RETR after restart: %d bytes", len(got))
	}
	c.ok("QUIT")
}

func TestServerNoQuitNoChange(t *testing.T) {
	e := startSrv(t, t.TempDir(), func(c *pop3.ServerConfig) { c.IdleTimeout = 500 * time.Millisecond })
	e.deliver("alice", srvMessage("one"), srvMessage("two"))
	c := e.dial()
	c.login("alice", "alice pw")
	c.ok("DELE 1")

	// A second session cannot have the maildrop meanwhile.
	c2 := e.dial()
	c2.ok("USER alice")
	c2.fail("PASS alice pw", "[IN-USE]")
	c2.conn.Close()

	// The first one times out: nothing is deleted and, once it is gone,
	// the maildrop is free again.
	rep := c.reply()
	if rep.OK || !strings.Contains(rep.Text, "Idle timeout") {
		t.Errorf("idle: %+v", rep)
	}
	if _, err := c.r.ReadLine(); err != io.EOF {
		t.Errorf("after the timeout: %v, want EOF", err)
	}
	c3 := e.dial()
	c3.login("alice", "alice pw")
	if got := c3.ok("STAT"); !strings.HasPrefix(got, "2 ") {
		t.Errorf("STAT %q after an unfinished session", got)
	}

	// A client that hangs up without QUIT changes nothing either.
	c3.ok("DELE 2")
	c3.conn.Close()
	c4 := e.dial()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c4.ok("USER alice")
		rep := c4.cmd("PASS alice pw")
		if rep.OK {
			break
		}
		if !strings.Contains(rep.Text, "[IN-USE]") || time.Now().After(deadline) {
			t.Fatalf("login after a hang-up: %+v", rep)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := c4.ok("STAT"); !strings.HasPrefix(got, "2 ") {
		t.Errorf("STAT %q after a hang-up", got)
	}
}

func TestServerAuth(t *testing.T) {
	e := startSrv(t, t.TempDir(), nil)
	e.deliver("alice", srvMessage("for alice"))
	e.deliver("bob", srvMessage("for bob"), srvMessage("for bob"))
	plain := func(authz, authc, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + pass))
	}

	c := e.dial()
	c.fail("AUTH PLAIN "+plain("", "alice", "wrong"), "[AUTH]")
	c.fail("AUTH CRAM-MD5", "Unsupported")
	if got := c.multi("AUTH"); got != "PLAIN\r\n" {
		t.Errorf("AUTH list %q", got)
	}
	c.ok("AUTH PLAIN " + plain("", "alice", "alice pw"))
	if got := c.ok("STAT"); !strings.HasPrefix(got, "1 ") {
		t.Errorf("alice STAT %q", got)
	}

	// A proxyserver acts for a user, as a frontend's pop3 proxy does.
	c = e.dial()
	c.ok("AUTH PLAIN " + plain("bob", "proxy", "proxypw"))
	if got := c.ok("STAT"); !strings.HasPrefix(got, "2 ") {
		t.Errorf("proxy for bob: STAT %q", got)
	}
	c.ok("QUIT")

	// Nobody else may.
	c = e.dial()
	c.fail("AUTH PLAIN "+plain("bob", "alice", "alice pw"), "[AUTH]")
	c.fail("AUTH PLAIN "+plain("bob", "admin", "adminpw"), "[AUTH]")
	c.fail("AUTH PLAIN !!!", "Invalid")

	// The response may come after a continuation, and be cancelled.
	c.w.Line("AUTH PLAIN")
	_ = c.w.Flush()
	if line, err := c.r.ReadLine(); err != nil || line != "+ " {
		t.Fatalf("continuation %q %v", line, err)
	}
	c.fail("*", "cancelled")
	c.w.Line("AUTH PLAIN")
	_ = c.w.Flush()
	if line, err := c.r.ReadLine(); err != nil || line != "+ " {
		t.Fatalf("continuation %q %v", line, err)
	}
	c.ok(plain("", "bob", "bobpw"))
	if got := c.ok("STAT"); !strings.HasPrefix(got, "2 ") {
		t.Errorf("bob STAT %q", got)
	}

	// A user without an INBOX here gets a clear refusal.
	c = e.dial()
	c.ok("USER admin")
	c.fail("PASS adminpw", "[SYS/PERM]")
}

func TestServerLimits(t *testing.T) {
	e := startSrv(t, t.TempDir(), func(c *pop3.ServerConfig) { c.MaxConns = 2; c.MaxLine = 100 })
	e.deliver("alice", srvMessage("one"))
	c := e.dial()
	c.fail("USER "+strings.Repeat("a", 500), "Line too long")
	c.login("alice", "alice pw") // the session goes on after a long line
	// Pipelined commands are answered in order.
	c.w.Line("STAT")
	c.w.Line("NOOP")
	c.w.Line("LIST 1")
	if err := c.w.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1 ", "", "1 "} {
		if rep := c.reply(); !rep.OK || !strings.HasPrefix(rep.Text, want) {
			t.Errorf("pipelined reply %+v, want +OK %q", rep, want)
		}
	}
	_ = e.dial()
	conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(conn).ReadString('\n')
	if !strings.HasPrefix(line, "-ERR [SYS/TEMP]") {
		t.Errorf("third connection got %q", line)
	}
}

// TestServerPoplib runs Python's poplib, a client no one here wrote,
// through a session.
func TestServerPoplib(t *testing.T) {
	cyrustest.RequireTool(t, "python3", "python3")
	e := startSrv(t, t.TempDir(), nil)
	msgs := []string{srvMessage("one", "first", "..two dots"), srvMessage("two", "second")}
	e.deliver("alice", msgs...)
	mb := e.inbox("alice")
	script := `
import json, poplib, sys
host, port = sys.argv[1].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=10)
out = {"welcome": p.getwelcome().decode()}
out["capa"] = sorted(p.capa().keys())
p.user("alice")
p.pass_("alice pw")
out["stat"] = list(p.stat())
out["list"] = [l.decode() for l in p.list()[1]]
out["uidl"] = [l.decode() for l in p.uidl()[1]]
out["top"] = [l.decode() for l in p.top(1, 1)[1]]
out["retr"] = [l.decode() for l in p.retr(1)[1]]
p.dele(2)
out["quit"] = p.quit().decode()
print(json.dumps(out))
`
	cmd := exec.Command("python3", "-c", script, e.addr)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("poplib: %v\n%s", err, stderr.String())
	}
	var out struct {
		Welcome, Quit   string
		Capa            []string
		Stat            []int
		List, UIDL, Top []string
		Retr            []string
	}
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("%v: %s", err, outb)
	}
	if !strings.HasPrefix(out.Welcome, "+OK be1") {
		t.Errorf("welcome %q", out.Welcome)
	}
	for _, c := range []string{"TOP", "UIDL", "USER", "SASL"} {
		if !slices.Contains(out.Capa, c) {
			t.Errorf("capa %v lacks %s", out.Capa, c)
		}
	}
	if !slices.Equal(out.Stat, []int{2, len(msgs[0]) + len(msgs[1])}) {
		t.Errorf("stat %v", out.Stat)
	}
	if want := []string{fmt.Sprintf("1 %d", len(msgs[0])), fmt.Sprintf("2 %d", len(msgs[1]))}; !slices.Equal(out.List, want) {
		t.Errorf("list %v, want %v", out.List, want)
	}
	if want := []string{fmt.Sprintf("1 %d.1", mb.UIDValidity), fmt.Sprintf("2 %d.2", mb.UIDValidity)}; !slices.Equal(out.UIDL, want) {
		t.Errorf("uidl %v, want %v", out.UIDL, want)
	}
	if want := []string{"From: a@example.org", "Subject: one", "", "first"}; !slices.Equal(out.Top, want) {
		t.Errorf("top %q, want %q", out.Top, want)
	}
	if want := strings.Split(strings.TrimSuffix(msgs[0], "\r\n"), "\r\n"); !slices.Equal(out.Retr, want) {
		t.Errorf("retr %q, want %q", out.Retr, want)
	}
	if !strings.HasPrefix(out.Quit, "+OK") {
		t.Errorf("quit %q", out.Quit)
	}
	if got := e.uids("alice"); !slices.Equal(got, []uint32{1}) {
		t.Errorf("after poplib's QUIT the INBOX holds %v, want [1]", got)
	}
}

// TestServerConcurrentExpunge has an IMAP-side expunge remove a message
// from under a POP3 session's snapshot.
func TestServerConcurrentExpunge(t *testing.T) {
	e := startSrv(t, t.TempDir(), nil)
	e.deliver("alice", srvMessage("one"), srvMessage("two"))
	c := e.dial()
	c.login("alice", "alice pw")
	if _, err := e.store.Expunge(e.inbox("alice").ID, []uint32{1}); err != nil {
		t.Fatal(err)
	}
	c.fail("RETR 1", "removed by another session")
	c.fail("TOP 1 0", "removed by another session")
	if got := c.multi("RETR 2"); got != srvMessage("two") {
		t.Errorf("RETR 2: %q", got)
	}
	c.ok("DELE 1")
	c.ok("DELE 2")
	c.ok("QUIT")
	if got := e.uids("alice"); len(got) != 0 {
		t.Errorf("INBOX holds %v", got)
	}
}
