package imap

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestNotify: NOTIFY (RFC 5465) message events: SET STATUS tells the
// watched mailboxes' state at once (HIGHESTMODSEQ where FlagChange was
// asked); a new message in one is told as STATUS while IDLE and after a
// command, a flag change only where FlagChange was asked; a mailbox the
// user may not read is not watched; events this server does not send are
// BADEVENT; NOTIFY NONE stops it.
func TestNotify(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice", "bob")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	b := e.raw()
	b.cmd("1", "LOGIN alice alicepw", "OK")
	bob := e.raw()
	bob.cmd("1", "LOGIN bob bobpw", "OK")
	a.cmd("2", "CREATE INBOX.a", "OK")
	a.cmd("3", "CREATE INBOX.b", "OK")
	appendTo := func(c *raw, box string) {
		t.Helper()
		msg := testMessage("n", "body")
		c.cmd("ap", fmt.Sprintf("APPEND %s {%d+}\r\n%s", box, len(msg), msg), "OK")
	}
	appendTo(b, "INBOX.a")
	a.cmd("4", "SELECT INBOX", "OK")
	got := untagged(a.cmd("5", "NOTIFY SET STATUS (SELECTED (MessageNew MessageExpunge)) "+
		"(SUBTREE INBOX.a (MessageNew MessageExpunge FlagChange)) (MAILBOXES (INBOX.b user.bob) (MessageNew MessageExpunge))", "OK"))
	status := regexp.MustCompile(`^\* STATUS (\S+) \(MESSAGES (\d+) UIDNEXT (\d+) UIDVALIDITY \d+( HIGHESTMODSEQ \d+)?\)$`)
	var seen []string
	for _, l := range got {
		m := status.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("NOTIFY SET STATUS: %q", got)
		}
		seen = append(seen, m[1]+" "+m[2]+" "+fmt.Sprint(m[4] != ""))
	}
	if want := []string{"INBOX.a 1 true", "INBOX.b 0 false"}; !slices.Equal(seen, want) {
		t.Errorf("NOTIFY SET STATUS told %q, want %q", seen, want)
	}

	// A new message in INBOX.b, told while IDLE.
	a.send("6 IDLE\r\n")
	if l := a.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	appendTo(b, "INBOX.b")
	if l := a.line(); !strings.HasPrefix(l, "* STATUS INBOX.b (MESSAGES 1 UIDNEXT 2 ") || strings.Contains(l, "HIGHESTMODSEQ") {
		t.Errorf("in IDLE after a delivery to INBOX.b: %q", l)
	}
	a.send("DONE\r\n")
	a.until("6 OK")

	// Flags: told for INBOX.a, which asked for FlagChange, not INBOX.b.
	b.cmd("7", "SELECT INBOX.b", "OK")
	b.cmd("8", `STORE 1 +FLAGS (\Flagged)`, "OK")
	if got := untagged(a.cmd("9", "NOOP", "OK")); len(got) != 0 {
		t.Errorf("a flag change in INBOX.b, which did not ask for FlagChange: %q", got)
	}
	b.cmd("10", "SELECT INBOX.a", "OK")
	b.cmd("11", `STORE 1 +FLAGS (\Flagged)`, "OK")
	if got := untagged(a.cmd("12", "NOOP", "OK")); len(got) != 1 || !strings.Contains(got[0], "STATUS INBOX.a (MESSAGES 1 ") ||
		!strings.Contains(got[0], "HIGHESTMODSEQ") {
		t.Errorf("a flag change in INBOX.a: %q", got)
	}
	// bob's INBOX was named but alice may not read it.
	appendTo(bob, "INBOX")
	if got := untagged(a.cmd("13", "NOOP", "OK")); len(got) != 0 {
		t.Errorf("a delivery to a mailbox alice may not read: %q", got)
	}

	got = a.cmd("14", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxMetadataChange))", "NO")
	if last := got[len(got)-1]; !strings.HasPrefix(last, "14 NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]") {
		t.Errorf("an unsupported event: %q", last)
	}
	a.cmd("15", "NOTIFY SET (PERSONAL (MessageNew))", "BAD")
	a.cmd("16", "NOTIFY SET (NOWHERE (MessageNew MessageExpunge))", "BAD")
	a.cmd("17", "NOTIFY NONE", "OK")
	appendTo(b, "INBOX.b")
	if got := untagged(a.cmd("18", "NOOP", "OK")); len(got) != 0 {
		t.Errorf("after NOTIFY NONE: %q", got)
	}
	// PERSONAL: every mailbox of alice's, without an initial STATUS.
	if got := untagged(a.cmd("19", "NOTIFY SET (PERSONAL (MessageNew MessageExpunge))", "OK")); len(got) != 0 {
		t.Errorf("NOTIFY SET without STATUS told: %q", got)
	}
	appendTo(b, "INBOX.a")
	if got := untagged(a.cmd("20", "NOOP", "OK")); len(got) != 1 || !strings.HasPrefix(got[0], "* STATUS INBOX.a (MESSAGES 2 ") {
		t.Errorf("a delivery to INBOX.a under PERSONAL: %q", got)
	}
}

