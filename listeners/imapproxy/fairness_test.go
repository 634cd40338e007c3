package imapproxy_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/imapproxy"
)

// firstLine dials addr from local (nil: any address) and returns the
// connection with the first line the proxy sent.
func firstLine(t *testing.T, addr string, local net.Addr) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	l, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %v", err)
	}
	return conn, r, strings.TrimRight(l, "\r\n")
}

// lastLine reads c to its end and returns the last line before it.
func (c *client) lastLine() string {
	c.t.Helper()
	c.deadline()
	b, err := io.ReadAll(c.r)
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, b)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\r\n"), "\r\n")
	return lines[len(lines)-1]
}

// TestProxyStrangersLeaveRoomForLogins: connections that never log in,
// as many as MaxConns, keep no user out: they fill at most half of it,
// each newcomer pushing out the oldest, and a user gets in and logs in.
func TestProxyStrangersLeaveRoomForLogins(t *testing.T) {
	addr := fakeMurder(t, nil, func(cfg *imapproxy.Config) { cfg.Limits.MaxConns = 4 })
	var strangers []*client
	for range 4 {
		strangers = append(strangers, dial(t, addr))
	}
	for _, s := range strangers[:2] {
		if l := s.lastLine(); l != "* BYE Login timeout" {
			t.Fatalf("stranger pushed out: %q", l)
		}
	}
	u := login(t, addr, "alice", "alicepw")
	u.ok("NOOP")
	strangers[3].ok("NOOP")
}

// TestProxyLoginTimeout: a session that does not log in within
// LoginTimeout is ended, however busy it keeps itself; a logged-in one
// as old is not.
func TestProxyLoginTimeout(t *testing.T) {
	addr := fakeMurder(t, nil, func(cfg *imapproxy.Config) { cfg.Limits.LoginTimeout = 300 * time.Millisecond })
	u := login(t, addr, "alice", "alicepw")
	s := dial(t, addr)
	for i := 0; ; i++ {
		s.send("n NOOP\r\n")
		l := s.line()
		if l == "* BYE Login timeout" {
			break
		}
		if !strings.HasPrefix(l, "n OK") || i > 500 {
			t.Fatalf("stranger's NOOP %d: %q", i, l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	u.ok("NOOP")
}

// TestProxyMaxConnsPerUser: a user at MaxConnsPerUser sessions gets NO
// [LIMIT] for one more login, by LOGIN or AUTHENTICATE, and gets in once
// one of them ends; other users are not affected.
func TestProxyMaxConnsPerUser(t *testing.T) {
	addr := fakeMurder(t, nil, func(cfg *imapproxy.Config) {
		cfg.Limits.MaxConnsPerUser = 2
		cfg.Users = authUsers(t, "alice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\n")
	})
	first := login(t, addr, "alice", "alicepw")
	login(t, addr, "alice", "alicepw")
	c := dial(t, addr)
	if tagged := c.no("LOGIN alice alicepw"); tagged != "NO [LIMIT] Too many open connections" {
		t.Fatalf("third LOGIN: %q", tagged)
	}
	if tagged := c.no("AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc="); tagged != "NO [LIMIT] Too many open connections" {
		t.Fatalf("third AUTHENTICATE: %q", tagged)
	}
	login(t, addr, "bob", "bobpw")
	first.ok("LOGOUT")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, tagged := c.cmd("LOGIN alice alicepw")
		if strings.HasPrefix(tagged, "OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("LOGIN after a session ended: %q", tagged)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProxyMaxConnsPerHost: one IP address gets MaxConnsPerHost
// connections, logged in or not; one more is told why instead of being
// greeted. Another address is not affected.
func TestProxyMaxConnsPerHost(t *testing.T) {
	addr := fakeMurder(t, nil, func(cfg *imapproxy.Config) { cfg.Limits.MaxConnsPerHost = 2 })
	first := login(t, addr, "alice", "alicepw")
	dial(t, addr)
	_, r, l := firstLine(t, addr, nil)
	if l != "* BYE [UNAVAILABLE] Too many open connections from your address" {
		t.Fatalf("third connection from 127.0.0.1: %q", l)
	}
	if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
		t.Fatalf("after the BYE: %q, %v", rest, err)
	}
	if _, _, l := firstLine(t, addr, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("connection from 127.0.0.2: %q", l)
	}
	first.ok("LOGOUT")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, _, l := firstLine(t, addr, nil)
		if strings.HasPrefix(l, "* OK") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one connection ended: %q", l)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
