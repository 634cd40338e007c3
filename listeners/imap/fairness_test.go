package imap

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// greeted dials e and returns the connection with the server's first
// line, which is a BYE when the connection is refused.
func (e *env) greeted() (*raw, string) {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	r := &raw{t: e.t, conn: c, br: bufio.NewReader(c)}
	return r, r.line()
}

// gone reads r to its end and returns the last line before it.
func (r *raw) gone() string {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	last := ""
	for {
		l, err := r.br.ReadString('\n')
		if l != "" {
			last = strings.TrimRight(l, "\r\n")
		}
		if err != nil {
			if err != io.EOF {
				r.t.Fatalf("read: %v (last line %q)", err, last)
			}
			return last
		}
	}
}

// TestStrangersLeaveSlotsForLogins: connections that never log in, as
// many as the connection cap, keep no user out: they fill at most half
// of it, newcomers push the oldest of them out, and a user gets in and
// logs in.
func TestStrangersLeaveSlotsForLogins(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) { c.MaxConns = 4 })
	var strangers []*raw
	for range 4 {
		s, l := e.greeted()
		if !strings.HasPrefix(l, "* OK") {
			t.Fatalf("stranger greeted with %q", l)
		}
		strangers = append(strangers, s)
	}
	for _, s := range strangers[:2] {
		if l := s.gone(); l != "* BYE Login timeout" {
			t.Fatalf("stranger pushed out said %q", l)
		}
	}
	u, l := e.greeted()
	if !strings.HasPrefix(l, "* OK") {
		t.Fatalf("user's connection greeted with %q", l)
	}
	u.cmd("1", "LOGIN alice alicepw", "OK")
	// Logged in, the user is out of the strangers' share: the newest
	// stranger is still there.
	strangers[3].cmd("2", "NOOP", "OK")
}

// TestLoginTimeout: a connection that does not log in within
// LoginTimeout is closed, however busy it keeps itself; a logged-in one
// as old is not.
func TestLoginTimeout(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) { c.LoginTimeout = 300 * time.Millisecond })
	u := e.raw()
	u.cmd("1", "LOGIN alice alicepw", "OK")
	s := e.raw()
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
	u.cmd("2", "NOOP", "OK")
}

// TestMaxConnsPerHost: one IP address gets MaxConnsPerHost connections,
// logged in or not; one more is told why instead of being greeted, and
// another address is not affected.
func TestMaxConnsPerHost(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) { c.MaxConnsPerHost = 1 })
	e.raw().cmd("1", "LOGIN alice alicepw", "OK")
	if _, l := e.greeted(); l != "* BYE [UNAVAILABLE] Too many connections from your address" {
		t.Fatalf("second connection from 127.0.0.1: %q", l)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	c, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r := &raw{t: t, conn: c, br: bufio.NewReader(c)}
	if l := r.line(); !strings.HasPrefix(l, "* OK") {
		t.Fatalf("connection from 127.0.0.2: %q", l)
	}
	r.cmd("1", "LOGIN bob bobpw", "OK")
}
