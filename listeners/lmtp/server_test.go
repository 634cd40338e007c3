package lmtp_test

import (
	"bufio"
	"bytes"
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
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/imap"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/listeners/pop3"
	"github.com/rookery/rookery/store/mailstore"

	"github.com/rookery/rookery/internal/cyrustest"
)

const srvUsers = "admin:{PLAIN}adminpw\nalice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\nproxy:{PLAIN}proxypw\n"

// srvEnv is a backend: a store in dir and an LMTP server on loopback;
// POP3 and IMAP servers on the same store start on demand.
type srvEnv struct {
	t      testing.TB
	dir    string
	policy *auth.MailPolicy
	store  *mailstore.Store
	srv    *lmtp.Server
	addr   string
	stops  []func()
}

func srvLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

func startSrv(t testing.TB, dir string, mod func(*lmtp.ServerConfig)) *srvEnv {
	t.Helper()
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(srvUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := auth.LoadUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	e := &srvEnv{t: t, dir: dir, policy: &auth.MailPolicy{Users: u, Admins: []string{"admin"}, ProxyServers: []string{"proxy"}}}
	e.store, err = mailstore.Open(filepath.Join(dir, "mail"), mailstore.Options{Summarize: imap.Summarize, Logger: srvLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := lmtp.ServerConfig{
		ServerName: "be1", Store: e.store, Login: e.policy.Login, Admins: e.policy.ProxyServers,
		FailedLoginPause: -1, Logger: srvLogger(),
	}
	if mod != nil {
		mod(&cfg)
	}
	e.srv, err = lmtp.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.addr = e.serve(e.srv.Serve, func() { _ = e.srv.Close() })
	t.Cleanup(e.stop)
	return e
}

// serve runs a server on a loopback port until stop.
func (e *srvEnv) serve(serve func(net.Listener) error, closeFn func()) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A server closed before it got to serve says ErrClosed.
		if err := serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
			e.t.Errorf("serve: %v", err)
		}
	}()
	e.stops = append(e.stops, func() { closeFn(); <-done })
	return ln.Addr().String()
}

// stop closes the servers, then the store (idempotent).
func (e *srvEnv) stop() {
	if e.store == nil {
		return
	}
	for _, s := range e.stops {
		s()
	}
	e.stops = nil
	if err := e.store.Close(); err != nil {
		e.t.Errorf("store close: %v", err)
	}
	e.store = nil
}

func (e *srvEnv) pop3() string {
	srv, err := pop3.NewServer(pop3.ServerConfig{ServerName: "be1", Store: e.store, Login: e.policy.Login, FailedLoginPause: -1})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.serve(srv.Serve, func() { _ = srv.Close() })
}

func (e *srvEnv) imap() string {
	srv, err := imap.NewServer(imap.Config{ServerName: "be1", Store: e.store, Login: e.policy.Login, FailedLoginPause: -1})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.serve(srv.Serve, func() { _ = srv.Close() })
}

func (e *srvEnv) create(name, acl string) mailstore.Mailbox {
	e.t.Helper()
	m, err := e.store.CreateMailbox(name, acl, "")
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

// bodies returns the messages of a mailbox.
func (e *srvEnv) bodies(name string) []string {
	e.t.Helper()
	mb, ok, err := e.store.Mailbox(name)
	if err != nil || !ok {
		e.t.Fatalf("mailbox %s: %v %v", name, ok, err)
	}
	var msgs []mailstore.Message
	if err := e.store.Messages(mb.ID, 1, ^uint32(0), func(m *mailstore.Message) bool {
		msgs = append(msgs, *m)
		return true
	}); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for i := range msgs {
		b := e.store.OpenBody(&msgs[i])
		data, err := io.ReadAll(b)
		b.Close()
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, string(data))
	}
	return out
}

// lmtpConn is an MTA's side of LMTP, on the package's codec.
type lmtpConn struct {
	t    testing.TB
	conn net.Conn
	r    *lmtp.Reader
	w    *lmtp.Writer
}

