package imapproxy_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/imapproxy"
)

// TestNotifyThroughFrontend: NOTIFY (RFC 5465) through the frontend
// merges message events from mailboxes on two backends, a real Cyrus 3.6
// one (alice's INBOX, which has no NOTIFY itself) and a Rookery one
// ("rook"): SET STATUS tells both at once; while the client IDLEs without
// a mailbox selected, deliveries to both are told as STATUS; after a
// command, a flag change is told where FlagChange was asked; the
// selected mailbox gets its usual updates instead; an event the frontend
// cannot tell is BADEVENT; NOTIFY NONE stops it. The frontend announces
// NOTIFY.
func TestNotifyThroughFrontend(t *testing.T) {
	m := startMixedMurder(t)
	_, addr := m.frontend(t, func(c *imapproxy.Config) { c.Limits.NotifyPoll = 50 * time.Millisecond })
	c := login(t, addr, "alice", "alicepw")
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " NOTIFY") {
		t.Errorf("frontend does not announce NOTIFY: %s", caps[0])
	}
	d := login(t, addr, "alice", "alicepw")
	deliver := func(box string) {
		t.Helper()
		msg := message("n", "body")
		d.ok("APPEND %s {%d+}\r\n%s", box, len(msg), msg)
	}
	u := c.ok("NOTIFY SET STATUS (MAILBOXES INBOX (MessageNew MessageExpunge FlagChange)) (MAILBOXES rook (MessageNew MessageExpunge))")
	joined := strings.Join(u, "\n")
	if !strings.Contains(joined, "* STATUS INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ") || !strings.Contains(joined, " HIGHESTMODSEQ ") ||
		!strings.Contains(joined, "* STATUS rook (MESSAGES 0 UIDNEXT 1 UIDVALIDITY ") || len(u) != 2 {
		t.Errorf("NOTIFY SET STATUS: %q", u)
	}

	// IDLE with nothing selected: deliveries on both backends are told.
	c.send("i1 IDLE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	deliver("INBOX")
	deliver("rook")
	seen := map[string]bool{}
	for !seen["INBOX"] || !seen["rook"] {
		l := c.line()
		switch {
		case strings.HasPrefix(l, "* STATUS INBOX (MESSAGES 1 UIDNEXT 2 "):
			seen["INBOX"] = true
		case strings.HasPrefix(l, "* STATUS rook (MESSAGES 1 UIDNEXT 2 "):
			seen["rook"] = true
		default:
			t.Fatalf("in IDLE: %q", l)
		}
	}
	c.send("DONE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Fatalf("IDLE's end: %q", l)
	}

	// A flag change: told for INBOX (FlagChange asked), after a command.
	d.ok("SELECT INBOX")
	d.ok(`STORE 1 +FLAGS (\Flagged)`)
	waitFor(t, c, "* STATUS INBOX (MESSAGES 1 UIDNEXT 2 ")
	d.ok("SELECT rook")
	d.ok(`STORE 1 +FLAGS (\Flagged)`)
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if u := c.ok("NOOP"); len(u) > 0 {
			t.Fatalf("a flag change in rook, which did not ask for FlagChange: %q", u)
		}
	}

	// The selected mailbox: EXISTS, not STATUS.
	c.ok("SELECT rook")
	deliver("rook")
	waitFor(t, c, "* 2 EXISTS")

	if text := c.no("NOTIFY SET (PERSONAL (MessageNew MessageExpunge MailboxMetadataChange))"); !strings.HasPrefix(text, "NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange)]") {
		t.Errorf("an event the frontend cannot tell: %s", text)
	}
	c.ok("NOTIFY NONE")
	c.ok("UNSELECT")
	deliver("INBOX")
	deadline = time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if u := c.ok("NOOP"); len(u) > 0 {
			t.Fatalf("after NOTIFY NONE: %q", u)
		}
	}
}

// waitFor runs NOOP until an untagged response starting with want
// comes, for a few seconds at most.
func waitFor(t *testing.T, c *client, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range c.ok("NOOP") {
			if strings.HasPrefix(l, want) {
				return
			}
		}
	}
	t.Fatalf("no %q within 5 s", want)
}

