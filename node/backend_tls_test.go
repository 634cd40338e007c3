package node

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// tlsBackend is the default node (master, backend) with every listener
// on loopback, the implicit-TLS ones too, and plaintext logins allowed
// nowhere before TLS (loopback counts as nothing special).
func tlsBackend(t *testing.T, mutate ...func(*Config)) *Node {
	t.Helper()
	return backendNode(t, t.TempDir(), "be.test", "", append([]func(*Config){func(c *Config) {
		c.IMAPSListen = "127.0.0.1:0"
		c.POP3SListen = "127.0.0.1:0"
		c.AllowPlaintext = false
		c.PlaintextLoopback = false
	}}, mutate...)...)
}

var insecureTLS = &tls.Config{InsecureSkipVerify: true}

func imapsLogin(t *testing.T, addr, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: insecureTLS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// expectClosed wants the server to have closed the connection.
func (l *lineConn) expectClosed() {
	l.t.Helper()
	_ = l.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if s, err := l.r.ReadString('\n'); err == nil {
		l.t.Fatalf("want the connection closed, got %q", s)
	} else if !errors.Is(err, io.EOF) {
		l.t.Fatalf("want the connection closed: %v", err)
	}
}

// TestBackendIMAPTLS: STARTTLS and imaps on a backend's own IMAP server,
// with go-imap's client; LOGIN and AUTHENTICATE PLAIN refused before TLS
// (LOGINDISABLED announced), the capabilities changed after it, STARTTLS
// refused where TLS is already on.
func TestBackendIMAPTLS(t *testing.T) {
	n := tlsBackend(t)
	admin := imapsLogin(t, n.IMAPSAddr(), "admin", "secret")
	if err := admin.Create("user.alice", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	c := dialLines(t, n.IMAPAddr())
	greeting := c.expect("* OK")
	for _, want := range []string{"STARTTLS", "LOGINDISABLED"} {
		if !strings.Contains(greeting, want) {
			t.Errorf("greeting without %s: %q", want, greeting)
		}
	}
	if strings.Contains(greeting, "AUTH=PLAIN") {
		t.Errorf("greeting offers AUTH=PLAIN before TLS: %q", greeting)
	}
	c.cmd("a LOGIN alice alicepw", "a NO [PRIVACYREQUIRED]")
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alicepw"))
	c.cmd("b AUTHENTICATE PLAIN "+plain, "b NO [PRIVACYREQUIRED]")
	c.cmd("c SELECT INBOX", "c BAD")

	st, err := imapclient.DialStartTLS(n.IMAPAddr(), &imapclient.Options{TLSConfig: insecureTLS})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer st.Close()
	caps, err := st.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if caps.Has(imap.CapStartTLS) || caps.Has(imap.CapLoginDisabled) || !caps.Has(imap.AuthCap("PLAIN")) {
		t.Errorf("capabilities after STARTTLS: %v", caps)
	}
	if err := st.Login("alice", "alicepw").Wait(); err != nil {
		t.Fatalf("LOGIN after STARTTLS: %v", err)
	}
	if err := st.Create("INBOX.tls", nil).Wait(); err != nil {
		t.Errorf("CREATE over TLS: %v", err)
	}

	s, err := imapclient.DialTLS(n.IMAPSAddr(), &imapclient.Options{TLSConfig: insecureTLS})
	if err != nil {
		t.Fatalf("imaps: %v", err)
	}
	defer s.Close()
	if caps := s.Caps(); caps.Has(imap.CapStartTLS) || caps.Has(imap.CapLoginDisabled) {
		t.Errorf("imaps greeting capabilities: %v", caps)
	}
	if err := s.Login("alice", "alicepw").Wait(); err != nil {
		t.Fatalf("LOGIN on imaps: %v", err)
	}
	if _, err := s.Select("INBOX.tls", nil).Wait(); err != nil {
		t.Errorf("SELECT on imaps: %v", err)
	}

	raw := dialLines(t, n.IMAPSAddr())
	raw.startTLS(t)
	raw.expect("* OK")
	raw.cmd("a STARTTLS", "a BAD")
	raw.cmd("b LOGIN alice alicepw", "b OK")
}

// TestBackendSTARTTLSInjection: commands pipelined behind STARTTLS in
// the clear are never run, under TLS or otherwise: the connection ends.
func TestBackendSTARTTLSInjection(t *testing.T) {
	n := tlsBackend(t, func(c *Config) { c.AllowPlaintext = true })

	c := dialLines(t, n.IMAPAddr())
	c.expect("* OK")
	c.send("a STARTTLS\r\nb LOGIN alice alicepw")
	c.expect("* BYE")
	c.expect("a BAD")
	c.expectClosed()

	// A client that is no TLS client after all is let go, not served.
	c = dialLines(t, n.IMAPAddr())
	c.expect("* OK")
	c.cmd("a STARTTLS", "a OK")
	c.send("b LOGIN alice alicepw")
	c.expectClosed()

	p := dialLines(t, n.POP3Addr())
	p.expect("+OK")
	p.send("STLS\r\nUSER alice")
	p.expect("-ERR")
	p.expectClosed()

	l := dialLines(t, n.LMTPAddr())
	l.expect("220")
	l.multi("LHLO test")
	l.send("STARTTLS\r\nMAIL FROM:<evil@example.com>")
	l.expect("554")
	l.expectClosed()
}

// TestBackendPlaintextPolicy: allowplaintext lets LOGIN through before
// TLS; without it, a loopback client may log in in plaintext only while
// allowplaintext_loopback is on (the default), as frontends do.
func TestBackendPlaintextPolicy(t *testing.T) {
	for _, tc := range []struct {
		name            string
		plain, loopback bool
		want            string
	}{
		{"allowplaintext", true, false, "a OK"},
		{"loopback", false, true, "a OK"},
		{"neither", false, false, "a NO"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tlsBackend(t, func(c *Config) { c.AllowPlaintext, c.PlaintextLoopback = tc.plain, tc.loopback })
			c := dialLines(t, n.IMAPAddr())
			greeting := c.expect("* OK")
			if ok := strings.Contains(greeting, "AUTH=PLAIN"); ok != (tc.want == "a OK") {
				t.Errorf("greeting: %q", greeting)
			}
			c.cmd("a LOGIN alice alicepw", tc.want)
		})
	}
}

// TestBackendPOP3TLS: STLS and pop3s on a backend's POP3 server; USER,
// PASS and AUTH refused before TLS and CAPA changed after it.
func TestBackendPOP3TLS(t *testing.T) {
	n := tlsBackend(t)
	admin := imapsLogin(t, n.IMAPSAddr(), "admin", "secret")
	if err := admin.Create("user.alice", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	p := dialLines(t, n.POP3Addr())
	p.expect("+OK")
	capa := p.multi("CAPA")
	if !strings.Contains(capa, "STLS") || strings.Contains(capa, "USER") || strings.Contains(capa, "SASL PLAIN") {
		t.Errorf("CAPA before TLS: %q", capa)
	}
	p.cmd("USER alice", "-ERR [AUTH]")
	p.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00alicepw")), "-ERR [AUTH]")
	p.cmd("STLS", "+OK")
	p.startTLS(t)
	capa = p.multi("CAPA")
	if strings.Contains(capa, "STLS") || !strings.Contains(capa, "USER") {
		t.Errorf("CAPA after STLS: %q", capa)
	}
	p.cmd("STLS", "-ERR")
	p.cmd("USER alice", "+OK")
	p.cmd("PASS alicepw", "+OK")
	p.cmd("QUIT", "+OK")

	s := dialLines(t, n.POP3SAddr())
	s.startTLS(t)
	s.expect("+OK")
	if capa := s.multi("CAPA"); strings.Contains(capa, "STLS") || !strings.Contains(capa, "USER") {
		t.Errorf("CAPA on pop3s: %q", capa)
	}
	s.cmd("STLS", "-ERR")
	s.cmd("USER alice", "+OK")
	s.cmd("PASS alicepw", "+OK")
}

// TestBackendLMTPTLS: STARTTLS on a backend's LMTP server; with
// lmtp_require_auth, AUTH is neither offered nor accepted before TLS,
// and after it a proxy server authenticates and delivers.
func TestBackendLMTPTLS(t *testing.T) {
	n := tlsBackend(t, func(c *Config) { c.LMTPRequireAuth = true })
	admin := imapsLogin(t, n.IMAPSAddr(), "admin", "secret")
	if err := admin.Create("user.alice", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00proxy\x00proxypw"))

	l := dialLines(t, n.LMTPAddr())
	l.expect("220")
	ext := l.multi("LHLO test")
	if !strings.Contains(ext, "STARTTLS") || strings.Contains(ext, "AUTH") {
		t.Errorf("LHLO before TLS: %q", ext)
	}
	l.cmd("AUTH PLAIN "+plain, "538 5.7.11")
	l.cmd("MAIL FROM:<a@example.com>", "530")
	l.cmd("STARTTLS", "220")
	l.startTLS(t)
	l.cmd("MAIL FROM:<a@example.com>", "503") // LHLO forgotten
	ext = l.multi("LHLO test")
	if strings.Contains(ext, "STARTTLS") || !strings.Contains(ext, "AUTH PLAIN") {
		t.Errorf("LHLO after STARTTLS: %q", ext)
	}
	l.cmd("STARTTLS", "502")
	l.cmd("AUTH PLAIN "+plain, "235")
	l.cmd("MAIL FROM:<a@example.com>", "250")
	l.cmd("RCPT TO:<alice@be.test>", "250")
	l.cmd("DATA", "354")
	l.send("Subject: over TLS\r\n\r\nhello\r\n.")
	l.expect("250")

	alice := imapsLogin(t, n.IMAPSAddr(), "alice", "alicepw")
	st, err := alice.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil || *st.NumMessages != 1 {
		t.Errorf("user.alice after delivery: %+v, %v", st, err)
	}
}
