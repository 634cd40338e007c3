package imap

import (
	"fmt"
	"strings"
	"testing"
)

// TestCatenate: APPEND CATENATE (RFC 4469) joins literals and sections
// of messages named by IMAP URLs, absolute or not, with partial ranges;
// a URL the user may not read, a stale UIDVALIDITY or a missing message
// is NO [BADURL] and the connection stays in step past the literals it
// did not read; the joined message obeys the size limit.
func TestCatenate(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) { c.MaxMessageSize = 200 })
	e.makeUsers("alice", "bob")
	c := e.raw()
	c.cmd("1", "LOGIN alice alicepw", "OK")
	msg := "From: a@example.com\r\nSubject: src\r\n\r\nsource body\r\n"
	got := c.cmd("2", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "OK")
	uv := strings.Fields(strings.TrimSuffix(got[0], "] Completed"))[3]
	c.cmd("3", "CREATE INBOX.out", "OK")
	appends := []struct{ parts, want string }{
		{`URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT {7+}` + "\r\nhello\r\n", "From: a@example.com\r\nSubject: src\r\n\r\nhello\r\n"},
		{`TEXT {8+}` + "\r\nX: y\r\n\r\n" + ` URL "imap://alice@be1/INBOX;UIDVALIDITY=` + uv + `/;UID=1/;SECTION=TEXT/;PARTIAL=7.4"`, "X: y\r\n\r\nbody"},
		{`URL "/INBOX/;uid=1/;section=HEADER.FIELDS%20(SUBJECT)" URL "/INBOX/;uid=1"`, "Subject: src\r\n\r\n" + msg},
	}
	for i, a := range appends {
		c.cmd("a", "APPEND INBOX.out CATENATE ("+a.parts+")", "OK [APPENDUID")
		c.cmd("s", "EXAMINE INBOX.out", "OK")
		got := strings.Join(c.cmd("f", fmt.Sprintf("FETCH %d BODY.PEEK[]", i+1), "OK"), "\r\n")
		if want := fmt.Sprintf("* %d FETCH (BODY[] {%d}\r\n%s)", i+1, len(a.want), a.want); !strings.HasPrefix(got, want) {
			t.Errorf("CATENATE (%s):\n got %q\nwant %q", a.parts, got, want)
		}
	}
	b := e.raw()
	b.cmd("1", "LOGIN bob bobpw", "OK")
	msg = "Subject: bob's\r\n\r\nprivate\r\n"
	b.cmd("2", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "OK")
	for _, bad := range []string{
		`URL "/Other%20Users/bob/;UID=1"`,
		`URL "/user.bob/;UID=1"`,
		`URL "/INBOX;UIDVALIDITY=1/;UID=1"`,
		`URL "/INBOX/;UID=9"`,
		`URL "/INBOX/;UID=1/;SECTION=7"`,
		`URL "/INBOX/;UID=1/;URLAUTH=anonymous:internal:00"`,
		`URL "relative/;UID=1"`,
	} {
		got := c.cmd("b", "APPEND INBOX.out CATENATE ("+bad+` TEXT {3+}`+"\r\nabc)", "NO")
		if last := got[len(got)-1]; !strings.HasPrefix(last, "b NO [BADURL ") {
			t.Errorf("CATENATE (%s): %q, want NO [BADURL", bad, last)
		}
	}
	// Still in step: the literal after the bad URL was skipped.
	c.cmd("n", "NOOP", "OK")
	big := strings.Repeat("x", 150)
	got = c.cmd("big", fmt.Sprintf("APPEND INBOX.out CATENATE (TEXT {150+}\r\n%s URL \"/INBOX/;UID=1\" TEXT {3+}\r\nabc)", big), "NO")
	if last := got[len(got)-1]; !strings.HasPrefix(last, "big NO [TOOBIG]") {
		t.Errorf("CATENATE over the limit: %q", last)
	}
	c.cmd("n2", "NOOP", "OK")
	c.cmd("stx", "APPEND INBOX.out CATENATE (BOGUS x)", "BAD")
	if got := c.cmd("st", "STATUS INBOX.out (MESSAGES)", "OK"); got[0] != "* STATUS INBOX.out (MESSAGES 3)" {
		t.Errorf("after the refused appends: %q", got[0])
	}
}
