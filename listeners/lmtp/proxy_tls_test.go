package lmtp_test

import (
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/selfsigned"
	"github.com/rookery/rookery/listeners/lmtp"
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

// startTLS takes up the proxy's STARTTLS.
func (m *mta) startTLS() {
	m.t.Helper()
	m.want(220, "STARTTLS")
	tc := tls.Client(m.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		m.t.Fatal(err)
	}
	m.setConn(tc)
}

var adminPlain = base64.StdEncoding.EncodeToString([]byte("\x00admin\x00secret"))

// With TLS configured and plaintext not allowed, AUTH waits for
// STARTTLS.
func TestProxyAuthNeedsTLS(t *testing.T) {
	m, one, _ := setupWith(t, fakeOptions{}, func(c *lmtp.ProxyConfig) { c.TLS = selfSigned(t) })
	lhlo := m.want(250, "LHLO mta")
	if !strings.Contains(lhlo.Text(), "STARTTLS") || strings.Contains(lhlo.Text(), "AUTH") {
		t.Errorf("LHLO before TLS: %s", lhlo)
	}
	if rep := m.want(538, "AUTH PLAIN "+adminPlain); !strings.HasPrefix(rep.Text(), "5.7.11") {
		t.Errorf("AUTH before TLS: %s", rep)
	}
	m.want(538, "AUTH PLAIN") // no prompt for the credentials either
	m.want(530, "MAIL FROM:<x@y>")
	m.startTLS()
	m.want(503, "MAIL FROM:<x@y>") // LHLO again after STARTTLS
	lhlo = m.want(250, "LHLO mta")
	if strings.Contains(lhlo.Text(), "STARTTLS") || !strings.Contains(lhlo.Text(), "AUTH PLAIN") {
		t.Errorf("LHLO under TLS: %s", lhlo)
	}
	m.want(235, "AUTH PLAIN "+adminPlain)
	m.want(250, "MAIL FROM:<x@y>")
	m.want(250, "RCPT TO:<alice@x>")
	m.send("secret")
	if rep := m.reply(); rep.Code != 250 {
		t.Fatalf("delivery: %s", rep)
	}
	received(t, "one", one, []string{"x@y"}, "alice@x:secret\r\n")
}

// STARTTLS forgets an authentication made before it (RFC 3207).
func TestProxyStartTLSForgetsAuth(t *testing.T) {
	m, _, _ := setupWith(t, fakeOptions{}, func(c *lmtp.ProxyConfig) {
		c.TLS = selfSigned(t)
		c.AllowPlaintext = true
	})
	lhlo := m.want(250, "LHLO mta")
	if !strings.Contains(lhlo.Text(), "STARTTLS") || !strings.Contains(lhlo.Text(), "AUTH PLAIN") {
		t.Errorf("LHLO with plaintext allowed: %s", lhlo)
	}
	m.want(235, "AUTH PLAIN "+adminPlain)
	m.startTLS()
	if lhlo := m.want(250, "LHLO mta"); !strings.Contains(lhlo.Text(), "AUTH PLAIN") {
		t.Errorf("LHLO after STARTTLS: %s", lhlo)
	}
	m.want(530, "MAIL FROM:<x@y>")
	m.want(235, "AUTH PLAIN "+adminPlain)
	m.want(250, "MAIL FROM:<x@y>")
}