func (e *srvEnv) dial() *lmtpConn {
	e.t.Helper()
	conn, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &lmtpConn{t: e.t, conn: conn, r: lmtp.NewReader(bufio.NewReader(conn), 4096), w: lmtp.NewWriter(bufio.NewWriter(conn))}
	if rep := c.reply(); rep.Code != 220 {
		e.t.Fatalf("greeting %s", rep)
	}
	return c
}

func (c *lmtpConn) reply() lmtp.Reply {
	c.t.Helper()
	rep, err := c.r.ReadReply()
	if err != nil {
		c.t.Fatal(err)
	}
	return rep
}

func (c *lmtpConn) send(line string) {
	c.t.Helper()
	c.w.Line(line)
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
}

// want sends line and checks the reply's code and that its text holds
// text.
func (c *lmtpConn) want(code int, text, line string) lmtp.Reply {
	c.t.Helper()
	c.send(line)
	rep := c.reply()
	if rep.Code != code || !strings.Contains(rep.Text(), text) {
		c.t.Fatalf("%s: got %s, want %d %q", line, rep, code, text)
	}
	return rep
}

// data sends DATA and msg, and returns the n replies that follow.
func (c *lmtpConn) data(msg string, n int) []lmtp.Reply {
	c.t.Helper()
	c.want(354, "", "DATA")
	dw := c.w.DotWriter()
	if _, err := io.WriteString(dw, msg); err != nil {
		c.t.Fatal(err)
	}
	if err := dw.Close(); err != nil {
		c.t.Fatal(err)
	}
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
	reps := make([]lmtp.Reply, n)
	for i := range reps {
		reps[i] = c.reply()
	}
	return reps
}

func codes(reps []lmtp.Reply) string {
	var s []string
	for _, r := range reps {
		s = append(s, r.String())
	}
	return strings.Join(s, " | ")
}

const srvMsg = "From: sender@example.org\r\nSubject: hello\r\n\r\nHello,\r\n.a line with a dot\r\nbye\r\n"

// delivered strips the trace header a delivery adds, checking it.
func delivered(t *testing.T, stored string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(stored, "Return-Path: <")
	_, rest, ok2 := strings.Cut(rest, ">\r\nReceived: from mta.test ([127.0.0.1])\r\n\tby be1 (Rookery) with LMTP")
	_, rest, ok3 := strings.Cut(rest, ";\r\n\t")
	_, rest, ok4 := strings.Cut(rest, "\r\n")
	if !ok || !ok2 || !ok3 || !ok4 {
		t.Fatalf("no trace header: %.300q", stored)
	}
	return rest
}

