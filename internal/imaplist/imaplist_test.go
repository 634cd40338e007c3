package imaplist

import "testing"

// TestChange: NOTIFY's LIST lines (RFC 5465 5.4, 5.5) for the states a
// name can be told in.
func TestChange(t *testing.T) {
	for _, c := range []struct {
		m          Mailbox
		subscribed bool
		sep        byte
		name, old  string
		want       string
	}{
		{Mailbox{Exists: true}, false, '.', "INBOX.a", "", `LIST (\HasNoChildren) "." INBOX.a`},
		{Mailbox{Exists: true, Children: true, Special: []string{`\Sent`}}, true, '/', "Sent", "",
			`LIST (\Subscribed \HasChildren \Sent) "/" Sent`},
		{Mailbox{}, false, '.', "INBOX.gone", "", `LIST (\NonExistent) "." INBOX.gone`},
		{Mailbox{Children: true}, true, '.', "p", "", `LIST (\NonExistent \Subscribed \HasChildren) "." p`},
		{Mailbox{Exists: true}, false, '/', `"a b"`, `"c d"`, `LIST (\HasNoChildren) "/" "a b" ("OLDNAME" ("c d"))`},
	} {
		if got := Change(c.m, c.subscribed, c.sep, c.name, c.old); got != c.want {
			t.Errorf("Change(%+v, %v, %q, %s, %s) = %s, want %s", c.m, c.subscribed, c.sep, c.name, c.old, got, c.want)
		}
	}
}

func TestCovers(t *testing.T) {
	const inbox = "user.alice"
	for _, c := range []struct {
		filter  string
		names   []string
		name    string
		sub     bool
		covered bool
	}{
		{"INBOXES", nil, "user.alice", false, true},
		{"INBOXES", nil, "user.alice.a", false, false},
		{"PERSONAL", nil, "user.alice.a", false, true},
		{"PERSONAL", nil, "user.alicex", false, false},
		{"SUBSCRIBED", nil, "shared", true, true},
		{"SUBSCRIBED", nil, "shared", false, false},
		{"SUBTREE", []string{"shared"}, "shared.x", false, true},
		{"SUBTREE", []string{"shared"}, "shared", false, true},
		{"SUBTREE", []string{"shared"}, "sharedx", false, false},
		{"MAILBOXES", []string{"shared"}, "shared", false, true},
		{"MAILBOXES", []string{"shared"}, "shared.x", false, false},
		{"SELECTED", nil, "user.alice", false, false},
	} {
		if got := Covers(c.filter, c.names, c.name, inbox, c.sub); got != c.covered {
			t.Errorf("Covers(%s %q, %q, subscribed %v) = %v", c.filter, c.names, c.name, c.sub, got)
		}
	}
}