// TestNotifyMailboxEventsThroughFrontend: NOTIFY's MailboxName and
// SubscriptionChange (RFC 5465 5.4, 5.5) through the frontend, told from
// its own copy of the mailbox list: a mailbox created, renamed and
// deleted through the frontend on a real Cyrus 3.6 backend (alice's
// INBOX's), with its parent, the rename once, with OLDNAME; one created
// directly on a Rookery backend; a mailbox the user loses or is given the
// 'l' right on; a rename made on a backend, which the list shows as a
// create and a delete; the subscriptions changed through the frontend,
// which \Subscribed shows from then on; and nothing the client did not
// ask about, nor after NOTIFY NONE.
func TestNotifyMailboxEventsThroughFrontend(t *testing.T) {
	m := startMixedMurder(t)
	_, addr := m.frontend(t, func(c *imapproxy.Config) { c.Limits.NotifyPoll = 50 * time.Millisecond })
	c := login(t, addr, "alice", "alicepw")
	d := login(t, addr, "alice", "alicepw")
	c.ok("NOTIFY SET (PERSONAL (MailboxName SubscriptionChange)) (SUBTREE rook (MailboxName))")
	// lists runs NOOPs until as many LIST responses as wanted came, then
	// compares them.
	lists := func(what string, want ...string) {
		t.Helper()
		var got []string
		deadline := time.Now().Add(5 * time.Second)
		for len(got) < len(want) && time.Now().Before(deadline) {
			for _, l := range c.ok("NOOP") {
				if strings.HasPrefix(l, "* LIST ") {
					got = append(got, l)
				}
			}
		}
		got = append(got, c.ok("NOOP")...)
		if !slices.Equal(got, want) {
			t.Errorf("%s: told %q, want %q", what, got, want)
		}
	}

	d.ok("CREATE INBOX.n1")
	lists("CREATE on Cyrus", `* LIST (\HasNoChildren) "." INBOX.n1`, `* LIST (\HasChildren) "." INBOX`)
	d.ok("CREATE INBOX.n1.deep")
	lists("CREATE of a child", `* LIST (\HasNoChildren) "." INBOX.n1.deep`, `* LIST (\HasChildren) "." INBOX.n1`)
	d.ok("RENAME INBOX.n1 INBOX.n2")
	lists("RENAME", `* LIST (\HasChildren) "." INBOX.n2 ("OLDNAME" (INBOX.n1))`, `* LIST (\HasNoChildren) "." INBOX.n2.deep ("OLDNAME" (INBOX.n1.deep))`)
	d.ok("SUBSCRIBE INBOX.n2")
	lists("SUBSCRIBE", `* LIST (\Subscribed \HasChildren) "." INBOX.n2`)
	d.ok("UNSUBSCRIBE INBOX.n2")
	lists("UNSUBSCRIBE", `* LIST (\HasChildren) "." INBOX.n2`)
	d.ok("DELETE INBOX.n2.deep")
	lists("DELETE", `* LIST (\NonExistent) "." INBOX.n2.deep`, `* LIST (\HasNoChildren) "." INBOX.n2`)

	d.ok("SUBSCRIBE rook")
	lists("a subscription where only MailboxName was asked")

	// On the Rookery backend itself, not through the frontend.
	rb1 := login(t, m.addrs["rb1"][0], "admin", "secret")
	rb1.ok("CREATE rook.sub")
	lists("CREATE on a backend", `* LIST (\HasNoChildren) "." rook.sub`, `* LIST (\Subscribed \HasChildren) "." rook`)
	rb1.ok("DELETEACL rook.sub alice") // anyone may still look it up
	lists("an ACL change keeping the 'l' right")
	rb1.ok("DELETEACL rook.sub anyone")
	lists("the 'l' right lost", `* LIST (\NonExistent) "." rook.sub`, `* LIST (\Subscribed \HasNoChildren) "." rook`)
	rb1.ok("SETACL rook.sub alice lr")
	lists("the 'l' right given", `* LIST (\HasNoChildren) "." rook.sub`, `* LIST (\Subscribed \HasChildren) "." rook`)
	// The list has no renames: one made elsewhere is a create and a delete.
	rb1.ok("RENAME rook.sub rook.sub2")
	lists("RENAME on a backend", `* LIST (\HasNoChildren) "." rook.sub2`, `* LIST (\Subscribed \HasChildren) "." rook`,
		`* LIST (\NonExistent) "." rook.sub`)

	c.ok("NOTIFY NONE")
	d.ok("CREATE INBOX.n3")
	lists("after NOTIFY NONE")
}
