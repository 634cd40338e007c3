package imap

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// code returns the number in a "[NAME n]" response code among lines.
func code(t *testing.T, lines []string, name string) string {
	t.Helper()
	re := regexp.MustCompile(`\[` + name + ` (\d+)\]`)
	for _, l := range lines {
		if m := re.FindStringSubmatch(l); m != nil {
			return m[1]
		}
	}
	t.Fatalf("no %s in %q", name, lines)
	return ""
}

// untagged keeps the lines that are neither the tagged reply nor among
// the usual SELECT responses, so a resync's own lines can be compared
// exactly.
func untagged(lines []string) []string {
	var out []string
	for _, l := range lines[:len(lines)-1] {
		if strings.HasPrefix(l, "* FLAGS") || strings.HasPrefix(l, "* OK [") ||
			strings.HasSuffix(l, " RECENT") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// TestQresyncAfterReconnect: a client that knew modseq N and UIDs 1:10
// reconnects after another session expunged two of them, flagged one and
// added two; SELECT (QRESYNC ...) tells it exactly that (RFC 7162 3.2.5).
func TestQresyncAfterReconnect(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	for i := range 10 {
		msg := testMessage(fmt.Sprintf("m%d", i+1), "body")
		a.cmd("2", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "OK")
	}
	a.cmd("3", "ENABLE QRESYNC", "OK")
	sel := a.cmd("4", "SELECT INBOX", "OK [READ-WRITE]")
	uv, n := code(t, sel, "UIDVALIDITY"), code(t, sel, "HIGHESTMODSEQ")
	a.cmd("5", "LOGOUT", "OK")

	b := e.raw()
	b.cmd("1", "LOGIN alice alicepw", "OK")
	b.cmd("2", "SELECT INBOX", "OK")
	b.cmd("3", `STORE 2,3 +FLAGS.SILENT (\Deleted)`, "OK")
	b.cmd("4", "EXPUNGE", "OK")
	b.cmd("5", `UID STORE 5 +FLAGS.SILENT (\Flagged)`, "OK")
	for _, s := range []string{"m11", "m12"} {
		msg := testMessage(s, "body")
		b.cmd("6", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "OK")
	}

	c := e.raw()
	c.cmd("1", "LOGIN alice alicepw", "OK")
	c.cmd("2", "ENABLE QRESYNC", "OK")
	got := untagged(c.cmd("3", fmt.Sprintf("SELECT INBOX (QRESYNC (%s %s 1:10))", uv, n), "OK [READ-WRITE]"))
	want := []string{
		"* 10 EXISTS",
		"* VANISHED (EARLIER) 2:3",
		`* 3 FETCH (UID 5 FLAGS (\Flagged) MODSEQ (` + modseqOf(t, b, 5) + "))",
	}
	if !slices.Equal(got, want) {
		t.Errorf("SELECT (QRESYNC) with known UIDs:\n got %q\nwant %q", got, want)
	}
	// Without known UIDs the new messages' flags come too; seq-match data
	// is accepted.
	got = untagged(c.cmd("4", fmt.Sprintf("EXAMINE INBOX (QRESYNC (%s %s (1:3 1:3)))", uv, n), "OK [READ-ONLY]"))
	if len(got) != 5 || got[1] != "* VANISHED (EARLIER) 2:3" || !strings.HasPrefix(got[2], "* 3 FETCH (UID 5 ") ||
		!strings.HasPrefix(got[3], "* 9 FETCH (UID 11 ") || !strings.HasPrefix(got[4], "* 10 FETCH (UID 12 ") {
		t.Errorf("EXAMINE (QRESYNC) without known UIDs: %q", got)
	}
	// A UIDVALIDITY the client does not know gets a plain SELECT.
	got = untagged(c.cmd("5", fmt.Sprintf("SELECT INBOX (QRESYNC (%d %s))", atoi(t, uv)+1, n), "OK"))
	if len(got) != 1 || got[0] != "* 10 EXISTS" {
		t.Errorf("SELECT (QRESYNC) with another UIDVALIDITY: %q", got)
	}
	// UID FETCH (CHANGEDSINCE n VANISHED) (RFC 7162 3.2.6).
	got = c.cmd("6", "UID FETCH 1:7 (FLAGS) (CHANGEDSINCE "+n+" VANISHED)", "OK")
	if len(got) != 3 || got[0] != "* VANISHED (EARLIER) 2:3" || !strings.HasPrefix(got[1], "* 3 FETCH (UID 5 ") {
		t.Errorf("UID FETCH (CHANGEDSINCE VANISHED): %q", got)
	}
	// "$" names a saved result, expunged members included.
	c.cmd("7", "UID SEARCH RETURN (SAVE) UID 5:7", "OK")
	b.cmd("7", "UID STORE 6 +FLAGS.SILENT (\\Deleted)", "OK")
	b.cmd("8", "UID EXPUNGE 6", "OK")
	if got := untagged(c.cmd("8", "NOOP", "OK")); !slices.Equal(got, []string{"* VANISHED 6"}) {
		t.Errorf("NOOP after another session's expunge: %q", got)
	}
	got = c.cmd("9", "UID FETCH $ (FLAGS) (CHANGEDSINCE "+n+" VANISHED)", "OK")
	if len(got) != 3 || got[0] != "* VANISHED (EARLIER) 6" || !strings.HasPrefix(got[1], "* 3 FETCH (UID 5 ") {
		t.Errorf("UID FETCH $ (CHANGEDSINCE VANISHED): %q", got)
	}
}

// modseqOf is uid's MODSEQ as s (with the mailbox selected) sees it.
func modseqOf(t *testing.T, s *raw, uid int) string {
	t.Helper()
	return code2(t, s.cmd("m", fmt.Sprintf("UID FETCH %d (MODSEQ)", uid), "OK"))
}

func code2(t *testing.T, lines []string) string {
	t.Helper()
	m := regexp.MustCompile(`MODSEQ \((\d+)\)`).FindStringSubmatch(strings.Join(lines, "\n"))
	if m == nil {
		t.Fatalf("no MODSEQ in %q", lines)
	}
	return m[1]
}

// TestQresyncVanished: once QRESYNC is on, expunges are told as VANISHED,
// never EXPUNGE, whoever made them, with the HIGHESTMODSEQ they bring;
// held back during a FETCH, they cap the HIGHESTMODSEQ below them.
func TestQresyncVanished(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	for i := range 8 {
		msg := testMessage(fmt.Sprintf("m%d", i+1), "body")
		a.cmd("2", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "OK")
	}
	a.cmd("3", "ENABLE QRESYNC", "OK")
	a.cmd("4", "SELECT INBOX", "OK")
	b := e.raw()
	b.cmd("1", "LOGIN alice alicepw", "OK")
	b.cmd("2", "ENABLE QRESYNC", "OK")
	b.cmd("3", "SELECT INBOX", "OK")

	// Its own EXPUNGE: VANISHED, and HIGHESTMODSEQ in the tagged OK.
	a.cmd("5", `STORE 1,2 +FLAGS.SILENT (\Deleted)`, "OK")
	got := a.cmd("6", "EXPUNGE", "OK [HIGHESTMODSEQ ")
	if len(got) != 2 || got[0] != "* VANISHED 1:2" {
		t.Errorf("EXPUNGE under QRESYNC: %q", got)
	}
	b.cmd("3b", "NOOP", "OK")

	// Another session's expunge is held back during FETCH; the flag change
	// beside it comes with a HIGHESTMODSEQ below the expunge.
	b.cmd("4", `UID STORE 3 +FLAGS.SILENT (\Deleted)`, "OK")
	expunged := atoi(t, code(t, b.cmd("5", "UID EXPUNGE 3", "OK"), "HIGHESTMODSEQ"))
	b.cmd("6", `UID STORE 8 +FLAGS.SILENT (\Flagged)`, "OK")
	got = a.cmd("7", "FETCH 1 (UID)", "OK")
	if len(got) != 4 || !strings.HasPrefix(got[1], "* 6 FETCH (UID 8 FLAGS (\\Flagged") ||
		got[2] != fmt.Sprintf("* OK [HIGHESTMODSEQ %d] Ok", expunged-1) {
		t.Errorf("FETCH with an expunge held back: %q", got)
	}
	if strings.Contains(strings.Join(got, "\n"), "VANISHED") || strings.Contains(strings.Join(got, "\n"), "EXPUNGE") {
		t.Errorf("expunge told during FETCH: %q", got)
	}
	got = a.cmd("8", "NOOP", "OK")
	if len(got) != 3 || got[0] != "* VANISHED 3" || !strings.HasPrefix(got[1], "* OK [HIGHESTMODSEQ ") {
		t.Errorf("NOOP after another session's expunge: %q", got)
	}
	// So is an expunge reaching a session in IDLE.
	a.send("idle IDLE\r\n")
	if l := a.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	b.cmd("6b", `UID STORE 6 +FLAGS.SILENT (\Deleted)`, "OK")
	b.cmd("6c", "UID EXPUNGE 6", "OK")
	// The flag change may come first, in its own wake-up.
	l := a.line()
	if strings.Contains(l, " FETCH ") {
		l = a.line()
	}
	if l != "* VANISHED 6" {
		t.Errorf("IDLE after another session's expunge: %q", l)
	}
	a.send("DONE\r\n")
	a.until("idle ")
	// MOVE is told as VANISHED too.
	a.cmd("9", "CREATE INBOX.Other", "OK")
	got = a.cmd("10", "UID MOVE 4:5 INBOX.Other", "OK")
	if all := strings.Join(got, "\n"); !strings.Contains(all, "* VANISHED 4:5") || strings.Contains(all, "EXPUNGE") {
		t.Errorf("MOVE under QRESYNC: %q", got)
	}
	// Every FETCH response carries the UID (RFC 7162 3.2.4), STORE's too.
	for _, c := range []string{"FETCH 1 (FLAGS)", `STORE 1 +FLAGS (\Seen)`, `STORE 1 -FLAGS.SILENT (\Seen)`} {
		got = a.cmd("11", c, "OK")
		if len(got) != 2 || !strings.HasPrefix(got[0], "* 1 FETCH (UID 7 ") {
			t.Errorf("%s under QRESYNC: %q", c, got)
		}
	}
	// CLOSE expunges silently, with no HIGHESTMODSEQ, which the client
	// could not tie to what it was told (RFC 7162 3.2.8).
	a.cmd("12", `STORE 1 +FLAGS.SILENT (\Deleted)`, "OK")
	if got = a.cmd("13", "CLOSE", "OK"); len(got) != 1 || strings.Contains(got[0], "HIGHESTMODSEQ") {
		t.Errorf("CLOSE under QRESYNC: %q", got)
	}
	if got = a.cmd("14", "SELECT INBOX", "OK"); strings.Contains(strings.Join(got, "\n"), "CLOSED") || !slices.Contains(got, "* 1 EXISTS") {
		t.Errorf("SELECT after CLOSE: %q", got)
	}
}

// TestQresyncBad: QRESYNC syntax a server must refuse with BAD.
func TestQresyncBad(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "SELECT INBOX (QRESYNC (1 1))", "BAD") // not enabled
	a.cmd("3", "ENABLE QRESYNC", "OK")
	for _, args := range []string{"(QRESYNC)", "(QRESYNC (1))", "(QRESYNC (0 1))", "(QRESYNC (1 1 x))", "(QRESYNC (1 1 1:2 (1)))", "(QRESYNC (1 1 4294967296))",
		"(QRESYNC (1 9223372036854775808))", "(QRESYNC (1 1 1:*))", "(QRESYNC (1 1 (1:* 1:2)))",
		"(QRESYNC (1 1 1:9 (1:3 2,4)))"} {
		a.cmd("4", "SELECT INBOX "+args, "BAD")
	}
	// Well-formed seq-match data is accepted.
	a.cmd("4a", "SELECT INBOX (QRESYNC (1 1 1:9 (1,3:4 2,5:6)))", "OK")
	a.cmd("5", "SELECT INBOX", "OK")
	a.cmd("6", "UID FETCH 1:* (FLAGS) (VANISHED)", "BAD")
	a.cmd("7", "FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "BAD")
	a.cmd("8", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)", "OK")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
