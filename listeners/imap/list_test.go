package imap

import (
	"slices"
	"strings"
	"testing"
)

// TestListExtended: the backend's LIST-EXTENDED (RFC 5258), LIST-STATUS
// (RFC 5819) and XLIST answers, line for line.
func TestListExtended(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) { c.AllowAllSubscribe = true })
	e.makeUsers("alice", "bob")
	b := e.raw()
	b.cmd("1", "LOGIN bob bobpw", "OK")
	b.cmd("2", "SETACL INBOX alice l", "OK") // visible, not readable
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	for i, c := range []string{"CREATE INBOX.a.b", `CREATE INBOX.Sent (USE (\Sent))`, "CREATE INBOX.c",
		"SUBSCRIBE INBOX.a.b", "SUBSCRIBE INBOX.c", "SUBSCRIBE INBOX.gone",
		"APPEND INBOX.c {3+}\r\nx\r\n", "APPEND INBOX.c {3+}\r\ny\r\n"} {
		a.cmd("s"+itoa(uint32(i)), c, "OK")
	}
	expect := func(cmd string, want ...string) {
		t.Helper()
		got := a.cmd("t", cmd, "OK")
		if got = got[:len(got)-1]; !slices.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant:\n%s", cmd, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	caps := strings.Join(a.cmd("c", "CAPABILITY", "OK"), " ") + " "
	for _, c := range []string{" LIST-EXTENDED ", " LIST-STATUS ", " XLIST "} {
		if !strings.Contains(caps, c) {
			t.Errorf("CAPABILITY lacks%s: %s", c, caps)
		}
	}
	// A subscription naming no mailbox is \NonExistent (RFC 5258 3.1).
	expect(`LIST (SUBSCRIBED) "" "*"`,
		`* LIST (\Subscribed \HasNoChildren) "." INBOX.a.b`,
		`* LIST (\Subscribed \HasNoChildren) "." INBOX.c`,
		`* LIST (\NonExistent \Subscribed) "." INBOX.gone`)
	// INBOX.a, no mailbox (CREATE INBOX.a.b makes none, as in Cyrus), is
	// not subscribed but matches, and its subscribed child does not (RFC
	// 5258 3.5).
	expect(`LIST (SUBSCRIBED RECURSIVEMATCH) "" "INBOX.%"`,
		`* LIST (\NonExistent \HasChildren) "." INBOX.a ("CHILDINFO" ("SUBSCRIBED"))`,
		`* LIST (\Subscribed \HasNoChildren) "." INBOX.c`,
		`* LIST (\NonExistent \Subscribed) "." INBOX.gone`)
	expect(`LIST "" ("INBOX.c" "INBOX.Sent" "") RETURN (SUBSCRIBED SPECIAL-USE)`,
		`* LIST (\HasNoChildren \Sent) "." INBOX.Sent`,
		`* LIST (\Subscribed \HasNoChildren) "." INBOX.c`)
	expect(`LIST (SPECIAL-USE) "" "*"`, `* LIST (\HasNoChildren \Sent) "." INBOX.Sent`)
	expect(`LIST (REMOTE) "INBOX." "a*" RETURN (CHILDREN)`,
		`* LIST (\NonExistent \HasChildren) "." INBOX.a`,
		`* LIST (\HasNoChildren) "." INBOX.a.b`)
	// No STATUS for a mailbox that may not be read, which is then
	// \Noselect (RFC 5819 2).
	expect(`LIST "" ("INBOX.c" "user.bob") RETURN (STATUS (MESSAGES UIDNEXT UNSEEN))`,
		`* LIST (\HasNoChildren) "." INBOX.c`,
		`* STATUS INBOX.c (MESSAGES 2 UIDNEXT 3 UNSEEN 2)`,
		`* LIST (\Noselect \HasNoChildren) "." user.bob`)
	expect(`XLIST "" "INBOX*"`,
		`* XLIST (\HasChildren \Inbox) "." INBOX`,
		`* XLIST (\HasNoChildren \Sent) "." INBOX.Sent`,
		`* XLIST (\Noselect \HasChildren) "." INBOX.a`,
		`* XLIST (\HasNoChildren) "." INBOX.a.b`,
		`* XLIST (\HasNoChildren) "." INBOX.c`)
	// The plain LIST is as before: no subscriptions, \Noselect parents.
	expect(`LIST "" "INBOX.c"`, `* LIST (\HasNoChildren) "." INBOX.c`)
	for _, cmd := range []string{
		`LIST (BOGUS) "" "*"`,
		`LIST (RECURSIVEMATCH) "" "*"`,
		`LIST "" "*" RETURN (STATUS (BOGUS))`,
		`LIST "" "*" RETURN (BOGUS)`,
		`LIST "" "*" RETURN CHILDREN`,
	} {
		a.cmd("b", cmd, "BAD")
	}
	a.cmd("n", "NOOP", "OK")
}
