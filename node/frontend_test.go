package node

import (
	"bufio"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/store"
)

// frontendNode starts a frontend+replica that finds its master and the
// backends' addresses by gossip.
func frontendNode(t *testing.T, join string, mutate ...func(*Config)) *Node {
	t.Helper()
	users := backendUsers(t)
	return testNode(t, t.TempDir(), append([]func(*Config){func(c *Config) {
		c.ServerName = "fe.test"
		c.Roles = []Role{RoleFrontend, RoleReplica}
		c.MUPDATEAuthname, c.MUPDATEPassword = "mupdate", "mupdatepw"
		c.MUPDATERetryDelay = 300 * time.Millisecond
		c.IMAPListen = "127.0.0.1:0"
		c.GossipListen, c.GossipPreset, c.Join = "127.0.0.1:0", "local", []string{join}
		c.UsersFile = users
		c.Admins = []string{"admin", "mupdate"}
		c.ProxyPassword = "proxypw"
		c.AllowPlaintext = true
	}}, mutate...)...)
}

// TestFrontendOneProcess: master, two Rookery backends and a frontend in
// one process, assembled by gossip; users on different backends see one
// namespace.
func TestFrontendOneProcess(t *testing.T) {
	m := clusterNode(t, "master.test", []Role{RoleMaster}, "")
	b1 := clusterNode(t, "be1.test", []Role{RoleBackend}, "", m.GossipAddr())
	b2 := clusterNode(t, "be2.test", []Role{RoleBackend}, "", m.GossipAddr())
	for _, x := range []struct {
		b   *Node
		mbs []string
	}{{b1, []string{"user.alice", "user.alice.work"}}, {b2, []string{"user.bob", "shared"}}} {
		c := imapLogin(t, x.b.IMAPAddr(), "admin", "secret")
		for _, mb := range x.mbs {
			waitFor(t, "CREATE "+mb, func() bool { return c.Create(mb, nil).Wait() == nil })
		}
	}
	if err := imapLogin(t, b2.IMAPAddr(), "admin", "secret").SetACL("shared", imap.RightsIdentifierAnyone, imap.RightModificationReplace, imap.RightSet("lrswipkxtecda")).Wait(); err != nil {
		t.Fatal(err)
	}
	fe := frontendNode(t, m.GossipAddr())
	waitEntry(t, fe, "shared", func(e store.Entry, found bool) bool { return found && strings.Contains(e.ACL, "anyone") })
	waitFor(t, "the frontend to see both backends", func() bool { return len(alive(fe)) == 4 })

	alice := imapLogin(t, fe.IMAPAddr(), "alice", "alicepw")
	list, err := alice.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
	}
	for _, want := range []string{"INBOX", "INBOX.work", "shared"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("LIST through the frontend: %v lacks %s", names, want)
		}
	}
	msg := "Subject: hello\r\n\r\nfrom alice\r\n"
	appendMsg(t, alice, "INBOX", msg)
	if _, err := alice.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// COPY across backends: alice's INBOX on be1 to shared on be2.
	if _, err := alice.Copy(imap.SeqSetNum(1), "shared").Wait(); err != nil {
		t.Fatalf("COPY across backends: %v", err)
	}
	sh, _, _ := b2.Mail().Mailbox("shared")
	if sh.Exists != 1 {
		t.Errorf("shared on be2 has %d messages after COPY", sh.Exists)
	}
	if _, err := alice.Select("shared", nil).Wait(); err != nil {
		t.Fatalf("SELECT shared (on be2): %v", err)
	}
	fetched, err := alice.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil || len(fetched) != 1 || !strings.Contains(string(fetched[0].FindBodySection(&imap.FetchItemBodySection{})), "from alice") {
		t.Fatalf("FETCH from be2 through the frontend: %v %v", fetched, err)
	}

	// IDLE through the proxy, woken by LMTP delivery through the frontend.
	if _, err := alice.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	got := make(chan uint32, 4)
	idler, err := imapclient.DialInsecure(fe.IMAPAddr(), &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				got <- *d.NumMessages
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer idler.Close()
	if err := idler.Login("alice", "alicepw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := idler.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := idler.Idle()
	if err != nil {
		t.Fatal(err)
	}
	lmtpSend(t, fe.LMTPAddr(), "alice", "Subject: via lmtp\r\n\r\nhi\r\n")
	select {
	case n := <-got:
		if n != 2 {
			t.Errorf("IDLE saw %d messages, want 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("IDLE through the frontend was not woken by the LMTP delivery")
	}
	idle.Close()

	// POP3 through the frontend reaches alice's INBOX on be1.
	p := dialText(t, fe.POP3Addr())
	p.expect("+OK")
	p.cmd("USER alice", "+OK")
	p.cmd("PASS alicepw", "+OK")
	if stat := p.cmd("STAT", "+OK"); !strings.HasPrefix(stat, "+OK 2 ") {
		t.Errorf("POP3 STAT through the frontend: %q", stat)
	}
	p.cmd("QUIT", "+OK")

	// A frontend with "password_check: backend" and no users of its own
	// checks alice's password at be1, for IMAP and POP3.
	fe2 := frontendNode(t, m.GossipAddr(), func(c *Config) {
		c.ServerName = "fe2.test"
		c.UsersFile = ""
		c.PasswordCheck = []string{"backend"}
	})
	waitEntry(t, fe2, "user.alice", func(_ store.Entry, found bool) bool { return found })
	waitFor(t, "fe2 to see every node", func() bool { return len(alive(fe2)) == 5 })
	if _, err := imapLogin(t, fe2.IMAPAddr(), "alice", "alicepw").Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT after a login checked at be1: %v", err)
	}
	c, err := imapclient.DialInsecure(fe2.IMAPAddr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "wrong").Wait(); err == nil {
		t.Error("fe2 accepted a wrong password")
	}
	p = dialText(t, fe2.POP3Addr())
	p.expect("+OK")
	p.cmd("USER alice", "+OK")
	p.cmd("PASS alicepw", "+OK")
}

func appendMsg(t *testing.T, c *imapclient.Client, mailbox, msg string) {
	t.Helper()
	w := c.Append(mailbox, int64(len(msg)), nil)
	if _, err := w.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Wait(); err != nil {
		t.Fatalf("APPEND %s: %v", mailbox, err)
	}
}

type textConn struct {
	t *testing.T
	*textproto.Conn
}

func dialText(t *testing.T, addr string) *textConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &textConn{t: t, Conn: textproto.NewConn(c)}
}

func (c *textConn) expect(prefix string) string {
	c.t.Helper()
	l, err := c.ReadLine()
	if err != nil || !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("want %q..., got %q %v", prefix, l, err)
	}
	return l
}

func (c *textConn) cmd(line, prefix string) string {
	c.t.Helper()
	if err := c.PrintfLine("%s", line); err != nil {
		c.t.Fatal(err)
	}
	return c.expect(prefix)
}

// lmtpSend delivers one message to rcpt over LMTP, without AUTH.
func lmtpSend(t *testing.T, addr, rcpt, msg string) {
	t.Helper()
	c := dialText(t, addr)
	c.expect("220")
	if err := c.PrintfLine("LHLO test"); err != nil {
		t.Fatal(err)
	}
	for {
		l := c.expect("250")
		if strings.HasPrefix(l, "250 ") {
			break
		}
	}
	c.cmd("MAIL FROM:<sender@example.org>", "250")
	c.cmd(fmt.Sprintf("RCPT TO:<%s>", rcpt), "250")
	c.cmd("DATA", "354")
	w := c.DotWriter()
	bw := bufio.NewWriter(w)
	bw.WriteString(msg)
	bw.Flush()
	w.Close()
	c.expect("250")
	c.cmd("QUIT", "221")
}
