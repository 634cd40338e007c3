package imap

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/store/mailstore"
)

// env is a backend: a store and a server on a loopback port.
type env struct {
	t     testing.TB
	dir   string
	store *mailstore.Store
	srv   *Server
	addr  string
	cfg   Config
}

const usersFile = "admin:{PLAIN}adminpw\nalice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\nproxy:{PLAIN}proxypw\n"

func testLogger(testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// startEnv opens the store in dir and serves it; mod may change the
// config. Everything is closed at the end of the test.
func startEnv(t testing.TB, dir string, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, dir: dir}
	users := filepath.Join(dir, "users")
	if _, err := os.Stat(users); err != nil {
		if err := os.WriteFile(users, []byte(usersFile), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	u, err := auth.LoadUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	policy := &auth.MailPolicy{Users: u, Admins: []string{"admin"}, ProxyServers: []string{"proxy"}}
	e.store, err = mailstore.Open(filepath.Join(dir, "mail"), mailstore.Options{Summarize: Summarize, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.cfg = Config{
		ServerName: "be1", Version: "test", Store: e.store, Login: policy.Login,
		FailedLoginPause: -1, Logger: testLogger(t),
	}
	if mod != nil {
		mod(&e.cfg)
	}
	e.srv, err = NewServer(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.srv.Serve(ln); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { e.close(); <-done })
	return e
}

// close stops the server and closes the store (idempotent).
func (e *env) close() {
	if e.srv == nil {
		return
	}
	_ = e.srv.Close()
	if err := e.store.Close(); err != nil {
		e.t.Errorf("store close: %v", err)
	}
	e.srv = nil
}

// client logs in with imapclient.
func (e *env) client(user, pass string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
	e.t.Helper()
	c, err := imapclient.DialInsecure(e.addr, &imapclient.Options{UnilateralDataHandler: h})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	if user != "" {
		if err := c.Login(user, pass).Wait(); err != nil {
			e.t.Fatalf("login %s: %v", user, err)
		}
	}
	return c
}

// raw is a line-level client for exact transcripts.
type raw struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func (e *env) raw() *raw {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	r := &raw{t: e.t, conn: c, br: bufio.NewReader(c)}
	r.line() // greeting
	return r
}

func (r *raw) send(s string) {
	r.t.Helper()
	_ = r.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(r.conn, s); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) line() string {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (so far %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// until reads lines up to the one starting with prefix and returns them
// all.
func (r *raw) until(prefix string) []string {
	r.t.Helper()
	var lines []string
	for {
		l := r.line()
		lines = append(lines, l)
		if strings.HasPrefix(l, prefix) {
			return lines
		}
	}
}

// cmd sends a command line and returns every line up to its tagged reply,
// failing unless that reply starts with want.
func (r *raw) cmd(tag, line, want string) []string {
	r.t.Helper()
	r.send(tag + " " + line + "\r\n")
	lines := r.until(tag + " ")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, tag+" "+want) {
		r.t.Fatalf("%s %s: got %q, want %s (all: %q)", tag, line, last, want, lines)
	}
	return lines
}

func testMessage(subject, body string) string {
	return fmt.Sprintf("From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: %s\r\n"+
		"Date: Mon, 02 Jan 2006 15:04:05 -0700\r\nMessage-ID: <%s@example.com>\r\n\r\n%s\r\n", subject, strings.ReplaceAll(subject, " ", "."), body)
}
