package cyrustest

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

const (
	// imapTimeout bounds each IMAP command, so a silent server fails the
	// test instead of hanging it.
	imapTimeout = 20 * time.Second
	// maxLiteral guards against allocating absurd sizes from a bad reply.
	maxLiteral = 64 << 20
)

// IMAP is a tiny line-based IMAP client for tests that talk to Cyrus
// without an IMAP library: it sends tagged commands and collects the lines
// up to the tagged reply. It is not safe for concurrent use.
type IMAP struct {
	conn    net.Conn
	r       *bufio.Reader
	tag     int
	timeout time.Duration // per command
}

// DialIMAP connects to addr, reads the greeting and, unless user is empty,
// logs in with LOGIN. It fails the test on any error; t.Cleanup closes the
// connection.
func DialIMAP(t testing.TB, addr, user, pass string) *IMAP {
	t.Helper()
	c, err := OpenIMAP(addr, user, pass)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// OpenIMAP is DialIMAP for programs without testing.TB: it returns its
// error, and the caller closes the client.
func OpenIMAP(addr, user, pass string) (*IMAP, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("cyrustest: imap: %w", err)
	}
	c := &IMAP{conn: conn, r: bufio.NewReader(conn), timeout: imapTimeout}
	if err := conn.SetDeadline(time.Now().Add(imapTimeout)); err != nil {
		c.Close()
		return nil, fmt.Errorf("cyrustest: imap: %w", err)
	}
	greeting, err := c.readResponse()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("cyrustest: imap greeting from %s: %w", addr, err)
	}
	if !strings.HasPrefix(greeting, "* OK") {
		c.Close()
		return nil, fmt.Errorf("cyrustest: imap greeting from %s: %q", addr, greeting)
	}
	if user != "" {
		if _, _, err := c.Cmd("LOGIN %s %s", quote(user), quote(pass)); err != nil {
			c.Close()
			return nil, fmt.Errorf("%w (user %s at %s)", err, user, addr)
		}
	}
	return c, nil
}

// Cmd sends one command, built with fmt.Sprintf(format, args...) and
// prefixed with a fresh tag, and reads until the tagged reply.
//
// untagged holds every other server line in order, without its CRLF; a
// line that announces a literal ({n}) continues with CRLF, the n bytes and
// the rest of the line, exactly as sent. status is the reply's status word
// ("OK", "NO", "BAD"). err is non-nil when status is not "OK" (with the
// reply text) or when the connection failed (status is then "").
//
// Literals in commands should be non-synchronising ({n+}, which Cyrus
// supports): Cmd sends the whole command at once and ignores continuation
// requests.
func (c *IMAP) Cmd(format string, args ...any) (untagged []string, status string, err error) {
	cmd := fmt.Sprintf(format, args...)
	// Only the command name goes into errors: the rest may be a password.
	name, _, _ := strings.Cut(cmd, " ")
	c.tag++
	tag := "c" + strconv.Itoa(c.tag)
	if err := c.conn.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return nil, "", fmt.Errorf("cyrustest: imap %s: %w", name, err)
	}
	if _, err := io.WriteString(c.conn, tag+" "+cmd+"\r\n"); err != nil {
		return nil, "", fmt.Errorf("cyrustest: imap %s: %w", name, err)
	}
	for {
		line, err := c.readResponse()
		if err != nil {
			return untagged, "", fmt.Errorf("cyrustest: imap %s: %w", name, err)
		}
		switch {
		case strings.HasPrefix(line, tag+" "):
			reply := line[len(tag)+1:]
			word, _, _ := strings.Cut(reply, " ")
			status = strings.ToUpper(word)
			if status != "OK" {
				return untagged, status, fmt.Errorf("cyrustest: imap %s: %s", name, reply)
			}
			return untagged, status, nil
		case strings.HasPrefix(line, "+"):
			// continuation request for a literal we already sent
		default:
			untagged = append(untagged, line)
		}
	}
}

// SetTimeout replaces the bound on each later command (20 s), for
// commands known to take longer, such as a LIST over a huge mailbox list.
func (c *IMAP) SetTimeout(d time.Duration) { c.timeout = d }

// Close logs out (without waiting for the reply) and closes the connection.
// Calling it again is a no-op.
func (c *IMAP) Close() {
	if c.conn == nil {
		return
	}
	_ = c.conn.SetDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(c.conn, "z LOGOUT\r\n")
	c.conn.Close()
	c.conn = nil
}

// readResponse reads one response line including any literals it carries.
func (c *IMAP) readResponse() (string, error) {
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		b.WriteString(line)
		n, ok := LiteralSize(line)
		if !ok {
			return b.String(), nil
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(c.r, lit); err != nil {
			return "", err
		}
		b.WriteString("\r\n")
		b.Write(lit)
	}
}

// LiteralSize reports the size of a literal announced at the end of line:
// {n}, or {n+} as in MUPDATE.
func LiteralSize(line string) (int, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	open := strings.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(line[open+1:len(line)-1], "+"))
	if err != nil || n < 0 || n > maxLiteral {
		return 0, false
	}
	return n, true
}

// quote makes s an IMAP quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
