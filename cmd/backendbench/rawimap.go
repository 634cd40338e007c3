package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
)

// rawIMAP speaks just enough IMAP for what go-imap's client lacks here:
// MULTIAPPEND with non-synchronizing literals, SORT and THREAD as plain
// lines, SELECT with QRESYNC, and a count of the bytes read on the wire.
type rawIMAP struct {
	conn net.Conn
	cnt  *countingConn
	r    *bufio.Reader
	w    *bufio.Writer
	tags int
	stop func() bool
}

// countingConn counts the bytes read from its connection.
type countingConn struct {
	net.Conn
	read int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read += int64(n)
	return n, err
}

// dialRaw connects to tg's IMAP listener and logs in as the bench user.
// The connection is closed when ctx ends.
func dialRaw(ctx context.Context, tg target) (*rawIMAP, error) {
	conn, err := dial(ctx, tg, tg.IMAP)
	if err != nil {
		return nil, fail(ctx, tg, "IMAP", err)
	}
	cnt := &countingConn{Conn: conn}
	c := &rawIMAP{conn: conn, cnt: cnt, r: bufio.NewReaderSize(cnt, 64<<10), w: bufio.NewWriterSize(conn, 64<<10)}
	c.stop = context.AfterFunc(ctx, func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	line, err := c.line()
	if err == nil && !strings.HasPrefix(line, "* OK") {
		err = fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	if err != nil {
		c.Close()
		return nil, fail(ctx, tg, "IMAP greeting", err)
	}
	// The bench user and password are atoms: no quoting needed.
	if _, err := c.Cmd("LOGIN %s %s", tg.User, tg.Pass); err != nil {
		c.Close()
		return nil, fail(ctx, tg, "LOGIN", err)
	}
	return c, nil
}

// Close drops the connection without a LOGOUT.
func (c *rawIMAP) Close() {
	c.stop()
	c.conn.Close()
}

// Read is how many bytes came from the server so far.
func (c *rawIMAP) Read() int64 { return c.cnt.read }

// Cmd sends one command and returns its untagged responses, each with its
// literals inline, once the tagged OK has come; NO or BAD is an error.
func (c *rawIMAP) Cmd(format string, args ...any) ([]string, error) {
	return c.CmdWith(func(w *bufio.Writer) { fmt.Fprintf(w, format, args...) })
}

// CmdWith is Cmd for a command that write puts on the wire itself, such
// as one with non-synchronizing literals.
func (c *rawIMAP) CmdWith(write func(w *bufio.Writer)) ([]string, error) {
	c.tags++
	tag := "R" + strconv.Itoa(c.tags)
	_ = c.conn.SetDeadline(time.Now().Add(ioTimeout))
	c.w.WriteString(tag + " ")
	write(c.w)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	var untagged []string
	for {
		line, err := c.response()
		if err != nil {
			return nil, err
		}
		switch {
		case strings.HasPrefix(line, tag+" OK"):
			return untagged, nil
		case strings.HasPrefix(line, tag+" "):
			return nil, fmt.Errorf("%s", strings.TrimSpace(line))
		case strings.HasPrefix(line, "* "):
			untagged = append(untagged, line)
		}
	}
}

// response reads one response line with the literals it carries.
func (c *rawIMAP) response() (string, error) {
	line, err := c.line()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		b.WriteString(line)
		n, ok := cyrustest.LiteralSize(strings.TrimSuffix(line, "\r\n"))
		if !ok {
			return b.String(), nil
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(c.r, lit); err != nil {
			return "", err
		}
		b.Write(lit)
		if line, err = c.line(); err != nil {
			return "", err
		}
	}
}

func (c *rawIMAP) line() (string, error) { return c.r.ReadString('\n') }
