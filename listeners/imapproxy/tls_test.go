package imapproxy_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/selfsigned"
	"github.com/rookery/rookery/listeners/imapproxy"
)

// selfSigned makes a certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	c, err := selfsigned.New("127.0.0.1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c}}
}

func TestStartTLS(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	srvTLS := selfSigned(t)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()}, func(cfg *imapproxy.Config) {
		cfg.TLS = srvTLS
		cfg.AllowPlaintext = false
	})
	c := dial(t, addr)
	if u := c.ok("CAPABILITY"); !has(u, "STARTTLS") || !has(u, "LOGINDISABLED") {
		t.Errorf("CAPABILITY before TLS: %v", u)
	}
	c.ok("STARTTLS")
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	if u := c.ok("CAPABILITY"); has(u, "STARTTLS") || has(u, "LOGINDISABLED") || !has(u, "AUTH=PLAIN") {
		t.Errorf("CAPABILITY under TLS: %v", u)
	}
	c.ok("LOGIN alice alicepw")
	c.ok("SELECT INBOX")
}

// TestCapabilityAfterLogin: once logged in, neither STARTTLS nor the
// login mechanisms are offered, since neither may be used then.
func TestCapabilityAfterLogin(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()}, func(cfg *imapproxy.Config) {
		cfg.TLS = selfSigned(t)
	})
	c := dial(t, addr)
	if u := c.ok("CAPABILITY"); !has(u, "STARTTLS") || !has(u, "AUTH=PLAIN") {
		t.Errorf("CAPABILITY before login: %v", u)
	}
	_, loggedIn := c.cmd("LOGIN alice alicepw")
	for _, u := range [][]string{{loggedIn}, c.ok("CAPABILITY")} {
		if has(u, "STARTTLS") || has(u, "AUTH=") || !has(u, "IDLE") {
			t.Errorf("capabilities after login: %v", u)
		}
	}
	if _, tagged := c.cmd("STARTTLS"); !strings.HasPrefix(tagged, "BAD") {
		t.Errorf("STARTTLS after login: %s", tagged)
	}
}

func TestImplicitTLS(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	srvTLS := selfSigned(t)
	var srv *imapproxy.Server
	fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()}, func(cfg *imapproxy.Config) {
		cfg.AllowPlaintext = false
		var err error
		if srv, err = imapproxy.NewServer(*cfg); err != nil {
			t.Fatal(err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(tls.NewListener(ln, srvTLS))
	t.Cleanup(func() { srv.Close() })
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	t.Cleanup(func() { conn.Close() })
	if g := c.line(); !strings.Contains(g, "AUTH=PLAIN") {
		t.Errorf("greeting over TLS: %q", g)
	}
	c.ok("LOGIN alice alicepw")
	c.ok("SELECT INBOX")
}
