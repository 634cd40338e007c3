package pop3_test

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
	"github.com/rookery/rookery/listeners/pop3"
	"github.com/rookery/rookery/store"
)

// startFakePOP3 is a backend that takes the proxy's AUTH PLAIN for any
// user, answers STAT and RETR 1, and sends each authorization id to
// logins.
func startFakePOP3(t *testing.T, logins chan<- string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
			go func() {
				defer wg.Done()
				defer c.Close()
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
						w.OK("12 octets")
						dw := w.DotWriter()
						io.WriteString(dw, ".hi\r\nthere\r\n")
						dw.Close()
					case "QUIT":
						w.OK("bye")
						w.Flush()
						return
					default:
						w.Err("what")
					}
					w.Flush()
				}
			}()
		}
	}()
	return ln.Addr().String()
}

type client struct {
	t *testing.T
	r *pop3.Reader
	w *pop3.Writer
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
	c := &client{t: t, r: pop3.NewReader(bufio.NewReader(conn), 1000), w: pop3.NewWriter(bufio.NewWriter(conn))}
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
