package lmtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rookery/rookery/listeners/frontend"
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
// With tlsConf it takes up the backend's STARTTLS first when the server
// name asks for it ("host:port/tls") or when the backend offers no AUTH
// PLAIN in the clear, as Cyrus's backend connection does.
func dialBackend(ctx context.Context, server, addr string, tlsConf *tls.Config, helo, authname, password string, connectTimeout, timeout time.Duration) (*lmtpBackend, error) {
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
	if tlsConf != nil && tlsConf.ServerName == "" {
		tlsConf = tlsConf.Clone()
		tlsConf.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if err := b.login(helo, authname, password, tlsConf, frontend.WantsTLS(server)); err != nil {
		b.conn.Close()
		return nil, fmt.Errorf("lmtp: backend %s: %w", server, err)
	}
	return b, nil
}

func (b *lmtpBackend) login(helo, authname, password string, tlsConf *tls.Config, requireTLS bool) error {
	greet, err := b.r.ReadReply()
	if err != nil {
		return err
	}
	if greet.Code != 220 {
		return fmt.Errorf("greeting %s", greet)
	}
	ext, err := b.lhlo(helo)
	if err != nil {
		return err
	}
	switch {
	case tlsConf != nil && ext.starttls && (requireTLS || !ext.plain):
		if err := b.startTLS(tlsConf); err != nil {
			return err
		}
		if ext, err = b.lhlo(helo); err != nil {
			return err
		}
	case requireTLS && tlsConf == nil:
		return errors.New("server name asks for TLS (/tls), which this frontend does not speak to backends")
	case requireTLS:
		return errors.New("server name asks for TLS (/tls), and the backend offers no STARTTLS")
	}
	if ext.auth && !ext.plain {
		return fmt.Errorf("no AUTH PLAIN offered (%s)", ext.mechs)
	}
	if !ext.auth {
		return nil // a backend that trusts its clients (Cyrus lmtpd -a)
	}
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + authname + "\x00" + password))
	rep, err := b.cmd("AUTH PLAIN " + ir)
	if err != nil {
		return err
	}
	if rep.Code != 235 {
		return fmt.Errorf("proxy login refused: %s", rep)
	}
	return nil
}

// extensions is what a backend's LHLO reply offers.
type extensions struct {
	starttls, auth, plain bool
	mechs                 string
}

// lhlo says LHLO and reads what the backend offers.
func (b *lmtpBackend) lhlo(helo string) (extensions, error) {
	var ext extensions
	rep, err := b.cmd("LHLO " + helo)
	if err != nil {
		return ext, err
	}
	if rep.Code != 250 {
		return ext, fmt.Errorf("LHLO: %s", rep)
	}
	for _, l := range rep.Lines[1:] {
		kw, args, _ := strings.Cut(strings.ToUpper(l), " ")
		switch kw {
		case "PIPELINING":
			b.pipeline = true
		case "STARTTLS":
			ext.starttls = true
		case "AUTH":
			ext.auth, ext.mechs = true, args
			ext.plain = strings.Contains(" "+args+" ", " PLAIN ")
		}
	}
	return ext, nil
}

// startTLS takes up the backend's STARTTLS (RFC 3207); the backend then
// forgets the LHLO, so the caller says it again.
func (b *lmtpBackend) startTLS(conf *tls.Config) error {
	rep, err := b.cmd("STARTTLS")
	if err != nil {
		return err
	}
	if rep.Code != 220 {
		return fmt.Errorf("STARTTLS: %s", rep)
	}
	if b.r.Buffered() > 0 {
		return errors.New("STARTTLS: backend sent more after its reply")
	}
	tc := tls.Client(b.conn, conf)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("STARTTLS: %w", err)
	}
	b.conn = tc
	b.r = NewReader(bufio.NewReaderSize(tc, 4096), 4096)
	b.w = NewWriter(bufio.NewWriterSize(tc, 4096))
	b.pipeline = false
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
