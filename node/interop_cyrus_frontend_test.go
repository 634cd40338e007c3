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
	be, fe := cyrusFrontendMurder(t)

	alice := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
	for i := 1; i <= 8; i++ {
		msg := fmt.Sprintf("Subject: message %d\r\n\r\nbody of message %d\r\n", i, i)
		if _, _, err := alice.Cmd("APPEND INBOX (\\Flagged) \"07-Dec-2026 06:00:0%d +0000\" {%d+}\r\n%s", i, len(msg), msg); err != nil {
			t.Fatalf("APPEND through the Cyrus frontend: %v", err)
		}
	}
	alice.Close()
	// shared (on be2) as alice sees it directly at be2: the messages,
	// and the last one with its flags, date and body.
	direct := cyrustest.DialIMAP(t, be[1].IMAPAddr(), "alice", "alicepw")
	shared := func() (int, string) {
		t.Helper()
		if _, _, err := direct.Cmd("EXAMINE shared"); err != nil {
			t.Fatal(err)
		}
		untagged, _, err := direct.Cmd("FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[])")
		if err != nil && !strings.Contains(err.Error(), "No matching messages") {
			t.Fatal(err)
		}
		var got []string
		for _, l := range untagged {
			if strings.Contains(l, " FETCH ") {
				got = append(got, l)
			}
		}
		if len(got) == 0 {
			return 0, ""
		}
		return len(got), got[len(got)-1]
	}

	// One message of shared's own, so that copying back has something to
	// copy whatever the steps below do.
	msg := "Subject: from be2\r\n\r\nbody of message on be2\r\n"
	if _, _, err := direct.Cmd("APPEND shared (\\Flagged) \"07-Dec-2026 06:00:09 +0000\" {%d+}\r\n%s", len(msg), msg); err != nil {
		t.Fatal(err)
	}

	// Each step copies or moves one message, by its UID in INBOX, from
	// be1 to shared on be2, in a session of its own: a step that kills
	// its session leaves the next ones their chance. Cyrus 3.6.1 runs a
	// cross-backend MOVE as a COPY (the source keeps the message;
	// murder-frontend.md 5.8), so only the destination is checked.
	steps := []struct {
		what, cmd string
		condstore bool
	}{
		{"UID COPY", "UID COPY 1 shared", false},
		{"COPY", "COPY 2 shared", false},
		{"UID MOVE", "UID MOVE 3 shared", false},
		{"MOVE", "MOVE 4 shared", false},
		{"UID COPY with CONDSTORE", "UID COPY 5 shared", true},
		{"COPY with CONDSTORE", "COPY 6 shared", true},
		{"UID MOVE with CONDSTORE", "UID MOVE 7 shared", true},
		{"MOVE with CONDSTORE", "MOVE 8 shared", true},
	}
	for _, s := range steps {
		t.Run(s.what, func(t *testing.T) {
			c := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
			sel := "SELECT INBOX"
			if s.condstore {
				sel += " (CONDSTORE)"
			}
			if _, _, err := c.Cmd("%s", sel); err != nil {
				t.Fatalf("%s: %v", sel, err)
			}
			if s.condstore {
				// A flag change since SELECT: a Cyrus backend would
				// report that message with its MODSEQ.
				if _, _, err := c.Cmd("STORE 1:* +FLAGS.SILENT (\\Answered)"); err != nil {
					t.Fatalf("STORE: %v", err)
				}
			}
			cmd := s.cmd
			if !strings.HasPrefix(cmd, "UID ") {
				cmd = bySeq(t, c, cmd)
			}
			before, _ := shared()
			untagged, _, err := c.Cmd("%s", cmd)
			if err != nil {
				t.Fatalf("%s across backends through the Cyrus frontend: %v\n%s", cmd, err, strings.Join(untagged, "\n"))
			}
			if _, _, err := c.Cmd("NOOP"); err != nil {
				t.Fatalf("the session did not survive %s: %v", cmd, err)
			}
			n, last := shared()
			if n != before+1 {
				t.Fatalf("shared on be2 holds %d messages after %s, want %d", n, cmd, before+1)
			}
			if !strings.Contains(last, `\Flagged`) || !strings.Contains(last, `"07-Dec-2026 06:00:0`) || !strings.Contains(last, "body of message") {
				t.Errorf("the copied message lost its flags, date or body: %q", last)
			}
		})
	}

	t.Run("UID COPY back from be2 to be1", func(t *testing.T) {
		c := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
		if _, _, err := c.Cmd("SELECT shared (CONDSTORE)"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Cmd("UID COPY 1:* INBOX"); err != nil {
			t.Fatalf("UID COPY from be2 to be1: %v", err)
		}
		if _, _, err := c.Cmd("NOOP"); err != nil {
			t.Fatalf("the session did not survive: %v", err)
		}
	})

	// Subscriptions live with the INBOX (be1) and may name any mailbox
	// of the murder.
	t.Run("SUBSCRIBE to a mailbox on the other backend", func(t *testing.T) {
		c := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
		if _, _, err := c.Cmd("SUBSCRIBE shared"); err != nil {
			t.Fatal(err)
		}
		lsub, _, err := c.Cmd(`LSUB "" "*"`)
		if err != nil || !strings.Contains(strings.Join(lsub, "\n"), "shared") {
			t.Errorf("LSUB after SUBSCRIBE shared: %q %v", lsub, err)
		}
	})

	// The frontend asks the INBOX's backend the same LIST-EXTENDED
	// commands (it needs the backend to have LIST-EXTENDED).
	t.Run("LIST (SUBSCRIBED)", func(t *testing.T) {
		c := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
		for _, cmd := range []string{`LIST (SUBSCRIBED) "" "*"`, `LIST "" "*" RETURN (SUBSCRIBED)`} {
			list, _, err := c.Cmd("%s", cmd)
			var shared []string
			for _, l := range list {
				if strings.HasSuffix(l, `"." shared`) {
					shared = append(shared, l)
				}
			}
			if err != nil || len(shared) != 1 || !strings.Contains(shared[0], `\Subscribed`) {
				t.Errorf("%s through the Cyrus frontend: %v\n%s", cmd, err, strings.Join(list, "\n"))
			}
		}
	})
}

// bySeq turns "COPY|MOVE <uid> dest" into the same command with the
// message's current sequence number (earlier MOVEs may have removed
// messages before it).
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

// cyrusFrontendMurder starts a real Cyrus 3.6 mupdate master, two Rookery
// backends pushing to it (user.alice on the first, "shared" on the second,
// alice may do anything there) and a real Cyrus 3.6 frontend that knows
// alice; it returns the backends and the frontend. The frontend's log is
// printed if the test fails.
func cyrusFrontendMurder(t *testing.T) ([2]*Node, *cyrustest.Instance) {
	t.Helper()
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
	return be, fe
}
