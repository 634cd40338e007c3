package imapproxy_test

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/listeners/pop3"
)

// lmtpClient is an MTA's side of LMTP, built on the lmtp codec.
type lmtpClient struct {
	t    *testing.T
	conn net.Conn
	r    *lmtp.Reader
	w    *lmtp.Writer
}

func dialLMTP(t *testing.T, addr string) *lmtpClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := &lmtpClient{t: t, conn: conn, r: lmtp.NewReader(bufio.NewReader(conn), 4096), w: lmtp.NewWriter(bufio.NewWriter(conn))}
	if rep := c.reply(); rep.Code != 220 {
		t.Fatalf("LMTP greeting %s", rep)
	}
	c.want(250, "LHLO mta.test")
	c.want(235, "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00admin\x00secret")))
	return c
}

func (c *lmtpClient) reply() lmtp.Reply {
	c.t.Helper()
	rep, err := c.r.ReadReply()
	if err != nil {
		c.t.Fatal(err)
	}
	return rep
}

func (c *lmtpClient) cmd(line string) lmtp.Reply {
	c.t.Helper()
	c.w.Line(line)
	if err := c.w.Flush(); err != nil {
		c.t.Fatal(err)
	}
	return c.reply()
}

func (c *lmtpClient) want(code int, line string) lmtp.Reply {
	c.t.Helper()
	rep := c.cmd(line)
	if rep.Code != code {
		c.t.Fatalf("%s: got %s, want %d", strings.Fields(line)[0], rep, code)
	}
	return rep
}

// deliver sends msg to rcpts and returns the RCPT replies and the
// per-recipient replies after DATA.
func (c *lmtpClient) deliver(msg string, rcpts ...string) (rcptReps, dataReps []lmtp.Reply) {
	c.t.Helper()
	c.want(250, "MAIL FROM:<sender@example.com>")
	accepted := 0
	for _, r := range rcpts {
		rep := c.cmd("RCPT TO:<" + r + ">")
		rcptReps = append(rcptReps, rep)
		if rep.Code == 250 {
			accepted++
		}
	}
	if accepted == 0 {
		c.want(250, "RSET")
		return rcptReps, nil
	}
	c.want(354, "DATA")
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
	for range accepted {
		dataReps = append(dataReps, c.reply())
	}
	return rcptReps, dataReps
}

// pop3Client is a POP3 client for tests.
type pop3Client struct {
	t *testing.T
	r *pop3.Reader
	w *pop3.Writer
}

func dialPOP3(t *testing.T, addr string) *pop3Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &pop3Client{t: t, r: pop3.NewReader(bufio.NewReader(conn), 4096), w: pop3.NewWriter(bufio.NewWriter(conn))}
}

// cmd sends line (none for the greeting) and reads the reply.
func (c *pop3Client) cmd(line string) pop3.Reply {
	c.t.Helper()
	if line != "" {
		c.w.Line(line)
		if err := c.w.Flush(); err != nil {
			c.t.Fatal(err)
		}
	}
	rep, err := c.r.ReadReply()
	if err != nil {
		c.t.Fatal(err)
	}
	return rep
}

// must is cmd for a reply that must be +OK.
func (c *pop3Client) must(line string) pop3.Reply {
	c.t.Helper()
	rep := c.cmd(line)
	if !rep.OK {
		c.t.Fatalf("POP3 %q: -ERR %s", strings.Fields(line + " greeting")[0], rep.Text)
	}
	return rep
}

// pop3Retr logs in to a POP3 service with USER/PASS and returns the
// STAT line and the first message.
func pop3Retr(t *testing.T, addr, user, pass string) (stat, first string) {
	t.Helper()
	c := dialPOP3(t, addr)
	c.must("")
	c.must("USER " + user)
	c.must("PASS " + pass)
	stat = c.must("STAT").Text
	c.must("RETR 1")
	b, err := io.ReadAll(c.r.DotReader())
	if err != nil {
		t.Fatal(err)
	}
	c.must("QUIT")
	return stat, string(b)
}
