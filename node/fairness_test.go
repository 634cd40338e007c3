package node

import (
	"testing"
	"time"

	"github.com/rookery/rookery/store"
)

// TestFrontendConnectionCaps: maxlogins_per_user and maxconns_per_host,
// read as a config file's keys, reach the frontend's IMAP and POP3
// listeners, each of which counts on its own (as Cyrus counts per
// service); each refusal is told to the client and counted by reason.
func TestFrontendConnectionCaps(t *testing.T) {
	m := clusterNode(t, "master.test", []Role{RoleMaster}, "")
	fe := frontendNode(t, m.GossipAddr(), func(c *Config) {
		c.POP3Listen = "127.0.0.1:0"
		if _, err := c.Apply(map[string]string{"maxlogins_per_user": "1", "maxconns_per_host": "2"}); err != nil {
			t.Fatal(err)
		}
	})
	a := dialText(t, fe.IMAPAddr())
	a.expect("* OK")
	imapCmd(t, a, "a", "LOGIN alice alicepw", "OK")
	b := dialText(t, fe.IMAPAddr())
	b.expect("* OK")
	b.cmd("b LOGIN alice alicepw", "b NO [LIMIT] Too many open connections")
	dialText(t, fe.IMAPAddr()).expect("* BYE [UNAVAILABLE] Too many open connections from your address")
	// POP3 has caps of its own: two connections from 127.0.0.1 besides
	// IMAP's, not three.
	dialText(t, fe.POP3Addr()).expect("+OK")
	dialText(t, fe.POP3Addr()).expect("+OK")
	dialText(t, fe.POP3Addr()).expect("-ERR [SYS/TEMP] Too many connections from your address")
	checkMetrics(t, fe, "after the refusals",
		want{"rookery_connections_refused_total", []string{"listener", "imapproxy", "reason", "user"}, 1},
		want{"rookery_connections_refused_total", []string{"listener", "imapproxy", "reason", "host"}, 1},
		want{"rookery_connections_refused_total", []string{"listener", "pop3proxy", "reason", "host"}, 1})
}

// TestPerHostCapSparesBackends: maxconns_per_host in a config the
// backend and the frontend share caps clients at the frontend only; the
// backend sees every proxied session come from the frontend's address.
func TestPerHostCapSparesBackends(t *testing.T) {
	capOne := func(c *Config) {
		if _, err := c.Apply(map[string]string{"maxconns_per_host": "1"}); err != nil {
			t.Fatal(err)
		}
	}
	m := clusterNode(t, "master.test", []Role{RoleMaster}, "")
	users := backendUsers(t)
	be := testNode(t, t.TempDir(), func(c *Config) {
		c.ServerName, c.Roles, c.UsersFile = "be1.test", []Role{RoleBackend}, users
		c.Admins, c.ProxyServers = []string{"admin", "mupdate"}, []string{"proxy"}
		c.MUPDATEAuthname, c.MUPDATEPassword = "mupdate", "mupdatepw"
		c.IMAPListen, c.GossipListen, c.GossipPreset = "127.0.0.1:0", "127.0.0.1:0", "local"
		c.Join = []string{m.GossipAddr()}
		c.MUPDATERetryDelay = 300 * time.Millisecond
	}, capOne)
	admin := imapLogin(t, be.IMAPAddr(), "admin", "secret")
	waitFor(t, "CREATE user.alice", func() bool { return admin.Create("user.alice", nil).Wait() == nil })
	fe := frontendNode(t, m.GossipAddr(), capOne)
	waitEntry(t, fe, "user.alice", func(e store.Entry, found bool) bool { return found && e.Kind == store.Active })
	waitFor(t, "the frontend to see the backend", func() bool { return len(alive(fe)) == 3 })

	for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		c := dialAuthFrom(t, src, fe.IMAPAddr())
		wantPrefix(t, "LOGIN from "+src, c.ask("a LOGIN alice alicepw", "a "), "a OK")
		wantPrefix(t, "SELECT from "+src, c.ask("b SELECT INBOX", "b "), "b OK")
	}
}