// TestNotifyMailboxEvents: NOTIFY's MailboxName and SubscriptionChange
// (RFC 5465 5.4, 5.5) as unsolicited LIST responses: a mailbox created or
// deleted by another session is told with its parent; a renamed tree
// once, with OLDNAME; a subscription change with or without \Subscribed;
// a mailbox of another user's when the user is given or loses the 'l'
// right, and nothing of those the user may not see or did not ask about;
// the session's own changes too; nothing after NOTIFY NONE.
func TestNotifyMailboxEvents(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice", "bob")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	b := e.raw()
	b.cmd("1", "LOGIN alice alicepw", "OK")
	bob := e.raw()
	bob.cmd("1", "LOGIN bob bobpw", "OK")
	bob.cmd("2", "CREATE INBOX.shared", "OK")

	if got := untagged(a.cmd("2", "NOTIFY SET STATUS (PERSONAL (MailboxName SubscriptionChange)) "+
		"(MAILBOXES user.bob.shared (MailboxName))", "OK")); len(got) != 0 {
		t.Errorf("NOTIFY SET STATUS without message events told: %q", got)
	}
	check := func(tag string, want ...string) {
		t.Helper()
		got := untagged(a.cmd(tag, "NOOP", "OK"))
		if !slices.Equal(got, want) {
			t.Errorf("%s: told %q, want %q", tag, got, want)
		}
	}
	b.cmd("3", "CREATE INBOX.x", "OK")
	check("3", `* LIST (\HasNoChildren) "." INBOX.x`, `* LIST (\HasChildren) "." INBOX`)
	b.cmd("4", "CREATE INBOX.x.y", "OK")
	check("4", `* LIST (\HasNoChildren) "." INBOX.x.y`, `* LIST (\HasChildren) "." INBOX.x`)

	// A rename, told while IDLE: for each mailbox it moved.
	a.send("5 IDLE\r\n")
	if l := a.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	b.cmd("5", "RENAME INBOX.x INBOX.z", "OK")
	// The store renames a tree one mailbox per write, so the top may be
	// told before its child has moved under it.
	if l := a.line(); l != `* LIST (\HasChildren) "." INBOX.z ("OLDNAME" (INBOX.x))` && l != `* LIST (\HasNoChildren) "." INBOX.z ("OLDNAME" (INBOX.x))` {
		t.Errorf("in IDLE after a rename: %q", l)
	}
	if l := a.line(); l != `* LIST (\HasNoChildren) "." INBOX.z.y ("OLDNAME" (INBOX.x.y))` {
		t.Errorf("in IDLE, the child's rename: %q", l)
	}
	a.send("DONE\r\n")
	if got := a.until("5 "); len(got) != 1 || !strings.HasPrefix(got[0], "5 OK") {
		t.Errorf("after the rename's LIST: %q", got)
	}

	b.cmd("6", "SUBSCRIBE INBOX.z", "OK")
	check("6", `* LIST (\Subscribed \HasChildren) "." INBOX.z`)
	b.cmd("7", "SUBSCRIBE INBOX.z", "OK")
	check("7")
	b.cmd("8", "UNSUBSCRIBE INBOX.z", "OK")
	check("8", `* LIST (\HasChildren) "." INBOX.z`)
	b.cmd("9", "DELETE INBOX.z.y", "OK")
	check("9", `* LIST (\NonExistent) "." INBOX.z.y`, `* LIST (\HasNoChildren) "." INBOX.z`)

	// bob's mailboxes: told when alice may see the one named.
	bob.cmd("10", "CREATE INBOX.other", "OK")
	bob.cmd("11", "SETACL INBOX.other alice lr", "OK")
	check("10")
	bob.cmd("12", "SETACL INBOX.shared alice lr", "OK")
	check("12", `* LIST (\HasNoChildren) "." user.bob.shared`)
	bob.cmd("13", "SETACL INBOX.shared alice lrs", "OK")
	check("13")
	bob.cmd("14", "SETACL INBOX.shared alice r", "OK")
	check("14", `* LIST (\NonExistent) "." user.bob.shared`)

	// The session's own change, before its tagged reply.
	got := untagged(a.cmd("15", "CREATE INBOX.mine", "OK"))
	if want := []string{`* LIST (\HasNoChildren) "." INBOX.mine`, `* LIST (\HasChildren) "." INBOX`}; !slices.Equal(got, want) {
		t.Errorf("own CREATE: told %q, want %q", got, want)
	}
	a.cmd("16", "NOTIFY NONE", "OK")
	b.cmd("17", "DELETE INBOX.mine", "OK")
	check("17")
}

