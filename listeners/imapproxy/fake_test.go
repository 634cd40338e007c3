package imapproxy_test

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/testserve"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/store"
)

// fakeBackend is a scripted IMAP backend for the cases real Cyrus cannot
// be made to produce on demand: dying mid-command, lacking LITERAL+,
// refusing a literal.
type fakeBackend struct {
	t    *testing.T
	ln   net.Listener
	caps string
	// handle answers one command line (tag and the rest) and may read
	// literals from c; returning false drops the connection.
	handle func(c *fakeConn, tag, cmd string) bool

	mu    sync.Mutex
	lines []string // every command line received, for assertions
	login string   // the last "authzid authcid" seen
}

type fakeConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *fakeConn) send(s string) { io.WriteString(c.conn, s+"\r\n") }

func (c *fakeConn) line() string {
	l, _ := c.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n")
}

func startFake(t *testing.T, caps string, handle func(c *fakeConn, tag, cmd string) bool) *fakeBackend {
	t.Helper()
	f := &fakeBackend{t: t, caps: caps, handle: handle}
	f.ln = testserve.Serve(t, "127.0.0.1:0", func(conn net.Conn) {
		f.serve(&fakeConn{conn: conn, r: bufio.NewReader(conn)})
	})
	return f
}

func (f *fakeBackend) serve(c *fakeConn) {
	_ = c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	c.send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR " + f.caps + "] fake ready")
	for {
		l := c.line()
		if l == "" {
			return
		}
		tag, cmd, _ := strings.Cut(l, " ")
		f.mu.Lock()
		f.lines = append(f.lines, cmd)
		f.mu.Unlock()
		up := strings.ToUpper(cmd)
		switch {
		case strings.HasPrefix(up, "AUTHENTICATE PLAIN "):
			raw, _ := base64.StdEncoding.DecodeString(cmd[len("AUTHENTICATE PLAIN "):])
			p := strings.Split(string(raw), "\x00")
			f.mu.Lock()
			f.login = p[0] + " " + p[1]
			f.mu.Unlock()
			c.send(tag + " OK [CAPABILITY IMAP4rev1 " + f.caps + "] logged in")
		case up == "LOGOUT":
			c.send("* BYE")
			c.send(tag + " OK bye")
			return
		case up == "NOOP" || up == "UNSELECT":
			c.send(tag + " OK done")
		default:
			if !f.handle(c, tag, cmd) {
				return
			}
		}
	}
}

func (f *fakeBackend) received() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// fakeMurder is a mailbox list on disk that routes alice's INBOX to
// fake1 and "other" to fake2, with the given resolver addresses.
func fakeMurder(t testing.TB, addrs map[string]string, mutate ...func(*imapproxy.Config)) string {
	t.Helper()
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	acl := "alice\tlrswipkxtecda\tanyone\tlrs\t"
	var b store.Batch
	for name, loc := range map[string]string{"user.alice": "fake1!default", "other": "fake2!default"} {
		b.Changes = append(b.Changes, store.Change{Name: name, New: &store.Entry{Name: name, Kind: store.Active, Location: loc, ACL: acl}})
	}
	if _, err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	users := authUsers(t, "alice:{PLAIN}alicepw\n")
	cfg := imapproxy.Config{
		ServerName: "frontend.test",
		DB:         db,
		Resolve: func(server string) (string, string, string, bool) {
			a, ok := addrs[server]
			return a, a, a, ok
		},
		Users:          users,
		Proxy:          auth.ProxyCredentials{Authname: "proxy", Password: "pw"},
		AllowPlaintext: true,
		Limits:         imapproxy.Limits{ConnectTimeout: 2 * time.Second, BackendTimeout: 5 * time.Second},
		Logger:         testLogger(t),
	}
	for _, m := range mutate {
		m(&cfg)
	}
	srv, err := imapproxy.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, srv.Serve, srv.Close)
}

func authUsers(t testing.TB, content string) *auth.Users {
	t.Helper()
	p := t.TempDir() + "/users"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := auth.LoadUsers(p)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
