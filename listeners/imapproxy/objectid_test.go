package imapproxy_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestObjectIDThroughFrontend: OBJECTID (RFC 8474) through the frontend,
// to a mailbox on a real Cyrus 3.6 backend (alice's INBOX) and to one on
// a Rookery backend ("rook"): STATUS and SELECT give the same MAILBOXID,
// LIST-STATUS too, and FETCH gives an EMAILID; SAVEDATE (RFC 8514) too.
// The frontend announces OBJECTID and SAVEDATE.
func TestObjectIDThroughFrontend(t *testing.T) {
	m := startMixedMurder(t)
	_, addr := m.frontend(t)
	c := login(t, addr, "alice", "alicepw")
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " OBJECTID") || !strings.Contains(caps[0], " SAVEDATE") {
		t.Errorf("frontend does not announce OBJECTID and SAVEDATE: %s", caps[0])
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
			u := strings.Join(c.ok("FETCH * (EMAILID SAVEDATE)"), "\n")
			if !regexp.MustCompile(`EMAILID \([A-Za-z0-9_-]+\)`).MatchString(u) ||
				!regexp.MustCompile(`SAVEDATE "[ \d]\d-[A-Z][a-z]{2}-\d{4} `).MatchString(u) {
				t.Errorf("FETCH EMAILID SAVEDATE: %q", u)
			}
			if u := c.ok("SEARCH SAVEDATESUPPORTED"); len(u) != 1 || u[0] == "* SEARCH" {
				t.Errorf("SEARCH SAVEDATESUPPORTED: %q", u)
			}
		})
	}
}

// TestCreateSpecialUseThroughFrontend: CREATE ... (USE (...)) (RFC 6154)
// through the frontend makes a special-use mailbox on a real Cyrus 3.6
// backend (under alice's INBOX) and on a Rookery one (under "rook"),
// which LIST (SPECIAL-USE) then shows; a bad attribute is refused. The
// frontend announces CREATE-SPECIAL-USE.
func TestCreateSpecialUseThroughFrontend(t *testing.T) {
	m := startMixedMurder(t)
	_, addr := m.frontend(t)
	// alice may create under "rook" once she has the k right there.
	login(t, addr, "admin", "secret").ok("SETACL rook alice lrswipkxted")
	c := login(t, addr, "alice", "alicepw")
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " CREATE-SPECIAL-USE") {
		t.Errorf("frontend does not announce CREATE-SPECIAL-USE: %s", caps[0])
	}
	for _, parent := range []string{"INBOX", "rook"} {
		t.Run(parent, func(t *testing.T) {
			c.ok(`CREATE %s.Sent (USE (\Sent))`, parent)
			u := c.ok(`LIST (SPECIAL-USE) "" "%s.*"`, parent)
			if len(u) != 1 || !strings.Contains(u[0], `\Sent`) || !strings.Contains(u[0], parent+".Sent") {
				t.Errorf("LIST (SPECIAL-USE) after CREATE (USE): %q", u)
			}
			if _, tagged := c.cmd(`CREATE %s.Bogus (USE (\Bogus))`, parent); !strings.HasPrefix(tagged, "NO") {
				t.Errorf("CREATE with a bad special use: %s", tagged)
			}
		})
	}
}
