package node

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rookery/rookery/internal/cyrustest"
)

// TestCyrusFrontendCopiesAcrossRookeryBackends: a real Cyrus 3.6 frontend
// in front of two Rookery backends (and a real Cyrus mupdate master) copies
// and moves messages between them, with and without CONDSTORE enabled on
// the session, and subscribes alice to a mailbox on the backend that does
// not hold her INBOX.
//
// The frontend does a cross-backend COPY itself (imap/imap_proxy.c
// proxy_copy): "FETCH <set> (Flags Internaldate)" and then "FETCH <set>
// (Rfc822.peek)" on the source, one APPEND on the destination. Its parser
// knows only the items FLAGS, INTERNALDATE, UID and RFC822; anything else
// in the source's answers ends the session or trips an assertion, so the
// answers must look like a Cyrus backend's.
func TestCyrusFrontendCopiesAcrossRookeryBackends(t *testing.T) {
	cyrustest.Require(t)
	cm := cyrustest.Start(t, cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: cyrustest.FreePort(t)})
	// Cyrus frontends reach a backend at its server name, host:port.
	var be [2]*Node
	for i := range be {
		name := fmt.Sprintf("127.0.0.1:%d", cyrustest.FreePort(t))
		be[i] = backendNode(t, t.TempDir(), name, cm.MupdateAddr(), func(c *Config) { c.IMAPListen = name })
	}
	admin1 := cyrustest.DialIMAP(t, be[0].IMAPAddr(), "admin", "secret")
	waitFor(t, "CREATE user.alice on be1", func() bool { _, _, err := admin1.Cmd("CREATE user.alice"); return err == nil })
	admin2 := cyrustest.DialIMAP(t, be[1].IMAPAddr(), "admin", "secret")
	waitFor(t, "CREATE shared on be2", func() bool { _, _, err := admin2.Cmd("CREATE shared"); return err == nil })
	if _, _, err := admin2.Cmd("SETACL shared alice lrswipkxtecda"); err != nil {
		t.Fatal(err)
	}

	fe := cyrustest.Start(t, cyrustest.RoleFrontend, cyrustest.Options{
		Master:   cm.MupdateAddr(),
		IMAPPort: cyrustest.FreePort(t),
		Conf:     map[string]string{"mupdate_retry_delay": "2"},
	})
	fe.AddUser(t, "alice", "alicepw", false)
	fe.Sync(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Cyrus frontend log:\n%s", lastLines(fe.Syslog(), 40))
		}
	})

	alice := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
	for i := 1; i <= 8; i++ {
		msg := fmt.Sprintf("Subject: message %d\r\n\r\nbody of message %d\r\n", i, i)
		if _, _, err := alice.Cmd("APPEND INBOX (\\Flagged) \"07-Dec-2026 06:00:0%d +0000\" {%d+}\r\n%s", i, len(msg), msg); err != nil {
			t.Fatalf("APPEND through the Cyrus frontend: %v", err)
		}
	}
	// shared (on be2) as alice sees it directly at be2.
	direct := cyrustest.DialIMAP(t, be[1].IMAPAddr(), "alice", "alicepw")
	sharedHas := func(what string, n int) {
		t.Helper()
		if _, _, err := direct.Cmd("EXAMINE shared"); err != nil {
			t.Fatal(err)
		}
		untagged, _, err := direct.Cmd("FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range untagged {
			if strings.Contains(l, " FETCH ") {
				got = append(got, l)
			}
		}
		if len(got) != n {
			t.Fatalf("%s: shared on be2 holds %d messages, want %d:\n%s", what, len(got), n, strings.Join(untagged, "\n"))
		}
		last := got[n-1]
		if !strings.Contains(last, `\Flagged`) || !strings.Contains(last, `"07-Dec-2026 06:00:0`) || !strings.Contains(last, "body of message") {
			t.Errorf("%s: copied message lost its flags, date or body: %q", what, last)
		}
	}

	// Each step names the session's CONDSTORE state, the command and
	// how many messages shared holds after it.
	steps := []struct {
		what, cmd string
		condstore bool
		shared    int
	}{
		{"UID COPY", "UID COPY 1 shared", false, 1},
		{"COPY", "COPY 2 shared", false, 2},
		{"UID MOVE", "UID MOVE 3 shared", false, 3},
		{"MOVE", "MOVE 4 shared", false, 4},
		{"UID COPY with CONDSTORE", "UID COPY 5 shared", true, 5},
		{"COPY with CONDSTORE", "COPY 6 shared", true, 6},
		{"UID MOVE with CONDSTORE", "UID MOVE 7 shared", true, 7},
		{"MOVE with CONDSTORE", "MOVE 8 shared", true, 8},
	}
	for _, s := range steps {
		sel := "SELECT INBOX"
		if s.condstore {
			sel += " (CONDSTORE)"
		}
		if _, _, err := alice.Cmd("%s", sel); err != nil {
			t.Fatalf("%s: %s: %v", s.what, sel, err)
		}
		if s.condstore {
			// A flag change since SELECT: the message a Cyrus backend
			// would report with its MODSEQ.
			if _, _, err := alice.Cmd("STORE 1:* +FLAGS.SILENT (\\Answered)"); err != nil {
				t.Fatalf("%s: STORE: %v", s.what, err)
			}
		}
		// MOVE names sequence numbers; earlier MOVEs may have removed
		// messages, so find the one meant by its UID.
		cmd := s.cmd
		if strings.HasPrefix(cmd, "MOVE ") || strings.HasPrefix(cmd, "COPY ") {
			cmd = bySeq(t, alice, cmd)
		}
		untagged, _, err := alice.Cmd("%s", cmd)
		if err != nil {
			t.Fatalf("%s across backends through the Cyrus frontend: %v\n%s", s.what, err, strings.Join(untagged, "\n"))
		}
		if _, _, err := alice.Cmd("NOOP"); err != nil {
			t.Fatalf("%s: the session did not survive: %v", s.what, err)
		}
		sharedHas(s.what, s.shared)
	}

	// And back: from shared (be2) to INBOX (be1).
	if _, _, err := alice.Cmd("SELECT shared (CONDSTORE)"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.Cmd("UID COPY 1:* INBOX"); err != nil {
		t.Fatalf("UID COPY from be2 to be1: %v", err)
	}

	// Subscriptions live with the INBOX (be1) and may name any mailbox.
	if _, _, err := alice.Cmd("SUBSCRIBE shared"); err != nil {
		t.Errorf("SUBSCRIBE to a mailbox on the other backend: %v", err)
	} else if lsub, _, err := alice.Cmd(`LSUB "" "*"`); err != nil || !strings.Contains(strings.Join(lsub, "\n"), "shared") {
		t.Errorf("LSUB after SUBSCRIBE shared: %q %v", lsub, err)
	}
}

// bySeq turns "COPY|MOVE <uid> dest" into the same command with the
// message's current sequence number.
func bySeq(t *testing.T, c *cyrustest.IMAP, cmd string) string {
	t.Helper()
	f := strings.Fields(cmd)
	untagged, _, err := c.Cmd("UID SEARCH UID %s", f[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(untagged) == 0 || strings.TrimSpace(untagged[0]) == "* SEARCH" {
		t.Fatalf("UID %s is gone: %q", f[1], untagged)
	}
	untagged, _, err = c.Cmd("SEARCH UID %s", f[1])
	if err != nil || len(untagged) == 0 {
		t.Fatalf("SEARCH UID %s: %q %v", f[1], untagged, err)
	}
	seq := strings.TrimPrefix(untagged[0], "* SEARCH ")
	return f[0] + " " + seq + " " + f[2]
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