func TestServerDelivery(t *testing.T) {
	dir := t.TempDir()
	e := startSrv(t, dir, nil)
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	e.create("user.bob", "bob\tlrswipkxtecda\t")
	e.create("user.bob.lists", "bob\tlrswipkxtecda\tanyone\tp\t")
	e.create("user.bob.private", "bob\tlrswipkxtecda\t")
	e.create("user.bob.denied", "bob\tlrswipkxtecda\tanyone\tp\t-anyone\tp\t")

	c := e.dial()
	lhlo := c.want(250, "", "LHLO mta.test")
	for _, ext := range []string{"PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "SIZE 104857600", "AUTH PLAIN"} {
		if !strings.Contains(strings.Join(lhlo.Lines, "\n"), ext) {
			t.Errorf("LHLO lacks %s: %q", ext, lhlo.Lines)
		}
	}
	c.want(503, "5.5.1", "RCPT TO:<alice@example.org>")
	c.want(503, "5.5.1", "DATA")
	c.want(250, "2.1.0", "MAIL FROM:<sender@example.org> BODY=8BITMIME SIZE=100")
	c.want(503, "5.5.1", "MAIL FROM:<x@example.org>")
	c.want(250, "2.1.5", "RCPT TO:<alice@example.org>")
	c.want(550, "5.1.1", "RCPT TO:<nobody@example.org>")
	c.want(250, "2.1.5", "RCPT TO:<Bob+lists@example.org>")   // to user.bob.lists
	c.want(250, "2.1.5", "RCPT TO:<bob+private@example.org>") // no p for anyone: INBOX
	c.want(250, "2.1.5", "RCPT TO:<bob+denied>")              // -anyone p: INBOX, a duplicate
	c.want(250, "2.1.5", "RCPT TO:<bob+nosuch@example.org>")  // INBOX again
	c.want(501, "5.5.4", "RCPT TO:alice")
	reps := c.data(srvMsg, 5)
	for i, r := range reps {
		if r.Code != 250 {
			t.Errorf("recipient %d: %s", i, r)
		}
	}
	// A second transaction on the same connection.
	c.want(250, "", "MAIL FROM:<>")
	c.want(250, "", "RCPT TO:<alice>")
	c.want(550, "5.1.1", "RCPT TO:<+lists@example.org>")
	if reps := c.data("Subject: second\r\n\r\nagain\r\n", 1); reps[0].Code != 250 {
		t.Errorf("second message: %s", codes(reps))
	}
	c.want(221, "", "QUIT")

	check := func() {
		t.Helper()
		got := e.bodies("user.alice")
		if len(got) != 2 || delivered(t, got[0]) != srvMsg || !strings.HasSuffix(got[1], "\r\nSubject: second\r\n\r\nagain\r\n") {
			t.Errorf("alice has %q", got)
		}
		if !strings.HasPrefix(got[1], "Return-Path: <>\r\n") {
			t.Errorf("null sender: %q", got[1])
		}
		if got := e.bodies("user.bob.lists"); len(got) != 1 || delivered(t, got[0]) != srvMsg {
			t.Errorf("bob.lists has %q", got)
		}
		// Three recipients resolved to bob's INBOX: one copy.
		if got := e.bodies("user.bob"); len(got) != 1 || delivered(t, got[0]) != srvMsg {
			t.Errorf("bob has %q", got)
		}
		for _, mb := range []string{"user.bob.private", "user.bob.denied"} {
			if got := e.bodies(mb); len(got) != 0 {
				t.Errorf("%s has %q", mb, got)
			}
		}
	}
	check()
	// Every 250 was on disk.
	e.stop()
	e = startSrv(t, dir, nil)
	check()
}

func TestServerAuth(t *testing.T) {
	e := startSrv(t, t.TempDir(), func(c *lmtp.ServerConfig) { c.RequireAuth = true })
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	plain := func(authz, authc, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + pass))
	}
	c := e.dial()
	c.want(503, "LHLO first", "MAIL FROM:<a@b>")
	c.want(500, "LHLO", "EHLO mta.test")
	c.want(250, "AUTH PLAIN", "LHLO mta.test")
	c.want(530, "5.7.0", "MAIL FROM:<a@b>")
	c.want(535, "5.7.8", "AUTH PLAIN "+plain("", "alice", "alicepw")) // not an admin
	c.want(535, "5.7.8", "AUTH PLAIN "+plain("", "admin", "wrong"))
	c.want(504, "", "AUTH LOGIN")
	c.want(334, "", "AUTH PLAIN")
	c.want(501, "cancelled", "*")
	c.want(235, "2.7.0", "AUTH PLAIN "+plain("", "admin", "adminpw"))
	c.want(503, "Already", "AUTH PLAIN "+plain("", "admin", "adminpw"))
	if lhlo := c.want(250, "", "LHLO mta.test"); strings.Contains(lhlo.Text(), "AUTH") {
		t.Errorf("AUTH offered after AUTH: %s", lhlo)
	}
	c.want(250, "", "MAIL FROM:<a@b>")
	c.want(250, "", "RCPT TO:<alice>")
	if reps := c.data(srvMsg, 1); reps[0].Code != 250 {
		t.Fatal(reps)
	}
	got := e.bodies("user.alice")
	if len(got) != 1 || !strings.Contains(got[0], "with LMTPA;") {
		t.Errorf("authenticated delivery: %q", got)
	}

	// A proxyserver (a frontend) may deliver, without an authorization
	// id or with one; other users may not even with the proxy's help.
	for _, ir := range []string{plain("", "proxy", "proxypw"), plain("alice", "proxy", "proxypw")} {
		c = e.dial()
		c.want(250, "", "LHLO fe.test")
		c.want(334, "", "AUTH PLAIN")
		c.want(235, "", ir)
		c.want(250, "", "MAIL FROM:<a@b>")
	}
	c = e.dial()
	c.want(250, "", "LHLO fe.test")
	c.want(535, "", "AUTH PLAIN "+plain("proxy", "alice", "alicepw"))
}

