package imapproxy_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestObjectIDThroughFrontend: OBJECTID (RFC 8474) through the frontend,
// to a mailbox on a real Cyrus 3.6 backend (alice's INBOX) and to one on
// a Rookery backend ("rook"): STATUS and SELECT give the same MAILBOXID,
// LIST-STATUS too, and FETCH gives an EMAILID. The frontend announces
// OBJECTID.
func TestObjectIDThroughFrontend(t *testing.T) {
	m := startMixedMurder(t)
	_, addr := m.frontend(t)
	c := login(t, addr, "alice", "alicepw")
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " OBJECTID") {
		t.Errorf("frontend does not announce OBJECTID: %s", caps[0])
	}
	idRE := regexp.MustCompile(`MAILBOXID \(([A-Za-z0-9_-]+)\)`)
	for _, box := range []string{"INBOX", "rook"} {
		t.Run(box, func(t *testing.T) {
			st := idRE.FindStringSubmatch(strings.Join(c.ok("STATUS %s (MAILBOXID)", box), "\n"))
			sel := idRE.FindStringSubmatch(strings.Join(c.ok("SELECT %s", box), "\n"))
			ls := idRE.FindStringSubmatch(strings.Join(c.ok(`LIST "" %s RETURN (STATUS (MAILBOXID))`, box), "\n"))
			if st == nil || sel == nil || ls == nil || st[1] != sel[1] || ls[1] != st[1] {
				t.Errorf("MAILBOXID from STATUS %q, SELECT %q, LIST-STATUS %q", st, sel, ls)
			}
			msg := "Subject: id\r\n\r\nbody\r\n"
			c.ok("APPEND %s {%d+}\r\n%s", box, len(msg), msg)
			c.ok("NOOP")
			if u := c.ok("FETCH * (EMAILID)"); len(u) == 0 || !regexp.MustCompile(`EMAILID \([A-Za-z0-9_-]+\)`).MatchString(strings.Join(u, "\n")) {
				t.Errorf("FETCH EMAILID: %q", u)
			}
		})
	}
}
