package pop3_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/testserve"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/pop3"
	"github.com/rookery/rookery/store"
)

// startFakePOP3 is a backend that takes the proxy's AUTH PLAIN for any
// user, answers STAT and RETR 1, and sends each authorization id to
// logins.
func startFakePOP3(t *testing.T, logins chan<- string) string {
	ln := testserve.Serve(t, "127.0.0.1:0", func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		r := pop3.NewReader(bufio.NewReader(c), 1000)
		w := pop3.NewWriter(bufio.NewWriter(c))
		w.OK("fake ready")
		w.Flush()
		for {
			cmd, err := r.ReadCommand()
			if err != nil {
				return
			}
			switch cmd.Name {
			case "AUTH":
				raw, _ := base64.StdEncoding.DecodeString(cmd.Args[1])
				p := strings.Split(string(raw), "\x00")
				if p[1] != "proxy" || p[2] != "pw" {
					w.Err("[AUTH] no")
					break
				}
				logins <- p[0]
				w.OK("Mailbox locked and ready")
			case "STAT":
				w.OK("1 12")
			case "RETR":
				if !retr(w, cmd.Args) {
					return
				}
			case "QUIT":
				w.OK("bye")
				w.Flush()
				return
			default:
				w.Err("what")
			}
			w.Flush()
		}
	})
	return ln.Addr().String()
}

// Messages the fake backend serves: 1 is small, 2 trickles in over about
// a second, 3 is bigger than the socket buffers between backend and
// client, and 4 never ends.
const (
	slowLines = 10
	slowGap   = 100 * time.Millisecond
	bigLines  = 16 << 10
	bigLine   = 1000 // bytes, with CRLF
)

// retr sends message args[0]; false means the connection failed.
func retr(w *pop3.Writer, args []string) bool {
	if len(args) != 1 {
		w.Err("what")
		return true
	}
	line := strings.Repeat("x", bigLine-2) + "\r\n"
	switch args[0] {
	case "1":
		w.OK("12 octets")
		dw := w.DotWriter()
		io.WriteString(dw, ".hi\r\nthere\r\n")
		dw.Close()
	case "2":
		w.OK("slow")
		for i := range slowLines {
			w.Line(fmt.Sprintf("line %d", i))
			if w.Flush() != nil {
				return false
			}
			time.Sleep(slowGap) // the slow link being modelled
		}
		w.Line(".")
	case "3":
		w.OK("big")
		for range bigLines {
			w.Line(line[:bigLine-2])
		}
		w.Line(".")
	case "4":
		w.OK("endless")
		for {
			w.Line(line[:bigLine-2])
			if w.Flush() != nil {
				return false
			}
		}
	default:
		w.Err("no such message")
	}
	return true
}

type client struct {
	t    *testing.T
	conn *net.TCPConn
	r    *pop3.Reader
	w    *pop3.Writer
}

func (c *client) cmd(line string) pop3.Reply {
	c.t.Helper()
	c.w.Line(line)
	c.w.Flush()
	rep, err := c.r.ReadReply()
	if err != nil {
		c.t.Fatal(err)
	}
	return rep
}

func setup(t *testing.T, logins chan<- string, limits pop3.Limits) (*client, *pop3.Proxy) {
	be := startFakePOP3(t, logins)
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var b store.Batch
	for _, e := range []store.Entry{
		{Name: "user.alice", Kind: store.Active, Location: "one!p"},
		{Name: "user.erin", Kind: store.Active, Location: "down!p"},
	} {
		b.Changes = append(b.Changes, store.Change{Name: e.Name, New: &e})
	}
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "users")
	os.WriteFile(f, []byte("alice:{PLAIN}a\nerin:{PLAIN}e\nnoinbox:{PLAIN}n\n"), 0o600)
	users, err := auth.LoadUsers(f)
	if err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{"one": be, "down": "127.0.0.1:1"}
	p, err := pop3.NewProxy(pop3.ProxyConfig{
		DB: db,
		Resolve: func(server string) (string, string, string, bool) {
			a, ok := addrs[server]
			return a, a, a, ok
		},
		Users:          users,
		Proxy:          auth.ProxyCredentials{Authname: "proxy", Password: "pw"},
		AllowPlaintext: true,
		Limits:         limits,
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
	c := &client{t: t, conn: conn.(*net.TCPConn), r: pop3.NewReader(bufio.NewReader(conn), 1000), w: pop3.NewWriter(bufio.NewWriter(conn))}
	if rep, err := c.r.ReadReply(); err != nil || !rep.OK {
		t.Fatalf("greeting %+v %v", rep, err)
	}
	return c, p
}

func TestProxy(t *testing.T) {
	logins := make(chan string, 1)
	c, _ := setup(t, logins, pop3.Limits{})
	if rep := c.cmd("CAPA"); !rep.OK {
		t.Fatalf("CAPA: %+v", rep)
	}
	capa, _ := io.ReadAll(c.r.DotReader())
	if !strings.Contains(string(capa), "SASL PLAIN") || !strings.Contains(string(capa), "USER") {
		t.Errorf("CAPA: %q", capa)
	}
	c.cmd("USER alice")
	if rep := c.cmd("PASS wrong"); rep.OK || !strings.HasPrefix(rep.Text, "[AUTH]") {
		t.Errorf("wrong password: %+v", rep)
	}
	c.cmd("USER noinbox")
	if rep := c.cmd("PASS n"); rep.OK || rep.Text != "[SYS/TEMP] Unable to open maildrop: Mailbox does not exist" {
		t.Errorf("no INBOX: %+v", rep)
	}
	c.cmd("USER erin")
	if rep := c.cmd("PASS e"); rep.OK || !strings.Contains(rep.Text, "Server(s) unavailable") {
		t.Errorf("backend down: %+v", rep)
	}
	if rep := c.cmd("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice\x00a"))); !rep.OK || rep.Text != "Mailbox locked and ready" {
		t.Fatalf("AUTH: %+v", rep)
	}
	if login := <-logins; login != "alice" {
		t.Errorf("backend authorization id %q", login)
	}
	if rep := c.cmd("STAT"); rep.Text != "1 12" {
		t.Errorf("STAT through the pipe: %+v", rep)
	}
	c.cmd("RETR 1")
	if msg, err := io.ReadAll(c.r.DotReader()); err != nil || string(msg) != ".hi\r\nthere\r\n" {
		t.Errorf("RETR: %q %v", msg, err)
	}
	if rep := c.cmd("QUIT"); !rep.OK || rep.Text != "bye" {
		t.Errorf("QUIT: %+v", rep)
	}
	if _, err := c.r.ReadLine(); err != io.EOF {
		t.Errorf("after QUIT: %v", err)
	}
}

