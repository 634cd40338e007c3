package node

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/rookery/rookery/internal/cyrustest"
)

// TestCyrusFrontendQresyncToRookeryBackends: a real Cyrus 3.6 frontend
// passes ENABLE QRESYNC and SELECT (QRESYNC ...) on to a Rookery backend
// (imap/imapd.c cmd_select sends the parameters as the client gave them),
// and the client resynchronises through it: VANISHED (EARLIER) for the
// UIDs another client expunged, FETCH for the one it flagged. A
// cross-backend COPY, which the frontend runs itself with FETCHes on the
// source, works in that session, though QRESYNC adds UID to every FETCH
// response.
func TestCyrusFrontendQresyncToRookeryBackends(t *testing.T) {
	_, fe := cyrusFrontendMurder(t)
	cmd := func(c *cyrustest.IMAP, format string, args ...any) []string {
		t.Helper()
		untagged, _, err := c.Cmd(format, args...)
		if err != nil {
			t.Fatalf("%s: %v\n%s", fmt.Sprintf(format, args...), err, strings.Join(untagged, "\n"))
		}
		return untagged
	}
	code := func(lines []string, name string) string {
		t.Helper()
		m := regexp.MustCompile(`\[` + name + ` (\d+)\]`).FindStringSubmatch(strings.Join(lines, "\n"))
		if m == nil {
			t.Fatalf("no %s in %q", name, lines)
		}
		return m[1]
	}

	a := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
	for i := 1; i <= 6; i++ {
		msg := fmt.Sprintf("Subject: message %d\r\n\r\nbody %d\r\n", i, i)
		cmd(a, "APPEND INBOX {%d+}\r\n%s", len(msg), msg)
	}
	cmd(a, "ENABLE QRESYNC")
	sel := cmd(a, "SELECT INBOX")
	uv, n := code(sel, "UIDVALIDITY"), code(sel, "HIGHESTMODSEQ")
	a.Close()

	b := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
	cmd(b, "SELECT INBOX")
	cmd(b, `UID STORE 2:3 +FLAGS.SILENT (\Deleted)`)
	cmd(b, "EXPUNGE")
	cmd(b, `UID STORE 5 +FLAGS.SILENT (\Flagged)`)

	c := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
	cmd(c, "ENABLE QRESYNC")
	got := cmd(c, "SELECT INBOX (QRESYNC (%s %s 1:6))", uv, n)
	all := strings.Join(got, "\n")
	if !strings.Contains(all, "* VANISHED (EARLIER) 2:3") {
		t.Errorf("SELECT (QRESYNC) through the Cyrus frontend: no VANISHED (EARLIER) 2:3:\n%s", all)
	}
	if !regexp.MustCompile(`\* 3 FETCH \(UID 5 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)`).MatchString(all) {
		t.Errorf("SELECT (QRESYNC) through the Cyrus frontend: no FETCH of UID 5:\n%s", all)
	}
	// Another client's expunge reaches this one as VANISHED.
	cmd(b, `UID STORE 4 +FLAGS.SILENT (\Deleted)`)
	cmd(b, "EXPUNGE")
	if got := cmd(c, "NOOP"); !strings.Contains(strings.Join(got, "\n"), "* VANISHED 4") {
		t.Errorf("NOOP after another client's EXPUNGE:\n%s", strings.Join(got, "\n"))
	}
	cmd(c, "UID COPY 1 shared")
	cmd(c, "NOOP")
}
