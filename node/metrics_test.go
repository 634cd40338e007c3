package node

import (
	"encoding/base64"
	"runtime"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// sample is the value of the series of family name whose labels include
// the given name/value pairs; 0 when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// want is one expected sample: a family, its label pairs and its value.
type want struct {
	name   string
	labels []string
	value  float64
}

// checkMetrics scrapes n's /metrics and checks every sample.
func checkMetrics(t *testing.T, n *Node, when string, wants ...want) {
	t.Helper()
	fams := scrape(t, n.AdminAddr())
	for _, w := range wants {
		if got := sample(fams, w.name, w.labels...); got != w.value {
			t.Errorf("%s, %s: %s%v = %v, want %v", n.cfg.ServerName, when, w.name, w.labels, got, w.value)
		}
	}
}

// waitMetric polls n's /metrics until one sample has its value.
func waitMetric(t *testing.T, n *Node, w want) {
	t.Helper()
	waitFor(t, n.cfg.ServerName+" "+w.name+"{"+strings.Join(w.labels, ",")+"} to settle", func() bool {
		return sample(scrape(t, n.AdminAddr()), w.name, w.labels...) == w.value
	})
}

func cmd(name string, value float64, proto string) want {
	return want{"rookery_" + proto + "_commands_total", []string{"command", name}, value}
}

func proxied(backend, protocol string, value float64) want {
	return want{"rookery_proxied_sessions", []string{"backend", backend, "protocol", protocol}, value}
}

// TestMUPDATEMetrics: the master counts commands by name (made-up ones
// as OTHER), refused reservations, reserved entries and UPDATE streams.
func TestMUPDATEMetrics(t *testing.T) {
	n := testNode(t, t.TempDir())
	c := dialRaw(t, n.MUPDATEAddr(), true)
	c.cmd(`a RESERVE "user.x" "be1!p"`, "a OK")
	c.cmd(`b RESERVE "user.x" "be2!p"`, "b NO") // held by be1
	c.cmd(`c ACTIVATE "user.y" "be1!p" "y\tlrs\t"`, "c OK")
	c.cmd(`d FIND "user.x"`, "d OK")
	c.cmd(`e XYZZY`, "e BAD")
	c.cmd(`f eXyZzY "user.x"`, "f BAD")
	c.cmd(`g noop`, "g OK")
	stream := dialRaw(t, n.MUPDATEAddr(), true)
	stream.cmd("U01 UPDATE", `U01 OK "streaming starts"`)
	checkMetrics(t, n, "after the commands",
		cmd("AUTHENTICATE", 2, "mupdate"), cmd("RESERVE", 2, "mupdate"), cmd("ACTIVATE", 1, "mupdate"),
		cmd("FIND", 1, "mupdate"), cmd("NOOP", 1, "mupdate"), cmd("UPDATE", 1, "mupdate"),
		cmd("OTHER", 2, "mupdate"), cmd("XYZZY", 0, "mupdate"),
		want{"rookery_mupdate_conflicts_total", nil, 1},
		want{"rookery_mupdate_reservations", nil, 1},
		want{"rookery_mailboxes", nil, 2},
		want{"rookery_mupdate_update_subscribers", nil, 1},
		want{"rookery_mupdate_connections", nil, 2})

	c.cmd(`h ACTIVATE "user.x" "be1!p" "x\tlrs\t"`, "h OK")
	stream.Close()
	waitMetric(t, n, want{"rookery_mupdate_update_subscribers", nil, 0})
	checkMetrics(t, n, "after the reservation became active",
		want{"rookery_mupdate_reservations", nil, 0}, want{"rookery_mupdate_conflicts_total", nil, 1})
}

// TestMailMetrics: a frontend counts the IMAP, POP3 and LMTP commands it
// handles, the sessions it proxies to each backend while they last, and
// LMTP deliveries and deferrals; the backend counts its own.
func TestMailMetrics(t *testing.T) {
	m := clusterNode(t, "master.test", []Role{RoleMaster}, "")
	be := clusterNode(t, "be1.test", []Role{RoleBackend}, "", m.GossipAddr())
	admin := imapLogin(t, be.IMAPAddr(), "admin", "secret")
	waitFor(t, "CREATE user.alice", func() bool { return admin.Create("user.alice", nil).Wait() == nil })
	fe := frontendNode(t, m.GossipAddr())
	waitEntry(t, fe, "user.alice", activeAt("be1.test!default"))
	waitFor(t, "the frontend to see the backend", func() bool { return len(alive(fe)) == 3 })

	// IMAP: one session, proxied to be1 once it selects.
	c := dialText(t, fe.IMAPAddr())
	c.expect("* OK")
	imapCmd(t, c, "a", "LOGIN alice alicepw", "OK")
	imapCmd(t, c, "b", "SELECT INBOX", "OK")
	imapCmd(t, c, "c", "XYZZY", "BAD")
	// The proxy-session actor counts the backend connection when its
	// message arrives, not before SELECT's reply.
	waitMetric(t, fe, proxied("be1.test", "imap", 1))
	checkMetrics(t, fe, "during an IMAP session",
		cmd("LOGIN", 1, "imap"), cmd("SELECT", 1, "imap"), cmd("OTHER", 1, "imap"),
		proxied("be1.test", "imap", 1), want{"rookery_imap_connections", nil, 1})
	imapCmd(t, c, "d", "LOGOUT", "OK")
	waitMetric(t, fe, proxied("be1.test", "imap", 0))
	checkMetrics(t, fe, "after the IMAP session", cmd("LOGOUT", 1, "imap"))
	// The proxy logged in to be1 once, selected, and logged out.
	waitMetric(t, be, cmd("LOGOUT", 1, "imap"))
	checkMetrics(t, be, "after the IMAP session", cmd("AUTHENTICATE", 1, "imap"), cmd("SELECT", 1, "imap"))

	// LMTP: a delivery, then a deferral (over quota).
	lmtpSend(t, fe.LMTPAddr(), "alice", "Subject: one\r\n\r\nhi\r\n")
	waitMetric(t, fe, proxied("be1.test", "lmtp", 0))
	q := dialText(t, be.IMAPAddr())
	q.expect("* OK")
	imapCmd(t, q, "q1", "LOGIN admin secret", "OK")
	imapCmd(t, q, "q2", "SETQUOTA user.alice (STORAGE 0)", "OK")
	l := dialText(t, fe.LMTPAddr())
	l.expect("220")
	if err := l.PrintfLine("LHLO test"); err != nil {
		t.Fatal(err)
	}
	for line := ""; !strings.HasPrefix(line, "250 "); {
		line = l.expect("250")
	}
	l.cmd("MAIL FROM:<sender@example.org>", "250")
	l.cmd("RCPT TO:<alice@example.org>", "452")
	checkMetrics(t, fe, "during an LMTP session", proxied("be1.test", "lmtp", 1))
	l.cmd("QUIT", "221")
	waitMetric(t, fe, proxied("be1.test", "lmtp", 0))
	checkMetrics(t, fe, "after LMTP",
		want{"rookery_lmtp_deliveries_total", nil, 1}, want{"rookery_lmtp_deferrals_total", nil, 1},
		cmd("LHLO", 2, "lmtp"), cmd("MAIL", 2, "lmtp"), cmd("RCPT", 2, "lmtp"), cmd("DATA", 1, "lmtp"),
		cmd("QUIT", 2, "lmtp"))
	checkMetrics(t, be, "after LMTP",
		want{"rookery_lmtp_deliveries_total", nil, 1}, want{"rookery_lmtp_deferrals_total", nil, 1})

	// POP3: piped to be1 after login; the frontend sees only the login.
	p := dialText(t, fe.POP3Addr())
	p.expect("+OK")
	p.cmd("USER alice", "+OK")
	p.cmd("PASS alicepw", "+OK")
	checkMetrics(t, fe, "during a POP3 session",
		cmd("USER", 1, "pop3"), cmd("PASS", 1, "pop3"), proxied("be1.test", "pop3", 1))
	p.cmd("STAT", "+OK 1 ")
	p.cmd("QUIT", "+OK")
	waitMetric(t, fe, proxied("be1.test", "pop3", 0))
	checkMetrics(t, be, "after POP3", cmd("AUTH", 1, "pop3"), cmd("STAT", 1, "pop3"), cmd("QUIT", 1, "pop3"))
	checkMetrics(t, fe, "after POP3", cmd("STAT", 0, "pop3"))
}

// imapCmd sends a tagged IMAP command and checks the status of its tagged
// reply.
func imapCmd(t *testing.T, c *textConn, tag, line, status string) {
	t.Helper()
	if err := c.PrintfLine("%s %s", tag, line); err != nil {
		t.Fatal(err)
	}
	for {
		l, err := c.ReadLine()
		if err != nil {
			t.Fatalf("%s %s: %v", tag, line, err)
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(rest, status+" ") {
				t.Fatalf("%s %s: %q, want %s", tag, line, l, status)
			}
			return
		}
	}
}

// histogramCount is the number of observations in the histogram series of
// family name whose labels include the given pairs; 0 when there is none.
func histogramCount(fams map[string]*dto.MetricFamily, name string, labels ...string) uint64 {
	f := fams[name]
	if f == nil {
		return 0
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		return m.GetHistogram().GetSampleCount()
	}
	return 0
}

// hasFamily reports whether a family whose name starts with prefix was
// served.
func hasFamily(fams map[string]*dto.MetricFamily, prefix string) bool {
	for name := range fams {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// TestOperatorMetrics: each node serves the gauges of its own roles and
// its build, counts every failed login by listener and times commands,
// all seen over real sockets.
func TestOperatorMetrics(t *testing.T) {
	m := clusterNode(t, "master.test", []Role{RoleMaster}, "")
	be := clusterNode(t, "be1.test", []Role{RoleBackend}, "", m.GossipAddr())
	fe := frontendNode(t, m.GossipAddr())
	waitMetric(t, fe, want{"rookery_replica_connected", nil, 1})

	for _, c := range []struct {
		n            *Node
		served, none []string
	}{
		{m, []string{"rookery_mupdate_conflicts_total", "rookery_mupdate_connections"}, []string{"rookery_replica_", "rookery_imap_", "rookery_proxied_"}},
		{be, []string{"rookery_imap_connections", "rookery_lmtp_deliveries_total"}, []string{"rookery_replica_", "rookery_mupdate_"}},
		{fe, []string{"rookery_replica_connected", "rookery_replica_lag_seconds", "rookery_imap_connections"}, []string{"rookery_mupdate_conflicts_total"}},
	} {
		fams := scrape(t, c.n.AdminAddr())
		for _, p := range c.served {
			if !hasFamily(fams, p) {
				t.Errorf("%s: no %s", c.n.cfg.ServerName, p)
			}
		}
		for _, p := range c.none {
			if hasFamily(fams, p) {
				t.Errorf("%s: %s* served", c.n.cfg.ServerName, p)
			}
		}
		checkMetrics(t, c.n, "at start", want{"rookery_build_info", []string{"version", Version, "goversion", runtime.Version()}, 1})
	}

	// Wrong passwords: IMAP and POP3 on the backend and the frontend,
	// LMTP AUTH on the backend (a frontend's LMTP is preauthenticated),
	// MUPDATE on the master.
	for _, n := range []*Node{be, fe} {
		c := dialText(t, n.IMAPAddr())
		c.expect("* OK")
		imapCmd(t, c, "a", "LOGIN alice wrong", "NO")
		imapCmd(t, c, "b", "LOGIN alice wrong", "NO")
		imapCmd(t, c, "c", "LOGIN alice alicepw", "OK")
		p := dialText(t, n.POP3Addr())
		p.expect("+OK")
		p.cmd("USER alice", "+OK")
		p.cmd("PASS wrong", "-ERR")
	}
	l := dialText(t, be.LMTPAddr())
	l.expect("220")
	if err := l.PrintfLine("LHLO test"); err != nil {
		t.Fatal(err)
	}
	for line := ""; !strings.HasPrefix(line, "250 "); {
		line = l.expect("250")
	}
	l.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00admin\x00wrong")), "535")
	// The backend and the replica log in to the master too.
	mupdateAuths := histogramCount(scrape(t, m.AdminAddr()), "rookery_command_duration_seconds", "listener", "mupdate", "cmd", "AUTHENTICATE")
	mc := dialRaw(t, m.MUPDATEAddr(), false)
	mc.cmd(`A01 AUTHENTICATE "PLAIN" "`+base64.StdEncoding.EncodeToString([]byte("\x00admin\x00wrong"))+`"`, "A01 NO")

	failures := func(listener string, v float64) want {
		return want{"rookery_login_failures_total", []string{"listener", listener}, v}
	}
	checkMetrics(t, be, "after wrong passwords", failures("imap", 2), failures("pop3", 1), failures("lmtp", 1))
	checkMetrics(t, fe, "after wrong passwords", failures("imapproxy", 2), failures("pop3proxy", 1), failures("lmtpproxy", 0))
	checkMetrics(t, m, "after a wrong password", failures("mupdate", 1))

	// Every command is timed under its listener: the failed and the good
	// LOGINs, made-up ones as OTHER.
	for _, c := range []struct {
		n             *Node
		listener, cmd string
		count         uint64
	}{
		{be, "imap", "LOGIN", 3}, {fe, "imapproxy", "LOGIN", 3}, {be, "pop3", "PASS", 1}, {fe, "pop3proxy", "USER", 1},
		{be, "lmtp", "LHLO", 1}, {be, "lmtp", "AUTH", 1}, {m, "mupdate", "AUTHENTICATE", mupdateAuths + 1},
	} {
		fams := scrape(t, c.n.AdminAddr())
		if got := histogramCount(fams, "rookery_command_duration_seconds", "listener", c.listener, "cmd", c.cmd); got != c.count {
			t.Errorf("%s: rookery_command_duration_seconds{listener=%s,cmd=%s} count %d, want %d", c.n.cfg.ServerName, c.listener, c.cmd, got, c.count)
		}
	}
	c := dialText(t, be.IMAPAddr())
	c.expect("* OK")
	imapCmd(t, c, "a", "XYZZY", "BAD")
	if got := histogramCount(scrape(t, be.AdminAddr()), "rookery_command_duration_seconds", "listener", "imap", "cmd", "OTHER"); got != 1 {
		t.Errorf("made-up IMAP command: OTHER count %d, want 1", got)
	}
	if got := histogramCount(scrape(t, be.AdminAddr()), "rookery_command_duration_seconds", "listener", "imap", "cmd", "XYZZY"); got != 0 {
		t.Errorf("made-up IMAP command timed under its own name")
	}
}