func TestServerLimits(t *testing.T) {
	e := startSrv(t, t.TempDir(), func(c *lmtp.ServerConfig) {
		c.MaxMessageSize = 64 << 10
		c.MaxRecipients = 2
		c.MaxLine = 200
	})
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	e.create("user.bob", "bob\tlrswipkxtecda\t")
	if err := e.store.SetQuota("user.bob", 1, false); err != nil { // 1 KiB
		t.Fatal(err)
	}
	c := e.dial()
	c.want(250, "SIZE 65536", "LHLO mta.test")
	c.want(500, "5.5.2", "NOOP "+strings.Repeat("x", 300))
	c.want(250, "", "NOOP") // the session goes on after a long line
	c.want(552, "5.3.4", "MAIL FROM:<a@b> SIZE=70000")
	c.want(555, "5.5.4", "MAIL FROM:<a@b> FOO=BAR")
	c.want(250, "", "MAIL FROM:<a@b>")
	c.want(250, "", "RCPT TO:<alice>")
	c.want(250, "", "RCPT TO:<bob>")
	c.want(452, "4.5.3", "RCPT TO:<alice>")
	big := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("y", 98)+"\r\n", 700)
	for i, r := range c.data(big, 2) {
		if r.Code != 552 || !strings.Contains(r.Text(), "5.3.4") {
			t.Errorf("oversized message, recipient %d: %s", i, r)
		}
	}
	// Over quota: refused at DATA (the size was not announced), then
	// at RCPT once the quota is full.
	c.want(250, "", "MAIL FROM:<a@b>")
	c.want(250, "", "RCPT TO:<alice>")
	c.want(250, "", "RCPT TO:<bob>")
	mid := "Subject: mid\r\n\r\n" + strings.Repeat("z", 2000) + "\r\n"
	if reps := c.data(mid, 2); reps[0].Code != 250 || reps[1].Code != 452 || !strings.Contains(reps[1].Text(), "4.2.2") {
		t.Errorf("over quota at DATA: %s", codes(reps))
	}
	c.want(250, "", "RSET")
	c.want(250, "", "MAIL FROM:<a@b> SIZE=500")
	c.want(250, "", "RCPT TO:<bob>")
	if reps := c.data("Subject: small\r\n\r\nsmall\r\n", 1); reps[0].Code != 250 {
		t.Errorf("small message to bob: %s", codes(reps))
	}
	c.want(250, "", "MAIL FROM:<a@b> SIZE=2000")
	c.want(452, "4.2.2", "RCPT TO:<bob>")
	c.want(221, "", "QUIT")

	if got := e.bodies("user.alice"); len(got) != 1 || !strings.Contains(got[0], "Subject: mid") {
		t.Errorf("alice has %d messages", len(got))
	}
	if got := e.bodies("user.bob"); len(got) != 1 || !strings.Contains(got[0], "Subject: small") {
		t.Errorf("bob has %q", got)
	}
}

