package lmtp

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// copyBufs holds the buffers a message streams through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// lmtpBackend is a session's connection to one backend's LMTP service,
// authenticated as the proxy user.
type lmtpBackend struct {
	server   string
	conn     net.Conn
	r        *Reader
	w        *Writer
	timeout  time.Duration
	pipeline bool
	used     bool // a transaction has been started: RSET before the next
	inTxn    bool // in the client's open transaction, after MAIL
	accepted int  // recipients accepted in the open transaction
}

// dialBackend connects to addr, says LHLO and authenticates with AUTH
// PLAIN as authname (no authorization id), if the backend asks for AUTH.
func dialBackend(ctx context.Context, server, addr, helo, authname, password string, connectTimeout, timeout time.Duration) (*lmtpBackend, error) {
	d := net.Dialer{Timeout: connectTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("lmtp: backend %s: %w", server, err)
	}
	b := &lmtpBackend{
		server:  server,
		conn:    conn,
		r:       NewReader(bufio.NewReaderSize(conn, 4096), 4096),
		w:       NewWriter(bufio.NewWriterSize(conn, 4096)),
		timeout: timeout,
	}
	_ = conn.SetDeadline(time.Now().Add(connectTimeout))
	if err := b.login(helo, authname, password); err != nil {
		conn.Close()
		return nil, fmt.Errorf("lmtp: backend %s: %w", server, err)
	}
	return b, nil
}

func (b *lmtpBackend) login(helo, authname, password string) error {
	greet, err := b.r.ReadReply()
	if err != nil {
		return err
	}
	if greet.Code != 220 {
		return fmt.Errorf("greeting %s", greet)
	}
	rep, err := b.cmd("LHLO " + helo)
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return fmt.Errorf("LHLO: %s", rep)
	}
	auth := false
	for _, l := range rep.Lines[1:] {
		kw, args, _ := strings.Cut(strings.ToUpper(l), " ")
		switch kw {
		case "PIPELINING":
			b.pipeline = true
		case "AUTH":
			auth = true
			if !strings.Contains(" "+args+" ", " PLAIN ") {
				return fmt.Errorf("no AUTH PLAIN offered (%s)", args)
			}
		}
	}
	if !auth {
		return nil // a backend that trusts its clients (Cyrus lmtpd -a)
	}
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + authname + "\x00" + password))
	rep, err = b.cmd("AUTH PLAIN " + ir)
	if err != nil {
		return err
	}
	if rep.Code != 235 {
		return fmt.Errorf("proxy login refused: %s", rep)
	}
	return nil
}

func (b *lmtpBackend) deadline() { _ = b.conn.SetDeadline(time.Now().Add(b.timeout)) }

// cmd sends one command and reads its reply.
func (b *lmtpBackend) cmd(line string) (Reply, error) {
	b.w.Line(line)
	if err := b.w.Flush(); err != nil {
		return Reply{}, err
	}
	return b.r.ReadReply()
}

// rcpt adds addr to the backend's transaction, starting one with
// MAIL FROM (after RSET, if the connection was used) when needed. A
// refused MAIL FROM is returned as the recipient's reply.
func (b *lmtpBackend) rcpt(from string, fromArgs []string, addr string) (Reply, error) {
	b.deadline()
	if !b.inTxn {
		mail := strings.Join(append([]string{"MAIL FROM:" + from}, fromArgs...), " ")
		if b.used {
			if b.pipeline {
				b.w.Line("RSET")
				b.w.Line(mail)
				if err := b.w.Flush(); err != nil {
					return Reply{}, err
				}
				if _, err := b.r.ReadReply(); err != nil {
					return Reply{}, err
				}
			} else if _, err := b.cmd("RSET"); err != nil {
				return Reply{}, err
			} else {
				b.w.Line(mail)
				if err := b.w.Flush(); err != nil {
					return Reply{}, err
				}
			}
		} else {
			b.w.Line(mail)
			if err := b.w.Flush(); err != nil {
				return Reply{}, err
			}
		}
		b.used = true
		rep, err := b.r.ReadReply()
		if err != nil || !rep.Positive() {
			return rep, err
		}
		b.inTxn, b.accepted = true, 0
	}
	rep, err := b.cmd("RCPT TO:<" + addr + ">")
	if err == nil && rep.Positive() {
		b.accepted++
	}
	return rep, err
}

// startData sends DATA; a positive reply (354) means the message may
// follow.
func (b *lmtpBackend) startData() (Reply, error) {
	b.deadline()
	rep, err := b.cmd("DATA")
	if err == nil && !rep.Positive() {
		b.inTxn = false
	}
	return rep, err
}

// dataReplies reads one reply per accepted recipient after the message.
// Each reply gets the whole timeout: a backend may take a while over
// each recipient's delivery.
func (b *lmtpBackend) dataReplies() ([]Reply, error) {
	b.deadline()
	if err := b.w.Flush(); err != nil {
		return nil, err
	}
	reps := make([]Reply, 0, b.accepted)
	for range b.accepted {
		b.deadline()
		rep, err := b.r.ReadReply()
		if err != nil {
			return reps, err
		}
		reps = append(reps, rep)
	}
	b.inTxn = false
	return reps, nil
}

// deliver sends a spooled message in the open transaction.
func (b *lmtpBackend) deliver(msg io.ReadSeeker) ([]Reply, error) {
	rep, err := b.startData()
	if err != nil {
		return nil, err
	}
	if !rep.Positive() {
		reps := make([]Reply, b.accepted)
		for i := range reps {
			reps[i] = rep
		}
		return reps, nil
	}
	if _, err := msg.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	dw := b.w.DotWriter()
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	for {
		n, err := msg.Read(*bufp)
		if n > 0 {
			b.deadline()
			if _, werr := dw.Write((*bufp)[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if err := dw.Close(); err != nil {
		return nil, err
	}
	return b.dataReplies()
}

// quit ends the connection politely without waiting long.
func (b *lmtpBackend) quit() {
	_ = b.conn.SetDeadline(time.Now().Add(time.Second))
	b.w.Line("QUIT")
	_ = b.w.Flush()
	b.conn.Close()
}
