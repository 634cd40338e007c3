package pop3_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/pop3"
)

// firstReply dials addr and returns the client with the first reply.
func firstReply(t *testing.T, addr string) (*client, pop3.Reply) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := &client{t: t, conn: conn.(*net.TCPConn), r: pop3.NewReader(bufio.NewReader(conn), 1000), w: pop3.NewWriter(bufio.NewWriter(conn))}
	rep, err := c.r.ReadReply()
	if err != nil {
		t.Fatalf("first reply: %v", err)
	}
	return c, rep
}

// TestServerStrangersLeaveRoomForLogins: connections that never log in,
// as many as MaxConns, keep no user out, and one that does not log in
// within LoginTimeout is let go however busy it keeps itself.
func TestServerStrangersLeaveRoomForLogins(t *testing.T) {
	e := startSrv(t, t.TempDir(), func(c *pop3.ServerConfig) {
		c.MaxConns = 4
		c.LoginTimeout = 500 * time.Millisecond
	})
	e.deliver("bob", srvMessage("hi"))
	var strangers []*popClient
	for range 4 {
		strangers = append(strangers, e.dial())
	}
	for _, s := range strangers[:2] {
		if rep := s.reply(); rep.OK || rep.Text != "[SYS/TEMP] Login timeout" {
			t.Fatalf("stranger pushed out: %+v", rep)
		}
	}
	u := e.dial()
	u.login("bob", "bobpw")
	s := strangers[3]
	for i := 0; ; i++ {
		rep := s.cmd("NOOP")
		if rep.Text == "[SYS/TEMP] Login timeout" {
			break
		}
		if rep.Text != "Not logged in" || i > 500 {
			t.Fatalf("stranger's NOOP %d: %+v", i, rep)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Logged in as long as the stranger was there, the user is not cut.
	u.ok("STAT")
}

// TestProxyMaxConnsPerUser: a user at MaxConnsPerUser sessions is
// refused one more login with a temporary error.
func TestProxyMaxConnsPerUser(t *testing.T) {
	c, _ := setup(t, make(chan string, 2), pop3.Limits{MaxConnsPerUser: 1})
	c.login()
	d, _ := firstReply(t, c.conn.RemoteAddr().String())
	d.cmd("USER alice")
	if rep := d.cmd("PASS a"); rep.OK || rep.Text != "[SYS/TEMP] Too many open connections for this user" {
		t.Fatalf("second login of alice: %+v", rep)
	}
}

// TestProxyMaxConnsPerHost: one IP address gets MaxConnsPerHost
// connections; one more is told why instead of being greeted.
func TestProxyMaxConnsPerHost(t *testing.T) {
	c, _ := setup(t, make(chan string, 1), pop3.Limits{MaxConnsPerHost: 1})
	_, rep := firstReply(t, c.conn.RemoteAddr().String())
	if rep.OK || !strings.HasPrefix(rep.Text, "[SYS/TEMP] Too many connections from your address") {
		t.Fatalf("second connection: %+v", rep)
	}
	c.login()
}

// TestServerFailedMaildropStaysUnauthenticated: a right password whose
// maildrop cannot be opened leaves the connection not logged in, so the
// login deadline still ends it (found in review: it was counted as
// logged in before the maildrop opened).
func TestServerFailedMaildropStaysUnauthenticated(t *testing.T) {
	e := startSrv(t, t.TempDir(), func(c *pop3.ServerConfig) {
		c.LoginTimeout = 500 * time.Millisecond
	})
	c := e.dial()
	c.ok("USER bob")
	if rep := c.cmd("PASS bobpw"); rep.OK || !strings.Contains(rep.Text, "Unable to open maildrop") {
		t.Fatalf("PASS without an INBOX: %+v", rep)
	}
	if rep := c.reply(); rep.OK || rep.Text != "[SYS/TEMP] Login timeout" {
		t.Fatalf("after the failed maildrop: %+v, want the login timeout", rep)
	}
}