// TestProxyCloseDuringLoginPause: shutdown does not wait out the pause
// after a failed login.
func TestProxyCloseDuringLoginPause(t *testing.T) {
	c, p := setup(t, make(chan string, 1), pop3.Limits{FailedLoginPause: time.Hour})
	c.cmd("USER alice")
	c.w.Line("PASS wrong")
	c.w.Flush()
	// Once the proxy holds the session in its pause, the client's reply is
	// pending; Close must still return.
	done := make(chan struct{})
	go func() {
		for p.Conns() != 1 {
			time.Sleep(time.Millisecond)
		}
		p.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Close waited for the failed-login pause")
	}
}

// login logs in as alice, after which the proxy pipes the session.
func (c *client) login() {
	c.t.Helper()
	c.cmd("USER alice")
	if rep := c.cmd("PASS a"); !rep.OK {
		c.t.Fatalf("login: %+v", rep)
	}
}

// waitConns polls until the proxy holds no connections.
func waitConns(t *testing.T, p *pop3.Proxy, within time.Duration) {
	t.Helper()
	for end := time.Now().Add(within); p.Conns() != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("proxy still holds %d connections after %v", p.Conns(), within)
		}
	}
}

// TestProxySlowRetr: a client silently receiving a message for longer
// than IdleTimeout is not idle; the message arrives whole.
func TestProxySlowRetr(t *testing.T) {
	idle := 3 * slowGap
	if slowLines*slowGap < 3*idle {
		t.Fatal("the download must outlast IdleTimeout")
	}
	c, _ := setup(t, make(chan string, 1), pop3.Limits{IdleTimeout: idle})
	c.login()
	if rep := c.cmd("RETR 2"); !rep.OK {
		t.Fatalf("RETR: %+v", rep)
	}
	msg, err := io.ReadAll(c.r.DotReader())
	if err != nil || strings.Count(string(msg), "\r\n") != slowLines {
		t.Fatalf("slow RETR cut: %d bytes, %v", len(msg), err)
	}
	if rep := c.cmd("QUIT"); !rep.OK {
		t.Errorf("QUIT: %+v", rep)
	}
}

// TestProxySlowReader: a client that pauses reading a big message for
// longer than IdleTimeout, but less than WriteTimeout, still gets it
// whole: bytes waiting to be written to it are not idleness.
func TestProxySlowReader(t *testing.T) {
	idle := 200 * time.Millisecond
	c, _ := setup(t, make(chan string, 1), pop3.Limits{IdleTimeout: idle, WriteTimeout: 10 * time.Second})
	c.login()
	if rep := c.cmd("RETR 3"); !rep.OK {
		t.Fatalf("RETR: %+v", rep)
	}
	time.Sleep(5 * idle) // the client being slow, not synchronisation
	msg, err := io.ReadAll(c.r.DotReader())
	if err != nil || len(msg) != bigLines*bigLine {
		t.Fatalf("big RETR cut: %d of %d bytes, %v", len(msg), bigLines*bigLine, err)
	}
}

// TestProxyIdle: a piped session where nothing moves either way is ended
// after IdleTimeout, not before.
func TestProxyIdle(t *testing.T) {
	idle := 300 * time.Millisecond
	c, p := setup(t, make(chan string, 1), pop3.Limits{IdleTimeout: idle})
	c.login()
	start := time.Now()
	_ = c.conn.SetReadDeadline(start.Add(10 * time.Second))
	if line, err := c.r.ReadLine(); err != io.EOF {
		t.Fatalf("idle session: %q %v, want EOF", line, err)
	}
	if d := time.Since(start); d < idle/2 {
		t.Errorf("idle session ended after %v, IdleTimeout is %v", d, idle)
	}
	waitConns(t, p, 5*time.Second)
}

// TestProxyStalledReader: a client that stops reading is dropped after
// WriteTimeout, even though the backend keeps the session busy; one that
// reads, however long it takes, is not.
func TestProxyStalledReader(t *testing.T) {
	c, p := setup(t, make(chan string, 1), pop3.Limits{IdleTimeout: time.Minute, WriteTimeout: 3 * slowGap})
	c.login()
	// Outlasts WriteTimeout: each write must get a deadline of its own.
	c.cmd("RETR 2")
	if msg, err := io.ReadAll(c.r.DotReader()); err != nil || strings.Count(string(msg), "\r\n") != slowLines {
		t.Fatalf("slow RETR cut: %d bytes, %v", len(msg), err)
	}
	c.w.Line("RETR 4")
	c.w.Flush()
	waitConns(t, p, 10*time.Second)
}
