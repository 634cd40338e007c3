package imapproxy_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/node"
)

// TestUnixHierarchySep: a frontend and its Rookery backends with
// unixhierarchysep: clients see '/' as the separator (NAMESPACE, LIST,
// LSUB), a '.' within a level is kept ("INBOX/a.b" is "user.alice.a^b"
// in the mailbox list), and SELECT, STATUS and APPEND route by it.
func TestUnixHierarchySep(t *testing.T) {
	m := startRookeryMaster(t)
	slash := func(c *node.Config) { c.Separator = '/' }
	rb1 := m.rookeryBackend(t, "rb1", slash)
	rb2 := m.rookeryBackend(t, "rb2", slash)
	login(t, rb1.IMAPAddr(), "admin", "secret").ok("CREATE user/alice")
	admin2 := login(t, rb2.IMAPAddr(), "admin", "secret")
	admin2.ok("CREATE shared")
	admin2.ok("SETACL shared anyone lrswipkte")
	m.waitEntry(t, "user.alice", "rb1")
	m.waitEntry(t, "shared", "rb2")
	_, addr := m.frontend(t, func(c *imapproxy.Config) { c.Separator = '/' })
	c := login(t, addr, "alice", "alicepw")
	if u := c.ok("NAMESPACE"); len(u) != 1 || u[0] != `* NAMESPACE (("INBOX/" "/")) (("user/" "/")) (("" "/"))` {
		t.Errorf("NAMESPACE: %q", u)
	}
	c.ok("CREATE INBOX/a.b")
	m.waitEntry(t, "user.alice.a^b", "rb1")
	c.ok("CREATE shared/news")
	m.waitEntry(t, "shared.news", "rb2")
	list := c.ok(`LIST "" "*"`)
	for _, want := range []string{`* LIST (\HasChildren) "/" INBOX`, `* LIST (\HasNoChildren) "/" INBOX/a.b`,
		`* LIST (\HasChildren) "/" shared`, `* LIST (\HasNoChildren) "/" shared/news`} {
		if !slices.Contains(list, want) {
			t.Errorf("LIST lacks %q:\n%s", want, strings.Join(list, "\n"))
		}
	}
	if u := c.ok(`LIST "" "%%"`); slices.ContainsFunc(u, func(l string) bool { return strings.Contains(l, "news") || strings.Contains(l, "a.b") }) {
		t.Errorf(`LIST "" "%%" goes below the top level: %q`, u)
	}
	msg := message("sep", "body")
	c.ok("APPEND shared/news {%d+}\r\n%s", len(msg), msg)
	if u := c.ok("STATUS shared/news (MESSAGES)"); len(u) != 1 || !strings.Contains(u[0], "(MESSAGES 1)") {
		t.Errorf("STATUS shared/news: %q", u)
	}
	c.ok("SELECT INBOX/a.b")
	c.ok("SUBSCRIBE shared/news")
	if u := c.ok(`LSUB "" "shared/%%"`); len(u) != 1 || !strings.HasSuffix(u[0], `"/" shared/news`) {
		t.Errorf("LSUB: %q", u)
	}
}
