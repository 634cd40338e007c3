package imapproxy_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/rookery/rookery/internal/cyrustest"
)

// TestMetadataThroughFrontend: GETMETADATA and SETMETADATA through the
// frontend reach the mailbox's backend, a real Cyrus 3.6 one (alice's
// INBOX) and a Rookery one ("rook"); the server's entries ("") live with
// the user's INBOX; then Python's imaplib, sending the commands raw, sets
// and reads entries on both. The frontend announces METADATA.
func TestMetadataThroughFrontend(t *testing.T) {
	m := startMixedMurder(t)
	_, addr := m.frontend(t)
	c := login(t, addr, "alice", "alicepw")
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " METADATA") {
		t.Errorf("frontend does not announce METADATA: %s", caps[0])
	}
	for _, box := range []string{"INBOX", "rook"} {
		t.Run(box, func(t *testing.T) {
			c.ok(`SETMETADATA %s (/private/comment "mine on %s" /shared/comment "for all")`, box, box)
			u := c.ok("GETMETADATA %s (/private/comment /shared/comment)", box)
			if len(u) != 1 || !strings.Contains(u[0], `"mine on `+box+`"`) || !strings.Contains(u[0], `"for all"`) {
				t.Errorf("GETMETADATA: %q", u)
			}
			u = c.ok("GETMETADATA (DEPTH infinity) %s /shared/vendor/cmu/cyrus-imapd", box)
			if len(u) != 1 || !strings.Contains(strings.ToLower(u[0]), "/shared/vendor/cmu/cyrus-imapd/size") {
				t.Errorf("GETMETADATA (DEPTH infinity) of the vendor entries: %q", u)
			}
			c.ok(`SETMETADATA %s (/private/comment NIL)`, box)
			u = c.ok("GETMETADATA %s /private/comment", box)
			if len(u) == 1 && strings.Contains(u[0], "mine on") {
				t.Errorf("GETMETADATA after removing the entry: %q", u)
			}
		})
	}
	c.ok(`SETMETADATA "" (/private/comment "server side")`)
	if u := c.ok(`GETMETADATA "" /private/comment`); len(u) != 1 || !strings.Contains(u[0], `"server side"`) {
		t.Errorf(`GETMETADATA "": %q`, u)
	}
	if text := c.no("GETMETADATA nosuchbox /private/comment"); !strings.Contains(text, "exist") {
		t.Errorf("a missing mailbox: %s", text)
	}
	python := cyrustest.RequireTool(t, "python3", "python3")
	out, err := exec.Command(python, "testdata/metadata.py", addr, "INBOX", "rook").CombinedOutput()
	if err != nil {
		t.Fatalf("metadata.py: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