// TestNotifyMailboxEventsSlash: with '/' as the separator, NOTIFY's LIST
// responses use it, names and OLDNAME included, and a '.' inside a
// level stays a '.'; changes told together leave the client a true
// view: names created and then renamed are told under their new names.
func TestNotifyMailboxEventsSlash(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) { c.Separator = '/' })
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	b := e.raw()
	b.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "NOTIFY SET (SUBTREE INBOX/a.b (MailboxName))", "OK")
	check := func(tag string, want ...string) {
		t.Helper()
		if got := untagged(a.cmd(tag, "NOOP", "OK")); !slices.Equal(got, want) {
			t.Errorf("%s: told %q, want %q", tag, got, want)
		}
	}
	b.cmd("3", "CREATE INBOX/a.b", "OK")
	b.cmd("4", "CREATE INBOX/a.b/c", "OK")
	check("4", `* LIST (\HasChildren) "/" INBOX/a.b`, `* LIST (\HasNoChildren) "/" INBOX/a.b/c`)
	b.cmd("5", "RENAME INBOX/a.b INBOX/d.e", "OK")
	check("5", `* LIST (\HasChildren) "/" INBOX/d.e ("OLDNAME" (INBOX/a.b))`, `* LIST (\HasNoChildren) "/" INBOX/d.e/c ("OLDNAME" (INBOX/a.b/c))`)

	// Created and renamed between two looks: told under the new names
	// only, so the client's view holds the child too.
	b.cmd("6", "CREATE INBOX/a.b", "OK")
	b.cmd("7", "CREATE INBOX/a.b/x", "OK")
	b.cmd("8", "RENAME INBOX/a.b INBOX/f", "OK")
	check("8", `* LIST (\HasChildren) "/" INBOX/f`, `* LIST (\HasNoChildren) "/" INBOX/f/x`)
	// Known, then a child and a rename: the child under the new name.
	b.cmd("9", "RENAME INBOX/f INBOX/a.b", "OK")
	check("9", `* LIST (\HasChildren) "/" INBOX/a.b ("OLDNAME" (INBOX/f))`, `* LIST (\HasNoChildren) "/" INBOX/a.b/x ("OLDNAME" (INBOX/f/x))`)
	b.cmd("10", "CREATE INBOX/a.b/y", "OK")
	b.cmd("11", "RENAME INBOX/a.b INBOX/g", "OK")
	check("11", `* LIST (\HasChildren) "/" INBOX/g ("OLDNAME" (INBOX/a.b))`, `* LIST (\HasNoChildren) "/" INBOX/g/y`,
		`* LIST (\HasNoChildren) "/" INBOX/g/x ("OLDNAME" (INBOX/a.b/x))`)

	// A client watching only a child hears of its rename when the parent
	// is renamed (found in review: only the tree's top was told).
	a.cmd("12", "NOTIFY SET (MAILBOXES INBOX/g/x (MailboxName))", "OK")
	b.cmd("13", "RENAME INBOX/g INBOX/h", "OK")
	check("13", `* LIST (\HasNoChildren) "/" INBOX/h/x ("OLDNAME" (INBOX/g/x))`)
}
