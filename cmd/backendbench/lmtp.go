package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/rookery/rookery/listeners/lmtp"
)

// lmtpClient is just enough of an LMTP (RFC 2033) client to time
// deliveries: one recipient per message and one command at a time, which
// every server handles alike. Go's net/smtp cannot speak LHLO.
type lmtpClient struct {
	conn net.Conn
	r    *lmtp.Reader
	w    *lmtp.Writer
}

// dialLMTP connects to tg's LMTP listener, says LHLO and, if the server
// offers AUTH, authenticates with PLAIN as tg's LMTP user. The connection
// is closed when ctx ends; done sends QUIT and closes it.
func dialLMTP(ctx context.Context, tg target) (c *lmtpClient, done func(), err error) {
	conn, err := dial(ctx, tg, tg.LMTP)
	if err != nil {
		return nil, nil, fail(ctx, tg, "LMTP", err)
	}
	c = &lmtpClient{
		conn: conn,
		r:    lmtp.NewReader(bufio.NewReader(conn), 4096),
		w:    lmtp.NewWriter(bufio.NewWriterSize(conn, 64<<10)),
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	done = func() {
		stop()
		_, _ = c.cmd("QUIT")
		conn.Close()
	}
	if err := c.hello(tg); err != nil {
		done()
		return nil, nil, fail(ctx, tg, "LMTP", err)
	}
	return c, done, nil
}

func (c *lmtpClient) hello(tg target) error {
	_ = c.conn.SetDeadline(time.Now().Add(ioTimeout))
	greeting, err := c.r.ReadReply()
	if err != nil {
		return err
	}
	if greeting.Code != 220 {
		return fmt.Errorf("greeting %s", greeting)
	}
	rep, err := c.expect("LHLO backendbench.test", 250)
	if err != nil {
		return err
	}
	auth := false
	for _, l := range rep.Lines[1:] {
		kw, _, _ := strings.Cut(strings.ToUpper(l), " ")
		auth = auth || kw == "AUTH"
	}
	if !auth || tg.LMTPUser == "" {
		return nil
	}
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + tg.LMTPUser + "\x00" + tg.LMTPPass))
	_, err = c.expect("AUTH PLAIN "+ir, 235)
	return err
}

// cmd sends one command line and reads the reply.
func (c *lmtpClient) cmd(line string) (lmtp.Reply, error) {
	c.w.Line(line)
	if err := c.w.Flush(); err != nil {
		return lmtp.Reply{}, err
	}
	return c.r.ReadReply()
}

// expect is cmd for a reply that must have code want.
func (c *lmtpClient) expect(line string, want int) (lmtp.Reply, error) {
	rep, err := c.cmd(line)
	if err == nil && rep.Code != want {
		verb, _, _ := strings.Cut(line, " ")
		err = fmt.Errorf("%s: %s", verb, rep)
	}
	return rep, err
}

// deliver hands message number n of m to rcpt and waits for its
// delivery reply.
func (c *lmtpClient) deliver(rcpt string, m *message, n int) error {
	_ = c.conn.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.expect("MAIL FROM:<bench@backendbench.test>", 250); err != nil {
		return err
	}
	if _, err := c.expect("RCPT TO:<"+rcpt+">", 250); err != nil {
		return err
	}
	if _, err := c.expect("DATA", 354); err != nil {
		return err
	}
	dw := c.w.DotWriter()
	_, _ = dw.Write(m.head(n))
	_, _ = dw.Write(m.body)
	if err := dw.Close(); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return err
	}
	rep, err := c.r.ReadReply()
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return fmt.Errorf("delivery: %s", rep)
	}
	return nil
}

// lmtpSerial delivers n messages of m to the bench user's INBOX over one
// LMTP connection, each after the previous one's delivery reply. The
// connection setup is not timed.
func lmtpSerial(ctx context.Context, tg target, m *message, n int) (float64, error) {
	c, done, err := dialLMTP(ctx, tg)
	if err != nil {
		return 0, err
	}
	defer done()
	start := time.Now()
	for i := range n {
		if err := c.deliver(tg.User, m, i); err != nil {
			return 0, fail(ctx, tg, "LMTP delivery", err)
		}
	}
	return rate(n, time.Since(start)), nil
}
