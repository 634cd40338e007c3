package imapproxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// client is a raw IMAP client for tests: it writes exactly what a test
// says and reads responses, literals included, so tests can check the
// bytes the proxy sends.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return greeted(t, conn)
}

// greeted reads the greeting on a new connection.
func greeted(t testing.TB, conn net.Conn) *client {
	t.Helper()
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	if g := c.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

// login dials addr and logs in with LOGIN.
func login(t testing.TB, addr, user, pass string) *client {
	t.Helper()
	c := dial(t, addr)
	c.ok("LOGIN %s %s", user, pass)
	return c
}

func (c *client) deadline() { _ = c.conn.SetDeadline(time.Now().Add(30 * time.Second)) }

// line reads one line without CRLF.
func (c *client) line() string {
	c.t.Helper()
	c.deadline()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// response reads one response with its literals inline.
func (c *client) response() string {
	c.t.Helper()
	var b strings.Builder
	for {
		l := c.line()
		b.WriteString(l)
		n, ok := litSize(l)
		if !ok {
			return b.String()
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(c.r, buf); err != nil {
			c.t.Fatal(err)
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

func litSize(l string) (int, bool) {
	if !strings.HasSuffix(l, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+"))
	return n, err == nil
}

func (c *client) send(s string) {
	c.t.Helper()
	c.deadline()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// cmd sends a tagged command and returns the untagged responses and the
// tagged one (without the tag).
func (c *client) cmd(format string, args ...any) (untagged []string, tagged string) {
	c.t.Helper()
	c.n++
	tag := "t" + strconv.Itoa(c.n)
	c.send(tag + " " + fmt.Sprintf(format, args...) + "\r\n")
	for {
		r := c.response()
		if rest, ok := strings.CutPrefix(r, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, r)
	}
}

// ok runs a command that must succeed.
func (c *client) ok(format string, args ...any) []string {
	c.t.Helper()
	u, tagged := c.cmd(format, args...)
	if !strings.HasPrefix(tagged, "OK") {
		c.t.Fatalf("%s: %s\n%s", strings.Fields(format)[0], tagged, strings.Join(u, "\n"))
	}
	return u
}

// no runs a command that must fail with NO and returns its text.
func (c *client) no(format string, args ...any) string {
	c.t.Helper()
	u, tagged := c.cmd(format, args...)
	if !strings.HasPrefix(tagged, "NO") {
		c.t.Fatalf("%s: want NO, got %s\n%s", strings.Fields(format)[0], tagged, strings.Join(u, "\n"))
	}
	return tagged
}

func has(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}
