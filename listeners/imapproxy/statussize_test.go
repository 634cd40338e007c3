package imapproxy_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// checkStatusSize appends two messages of known size to mailbox and
// checks that STATUS and LIST-STATUS through the frontend give SIZE.
func checkStatusSize(t *testing.T, c *client, mailbox string) {
	t.Helper()
	msgs := []string{"Subject: x\r\n\r\nhi\r\n", "Subject: xyz\r\n\r\nhello there\r\n"}
	size := 0
	for _, m := range msgs {
		c.ok("APPEND %s {%d+}\r\n%s", mailbox, len(m), m)
		size += len(m)
	}
	want := regexp.MustCompile(`^\* STATUS "?` + regexp.QuoteMeta(mailbox) + `"? \(MESSAGES 2 SIZE ` + strconv.Itoa(size) + `\)$`)
	if u := c.ok("STATUS %s (MESSAGES SIZE)", mailbox); len(u) != 1 || !want.MatchString(u[0]) {
		t.Errorf("STATUS %s (MESSAGES SIZE) through the frontend: %q", mailbox, u)
	}
	u := c.ok(`LIST "" %s RETURN (STATUS (MESSAGES SIZE))`, mailbox)
	if len(u) != 2 || !want.MatchString(u[1]) {
		t.Errorf("LIST-STATUS with SIZE through the frontend: %q", u)
	}
}

// TestRookeryStatusSize: the frontend announces STATUS=SIZE, which both
// kinds of backend have, and SIZE comes back from either Rookery backend.
func TestRookeryStatusSize(t *testing.T) {
	m, _, _ := startRookeryMurder(t)
	_, addr := m.frontend(t)
	alice := login(t, addr, "alice", "alicepw")
	if caps := " " + alice.ok("CAPABILITY")[0] + " "; !strings.Contains(caps, " STATUS=SIZE ") {
		t.Errorf("frontend does not announce STATUS=SIZE: %s", caps)
	}
	alice.ok("CREATE INBOX.sized")
	m.waitEntry(t, "user.alice.sized", "rb1")
	checkStatusSize(t, alice, "INBOX.sized")
	checkStatusSize(t, login(t, addr, "bob", "bobpw"), "shared") // on rb2
}

// TestCyrusStatusSize: the same through the frontend to a real Cyrus 3.6
// backend.
func TestCyrusStatusSize(t *testing.T) {
	m := startMurder(t)
	_, addr := m.frontend(t)
	alice := login(t, addr, "alice", "alicepw")
	alice.ok("CREATE INBOX.sized")
	m.waitEntry(t, "user.alice.sized", m.be1.ServerName)
	checkStatusSize(t, alice, "INBOX.sized")
}
