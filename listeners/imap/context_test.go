package imap

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestContextSearchUpdate: SEARCH RETURN (UPDATE) keeps a result current
// (RFC 5267 4.3) for changes by the session itself and by others: ADDTO
// and REMOVEFROM after the command that made them or at the next NOOP,
// REMOVEFROM before the EXPUNGE of a message in the result; CANCELUPDATE
// stops it, a new selection forgets it, and a session keeps at most
// maxContexts.
func TestContextSearchUpdate(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	for i := range 4 {
		msg := testMessage(fmt.Sprintf("m%d", i+1), "body")
		a.cmd("2", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "OK")
	}
	a.cmd("3", "SELECT INBOX", "OK")
	b := e.raw()
	b.cmd("1", "LOGIN alice alicepw", "OK")
	b.cmd("2", "SELECT INBOX", "OK")

	check := func(c *raw, tag, cmd string, want ...string) {
		t.Helper()
		if got := untagged(c.cmd(tag, cmd, "OK")); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", cmd, got, want)
		}
	}
	check(a, "s1", "SEARCH RETURN (UPDATE ALL) FLAGGED", `* ESEARCH (TAG "s1")`)
	check(a, "s2", "UID SEARCH RETURN (UPDATE) UNSEEN", `* ESEARCH (TAG "s2") UID`)
	check(a, "4", `STORE 2,4 +FLAGS.SILENT (\Flagged)`, `* ESEARCH (TAG "s1") ADDTO (1 2,4)`)
	b.cmd("3", `STORE 1 +FLAGS.SILENT (\Flagged \Seen)`, "OK")
	check(a, "5", "NOOP",
		`* 1 FETCH (UID 1 FLAGS (\Flagged \Seen \Recent))`,
		`* ESEARCH (TAG "s1") ADDTO (1 1)`,
		`* ESEARCH (TAG "s2") UID REMOVEFROM (1 1)`)
	check(a, "6", `STORE 4 -FLAGS.SILENT (\Flagged)`, `* ESEARCH (TAG "s1") REMOVEFROM (3 4)`)
	b.cmd("4", `STORE 2 +FLAGS.SILENT (\Deleted)`, "OK")
	b.cmd("5", "EXPUNGE", "OK")
	check(a, "7", "NOOP",
		`* ESEARCH (TAG "s1") REMOVEFROM (2 2)`,
		`* ESEARCH (TAG "s2") UID REMOVEFROM (1 2)`,
		"* 2 EXPUNGE")
	msg := testMessage("m5", "body")
	b.cmd("6", fmt.Sprintf("APPEND INBOX (\\Flagged) {%d+}\r\n%s", len(msg), msg), "OK")
	check(a, "8", "NOOP", "* 4 EXISTS",
		`* ESEARCH (TAG "s1") ADDTO (2 4)`,
		`* ESEARCH (TAG "s2") UID ADDTO (3 5)`)
	a.cmd("9", `CANCELUPDATE "s1"`, "OK")
	a.cmd("10", `CANCELUPDATE "s1"`, "BAD")
	check(a, "11", `STORE 3 +FLAGS.SILENT (\Flagged)`)
	for i := range maxContexts - 1 {
		a.cmd(fmt.Sprint("c", i), "SEARCH RETURN (UPDATE) ALL", "OK")
	}
	got := a.cmd("full", "SEARCH RETURN (UPDATE) ALL", "NO")
	if last := got[len(got)-1]; !strings.HasPrefix(last, `full NO [NOUPDATE "full"]`) {
		t.Errorf("one search too many: %q", last)
	}
	a.cmd("13", "SELECT INBOX", "OK")
	a.cmd("14", `CANCELUPDATE "s2"`, "BAD")
}

// TestContextSortUpdate: SORT RETURN (UPDATE) (CONTEXT=SORT, RFC 5267
// 4.3) keeps a sorted result current: a message joining it is told with
// its position in sort order, one leaving it (a flag change, an expunge)
// with the position it had.
func TestContextSortUpdate(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	for _, s := range []string{"delta", "alpha", "charlie"} {
		msg := testMessage(s, "body")
		a.cmd("2", fmt.Sprintf("APPEND INBOX (\\Flagged) {%d+}\r\n%s", len(msg), msg), "OK")
	}
	a.cmd("3", "SELECT INBOX", "OK")
	b := e.raw()
	b.cmd("1", "LOGIN alice alicepw", "OK")
	b.cmd("2", "SELECT INBOX", "OK")
	check := func(c *raw, tag, cmd string, want ...string) {
		t.Helper()
		if got := untagged(c.cmd(tag, cmd, "OK")); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", cmd, got, want)
		}
	}
	// Sorted by subject: alpha (2), charlie (3), delta (1).
	check(a, "s", "UID SORT RETURN (UPDATE ALL) (SUBJECT) UTF-8 FLAGGED", `* ESEARCH (TAG "s") UID ALL 2:3,1`)
	msg := testMessage("bravo", "body")
	b.cmd("3", fmt.Sprintf("APPEND INBOX (\\Flagged) {%d+}\r\n%s", len(msg), msg), "OK")
	check(a, "4", "NOOP", "* 4 EXISTS", `* ESEARCH (TAG "s") UID ADDTO (2 4)`)
	b.cmd("4", `UID STORE 3 -FLAGS.SILENT (\Flagged)`, "OK")
	check(a, "5", "NOOP", `* 3 FETCH (UID 3 FLAGS (\Recent))`, `* ESEARCH (TAG "s") UID REMOVEFROM (3 3)`)
	b.cmd("5", `UID STORE 2 +FLAGS.SILENT (\Deleted)`, "OK")
	b.cmd("6", "EXPUNGE", "OK")
	check(a, "6", "NOOP", `* ESEARCH (TAG "s") UID REMOVEFROM (1 2)`, "* 2 EXPUNGE")
	check(a, "7", "UID SORT RETURN (ALL) (SUBJECT) UTF-8 FLAGGED", `* ESEARCH (TAG "7") UID ALL 4,1`)
}
