package imapproxy_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestCatenateThroughFrontend: CATENATE (RFC 4469) through the frontend
// with URLs that name messages on the other backend, a real Cyrus 3.6 one
// (alice's INBOX) and a Rookery one ("rook"), both ways, and on the
// destination's own backend; a URL that cannot be resolved is NO
// [BADURL], adds nothing, and leaves the session and the destination's
// connection in step. The frontend announces CATENATE.
func TestCatenateThroughFrontend(t *testing.T) {
	m := startMixedMurder(t)
	_, addr := m.frontend(t)
	c := login(t, addr, "alice", "alicepw")
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " CATENATE") {
		t.Errorf("frontend does not announce CATENATE: %s", caps[0])
	}
	src := map[string]string{
		"INBOX": "From: cyrus@example.com\r\nSubject: on cyrus\r\n\r\nbody on cyrus\r\n",
		"rook":  "From: rookery@example.com\r\nSubject: on rookery\r\n\r\nbody on rookery\r\n",
	}
	uidvalidity := map[string]string{}
	for box, msg := range src {
		_, tagged := c.cmd("APPEND %s {%d+}\r\n%s", box, len(msg), msg)
		mm := regexp.MustCompile(`APPENDUID (\d+) (\d+)`).FindStringSubmatch(tagged)
		if mm == nil || mm[2] != "1" {
			t.Fatalf("APPEND %s: %s", box, tagged)
		}
		uidvalidity[box] = mm[1]
	}
	count := func(box string) string {
		u := c.ok("STATUS %s (MESSAGES)", box)
		return regexp.MustCompile(`MESSAGES (\d+)`).FindStringSubmatch(u[0])[1]
	}
	for _, tc := range []struct{ dst, parts, want string }{
		{"rook", `URL "/INBOX;UIDVALIDITY=` + uidvalidity["INBOX"] + `/;UID=1/;SECTION=HEADER" TEXT {7+}` + "\r\nhello\r\n",
			"From: cyrus@example.com\r\nSubject: on cyrus\r\n\r\nhello\r\n"},
		{"INBOX", `TEXT {14+}` + "\r\nSubject: fwd\r\n" + ` URL "imap://alice@frontend/rook/;UID=1/;SECTION=TEXT"`,
			"Subject: fwd\r\nbody on rookery\r\n"},
		{"rook", `URL "/rook/;UID=1/;SECTION=HEADER" URL "/INBOX/;UID=1/;SECTION=TEXT/;PARTIAL=5.2"`,
			"From: rookery@example.com\r\nSubject: on rookery\r\n\r\non"},
	} {
		_, tagged := c.cmd("APPEND %s CATENATE (%s)", tc.dst, tc.parts)
		if !strings.HasPrefix(tagged, "OK") {
			t.Errorf("APPEND %s CATENATE (%q): %s", tc.dst, tc.parts, tagged)
			continue
		}
		c.ok("EXAMINE %s", tc.dst)
		u := c.ok("FETCH * BODY.PEEK[]")
		if want := fmt.Sprintf("BODY[] {%d}\r\n%s)", len(tc.want), tc.want); len(u) != 1 || !strings.HasSuffix(u[0], want) {
			t.Errorf("APPEND %s CATENATE (%q) made:\n%q\nwant suffix %q", tc.dst, tc.parts, u, want)
		}
	}
	before := count("rook")
	for _, bad := range []string{
		`URL "/INBOX;UIDVALIDITY=1/;UID=1"`,
		`URL "/INBOX/;UID=99"`,
		`URL "/nosuchbox/;UID=1"`,
	} {
		_, tagged := c.cmd("APPEND rook CATENATE (TEXT {8+}\r\nX: y\r\n\r\n %s TEXT {2+}\r\nok)", bad)
		if !strings.HasPrefix(tagged, "NO [BADURL ") {
			t.Errorf("APPEND rook CATENATE (... %s ...): %s, want NO [BADURL", bad, tagged)
		}
	}
	if after := count("rook"); after != before {
		t.Errorf("refused appends added messages to rook: %s, then %s", before, after)
	}
	// The session and its connection to rook's backend are still in step.
	c.ok("SELECT rook")
	c.ok("NOOP")
}
