package imap

import (
	"strings"
	"testing"
)

// TestFlagListTrailingSpace: the APPEND a Cyrus 3.6 frontend sends when it
// copies a message across backends has a space after its last flag; it is
// taken, while a list that is broken anywhere else is still BAD.
func TestFlagListTrailingSpace(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", `APPEND INBOX (\Flagged ) "07-Dec-2026 06:00:01 +0000" {10+}`+"\r\nSubject: x", "OK")
	a.cmd("3", `APPEND INBOX (\Seen $Label1 ) {10+}`+"\r\nSubject: y", "OK")
	a.cmd("4", "SELECT INBOX", "OK")
	got := a.cmd("5", "FETCH 1:2 (FLAGS)", "OK")
	if len(got) != 3 || !strings.Contains(got[0], `\Flagged`) || !strings.Contains(got[1], `\Seen $Label1`) {
		t.Errorf("flags after APPEND: %q", got)
	}
	for _, flags := range []string{`( \Seen)`, `(\Seen  \Draft)`, `(\Seen\Draft)`, `( )`} {
		a.cmd("6", "STORE 1 FLAGS "+flags, "BAD")
	}
	a.cmd("7", `STORE 1 FLAGS (\Seen \Draft )`, "OK")
}