func TestServerIdleTimeout(t *testing.T) {
	e := startSrv(t, t.TempDir(), func(c *lmtp.ServerConfig) { c.IdleTimeout = 300 * time.Millisecond })
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	c := e.dial()
	c.want(250, "", "LHLO mta.test")
	c.want(250, "", "MAIL FROM:<a@b>")
	c.want(250, "", "RCPT TO:<alice>")
	c.want(354, "", "DATA")
	c.send("Subject: never finished")
	if rep := c.reply(); rep.Code != 421 || !strings.Contains(rep.Text(), "4.4.2") {
		t.Errorf("idle within DATA: %s", rep)
	}
	if _, err := c.r.ReadLine(); err != io.EOF {
		t.Errorf("after the timeout: %v, want EOF", err)
	}
	if got := e.bodies("user.alice"); len(got) != 0 {
		t.Errorf("a message that never ended was stored: %q", got)
	}
}

func TestServerCloseMidMessage(t *testing.T) {
	e := startSrv(t, t.TempDir(), nil)
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	c := e.dial()
	c.want(250, "", "LHLO mta.test")
	c.want(250, "", "MAIL FROM:<a@b>")
	c.want(250, "", "RCPT TO:<alice>")
	c.want(354, "", "DATA")
	c.send("Subject: cut short\r\n\r\n" + strings.Repeat("w", 300<<10))
	closed := make(chan struct{})
	go func() { _ = e.srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a session in DATA")
	}
	// The connection ends (with a reset: the server leaves the rest of
	// the message unread).
	if _, err := io.ReadAll(c.conn); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("client after Close: %v", err)
	}
	if got := e.bodies("user.alice"); len(got) != 0 {
		t.Errorf("a message cut short by Close was stored")
	}
}

// TestServerIdleWokenByDelivery has an IMAP client in IDLE on the INBOX
// while LMTP delivers to it.
func TestServerIdleWokenByDelivery(t *testing.T) {
	e := startSrv(t, t.TempDir(), nil)
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	conn, err := net.DialTimeout("tcp", e.imap(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	expect := func(prefix string) {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", prefix, err)
			}
			if strings.HasPrefix(line, prefix) {
				return
			}
			if !strings.HasPrefix(line, "* ") {
				t.Fatalf("waiting for %q: got %q", prefix, line)
			}
		}
	}
	expect("* OK")
	fmt.Fprintf(conn, "a LOGIN alice alicepw\r\n")
	expect("a OK")
	fmt.Fprintf(conn, "b SELECT INBOX\r\n")
	expect("b OK")
	fmt.Fprintf(conn, "c IDLE\r\n")
	expect("+ ")

	c := e.dial()
	c.want(250, "", "LHLO mta.test")
	c.want(250, "", "MAIL FROM:<a@b>")
	c.want(250, "", "RCPT TO:<alice@example.org>")
	if reps := c.data(srvMsg, 1); reps[0].Code != 250 {
		t.Fatal(codes(reps))
	}
	expect("* 1 EXISTS")
	fmt.Fprintf(conn, "DONE\r\n")
	expect("c OK")
	fmt.Fprintf(conn, "d FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n")
	expect("Subject: hello")
}

