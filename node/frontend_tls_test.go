package node

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"
)

// TestFrontendSTARTTLS: POP3 STLS and LMTP STARTTLS on a frontend with its
// default self-signed certificate; plaintext login refused before TLS.
func TestFrontendSTARTTLS(t *testing.T) {
	m := clusterNode(t, "master.test", []Role{RoleMaster}, "")
	fe := frontendNode(t, m.GossipAddr(), func(c *Config) { c.AllowPlaintext = false })

	// POP3
	p := dialLines(t, fe.POP3Addr())
	p.expect("+OK")
	capa := p.multi("CAPA")
	if !strings.Contains(capa, "STLS") {
		t.Fatalf("POP3 CAPA without STLS: %q", capa)
	}
	p.cmd("USER alice", "-ERR")
	p.cmd("STLS", "+OK")
	p.startTLS(t)
	if capa := p.multi("CAPA"); strings.Contains(capa, "STLS") {
		t.Errorf("POP3 CAPA over TLS still offers STLS: %q", capa)
	}
	p.cmd("USER alice", "+OK")

	// LMTP
	l := dialLines(t, fe.LMTPAddr())
	l.expect("220")
	if ext := l.multi("LHLO test"); !strings.Contains(ext, "STARTTLS") {
		t.Fatalf("LMTP LHLO without STARTTLS: %q", ext)
	}
	l.cmd("STARTTLS", "220")
	l.startTLS(t)
	if ext := l.multi("LHLO test"); strings.Contains(ext, "STARTTLS") {
		t.Errorf("LMTP LHLO over TLS still offers STARTTLS: %q", ext)
	}
}

type lineConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialLines(t *testing.T, addr string) *lineConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &lineConn{t: t, c: c, r: bufio.NewReader(c)}
}

func (l *lineConn) line() string {
	l.t.Helper()
	_ = l.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	s, err := l.r.ReadString('\n')
	if err != nil {
		l.t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(s, "\r\n")
}

func (l *lineConn) expect(prefix string) string {
	l.t.Helper()
	s := l.line()
	if !strings.HasPrefix(s, prefix) {
		l.t.Fatalf("want %q..., got %q", prefix, s)
	}
	return s
}

func (l *lineConn) send(s string) {
	l.t.Helper()
	if _, err := l.c.Write([]byte(s + "\r\n")); err != nil {
		l.t.Fatal(err)
	}
}

func (l *lineConn) cmd(s, prefix string) string {
	l.t.Helper()
	l.send(s)
	return l.expect(prefix)
}

// multi sends a command with a multi-line answer: POP3's "+OK ... ." or
// SMTP-style "250-... 250 ...".
func (l *lineConn) multi(s string) string {
	l.t.Helper()
	l.send(s)
	var out []string
	for {
		line := l.line()
		out = append(out, line)
		pop3 := strings.HasPrefix(out[0], "+OK")
		switch {
		case strings.HasPrefix(line, "-ERR"),
			pop3 && line == ".",
			!pop3 && len(line) >= 4 && line[3] == ' ':
			return strings.Join(out, "\n")
		}
	}
}

func (l *lineConn) startTLS(t *testing.T) {
	t.Helper()
	tc := tls.Client(l.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	l.c, l.r = tc, bufio.NewReader(tc)
}
