package imap

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/selfsigned"
)

// rawConn is a line client for what imapclient would not send.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc := &rawConn{t: t, c: c, r: bufio.NewReader(c)}
	rc.expect("* OK")
	return rc
}

func (rc *rawConn) expect(prefix string) {
	rc.t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := rc.r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, prefix) {
		rc.t.Fatalf("want %q..., got %q, %v", prefix, l, err)
	}
}

func (rc *rawConn) cmd(line, prefix string) {
	rc.t.Helper()
	if _, err := rc.c.Write([]byte(line + "\r\n")); err != nil {
		rc.t.Fatal(err)
	}
	rc.expect(prefix)
}

func serverTLS(t *testing.T) *tls.Config {
	t.Helper()
	c, err := selfsigned.New("127.0.0.1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c}}
}

// TestSTARTTLSRefusals: STARTTLS without TLS configured, with arguments,
// and after login is refused, and the session goes on.
func TestSTARTTLSRefusals(t *testing.T) {
	plain := startEnv(t, t.TempDir(), nil)
	c := dialRaw(t, plain.addr)
	c.cmd("a STARTTLS", "a BAD STARTTLS not available")
	c.cmd("b NOOP", "b OK")

	e := startEnv(t, t.TempDir(), func(c *Config) { c.TLS = serverTLS(t) })
	c = dialRaw(t, e.addr)
	c.cmd("a STARTTLS now", "a BAD")
	c.cmd("b LOGIN alice alicepw", "b OK")
	c.cmd("c STARTTLS", "c BAD Already authenticated")
	c.cmd("d NOOP", "d OK")
}

// TestSTARTTLSHandshakeTimeout: a client that takes STARTTLS and then
// sends nothing is let go after the handshake timeout, not held for the
// idle timeout.
func TestSTARTTLSHandshakeTimeout(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) {
		c.TLS = serverTLS(t)
		c.HandshakeTimeout = 200 * time.Millisecond
	})
	c := dialRaw(t, e.addr)
	c.cmd("a STARTTLS", "a OK")
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := c.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("want the connection closed, got %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("closed after %v", d)
	}
}
