package node

import "testing"

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
