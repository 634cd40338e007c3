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