// TestServerThenPOP3 delivers with Python's smtplib.LMTP, a client no
// one here wrote, and reads the messages back with POP3.
func TestServerThenPOP3(t *testing.T) {
	cyrustest.RequireTool(t, "python3", "python3")
	e := startSrv(t, t.TempDir(), nil)
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	e.create("user.bob", "bob\tlrswipkxtecda\t")
	script := `
import json, poplib, smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
out = {}
s = smtplib.LMTP(host, int(port), local_hostname="mta.test", timeout=10)
msg = b"From: sender@example.org\r\nSubject: py\r\n\r\nhi from python\r\n..dots\r\n"
# One accepted recipient: sendmail reads its one reply.
out["refused"] = {k: [v[0], v[1].decode()] for k, v in s.sendmail("sender@example.org", ["alice@example.org", "nobody@example.org"], msg).items()}
# Two accepted: one reply each after the data.
s.mail("sender@example.org")
out["rcpt"] = [s.rcpt("alice@example.org")[0], s.rcpt("bob+x@example.org")[0]]
out["data"] = [s.data(msg)[0], s.getreply()[0]]
s.quit()
host, port = sys.argv[2].rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=10)
p.user("alice")
p.pass_("alicepw")
out["stat"] = list(p.stat())
out["retr"] = [l.decode() for l in p.retr(2)[1]]
p.dele(1)
p.quit()
print(json.dumps(out))
`
	cmd := exec.Command("python3", "-c", script, e.addr, e.pop3())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, stderr.String())
	}
	var out struct {
		Refused map[string][]any
		Rcpt    []int
		Data    []int
		Stat    []int
		Retr    []string
	}
	if err := json.Unmarshal(outb, &out); err != nil {
		t.Fatalf("%v: %s", err, outb)
	}
	if r := out.Refused["nobody@example.org"]; len(out.Refused) != 1 || len(r) != 2 || r[0] != 550.0 || !strings.Contains(r[1].(string), "5.1.1") {
		t.Errorf("refused %v", out.Refused)
	}
	if fmt.Sprint(out.Rcpt) != "[250 250]" || fmt.Sprint(out.Data) != "[250 250]" {
		t.Errorf("rcpt %v data %v", out.Rcpt, out.Data)
	}
	if len(out.Stat) != 2 || out.Stat[0] != 2 {
		t.Errorf("stat %v", out.Stat)
	}
	retr := strings.Join(out.Retr, "\n")
	if !strings.HasPrefix(retr, "Return-Path: <sender@example.org>\n") || !strings.HasSuffix(retr, "\nSubject: py\n\nhi from python\n..dots") {
		t.Errorf("retr %.500q", retr)
	}
	if got := e.bodies("user.alice"); len(got) != 1 {
		t.Errorf("alice has %d messages after DELE and QUIT", len(got))
	}
	if got := e.bodies("user.bob"); len(got) != 1 {
		t.Errorf("bob has %d messages", len(got))
	}
}

func TestServerLargeMessage(t *testing.T) {
	e := startSrv(t, t.TempDir(), nil)
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	e.create("user.bob", "bob\tlrswipkxtecda\t")
	var b strings.Builder
	b.WriteString("Subject: large\r\n\r\n")
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "%08d %s\r\n", i, strings.Repeat("m", 90))
	}
	msg := b.String()
	c := e.dial()
	c.want(250, "", "LHLO mta.test")
	c.want(250, "", "MAIL FROM:<a@b>")
	c.want(250, "", "RCPT TO:<alice>")
	c.want(250, "", "RCPT TO:<bob>")
	if reps := c.data(msg, 2); reps[0].Code != 250 || reps[1].Code != 250 {
		t.Fatal(codes(reps))
	}
	for _, mb := range []string{"user.alice", "user.bob"} {
		if got := e.bodies(mb); len(got) != 1 || delivered(t, got[0]) != msg {
			t.Errorf("%s: message differs", mb)
		}
	}
}

func benchDeliver(b *testing.B, size int) {
	e := startSrv(b, b.TempDir(), nil)
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	var m strings.Builder
	m.WriteString("Subject: bench\r\n\r\n")
	for m.Len() < size {
		m.WriteString(strings.Repeat("abcdefghij", 7) + "\r\n")
	}
	msg := m.String()
	c := e.dial()
	c.want(250, "", "LHLO mta.test")
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for range b.N {
		_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
		c.want(250, "", "MAIL FROM:<a@b>")
		c.want(250, "", "RCPT TO:<alice>")
		if reps := c.data(msg, 1); reps[0].Code != 250 {
			b.Fatal(codes(reps))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkServerDeliver10KiB(b *testing.B) { benchDeliver(b, 10<<10) }
func BenchmarkServerDeliver1MiB(b *testing.B)  { benchDeliver(b, 1<<20) }
