package lmtp_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/lmtp"
)

// TestServerSilentClientsDoNotHoldUpDelivery: connections that never say
// LHLO, as many as MaxConns, keep no MTA out: they fill at most half of
// it, each newcomer pushing out the oldest, and a delivery goes through.
// One that does not say LHLO within LoginTimeout is let go, however busy
// it keeps itself; an MTA past LHLO is not.
func TestServerSilentClientsDoNotHoldUpDelivery(t *testing.T) {
	e := startSrv(t, t.TempDir(), func(c *lmtp.ServerConfig) {
		c.MaxConns = 4
		c.LoginTimeout = 500 * time.Millisecond
	})
	e.create("user.alice", "alice\tlrswipkxtecda\t")
	var silent []*lmtpConn
	for range 4 {
		silent = append(silent, e.dial())
	}
	for _, s := range silent[:2] {
		if rep := s.reply(); rep.Code != 421 || !strings.Contains(rep.Text(), "Login timeout") {
			t.Fatalf("silent client pushed out: %s", rep)
		}
	}
	mta := e.dial()
	mta.want(250, "", "LHLO mta.test")
	mta.want(250, "", "MAIL FROM:<a@b>")
	mta.want(250, "", "RCPT TO:<alice>")
	if reps := mta.data(srvMsg, 1); reps[0].Code != 250 {
		t.Fatalf("delivery: %s", codes(reps))
	}
	s := silent[3]
	for i := 0; ; i++ {
		s.send("NOOP")
		rep := s.reply()
		if rep.Code == 421 && strings.Contains(rep.Text(), "Login timeout") {
			break
		}
		if rep.Code != 250 || i > 500 {
			t.Fatalf("NOOP %d before LHLO: %s", i, rep)
		}
		time.Sleep(10 * time.Millisecond)
	}
	mta.want(250, "", "NOOP")
	if got := e.bodies("user.alice"); len(got) != 1 {
		t.Errorf("%d messages stored, want 1", len(got))
	}
}

// TestProxyLoginTimeout: without Preauth, AUTH is the login: a client
// that says LHLO but does not authenticate within LoginTimeout is let
// go, however busy it keeps itself; one that authenticated, and is as
// old, is not.
func TestProxyLoginTimeout(t *testing.T) {
	m, _, _ := setupWith(t, fakeOptions{}, func(c *lmtp.ProxyConfig) { c.Limits.LoginTimeout = 500 * time.Millisecond })
	m.login()
	conn, err := net.Dial("tcp", m.conn.RemoteAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	s := &mta{t: t}
	s.setConn(conn)
	s.reply()
	s.want(250, "LHLO stranger")
	for i := 0; ; i++ {
		rep := s.cmd("NOOP")
		if rep.Code == 421 && strings.Contains(rep.Text(), "Login timeout") {
			break
		}
		if rep.Code != 250 || i > 500 {
			t.Fatalf("NOOP %d before AUTH: %s", i, rep)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m.want(250, "NOOP")
}
