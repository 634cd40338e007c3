package imap

import (
	"strings"
	"testing"
)

// TestCondstoreFetchModSeq: with CONDSTORE enabled, a FETCH gets UID and
// MODSEQ unasked only when it sets \Seen (RFC 7162 3.1); "FETCH <set>
// (Flags Internaldate)" gets exactly those two items, as a Cyrus 3.6
// frontend's cross-backend COPY needs (it drops the session on any other).
func TestCondstoreFetchModSeq(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "APPEND INBOX {10+}\r\nSubject: x", "OK")
	a.cmd("3", "SELECT INBOX (CONDSTORE)", "OK [READ-WRITE]")
	a.cmd("4", "STORE 1 +FLAGS.SILENT (\\Flagged)", "OK")
	for _, cmd := range []string{"Fetch 1 (Flags Internaldate)", "Uid Fetch 1 (Flags Internaldate)", "FETCH 1 (FLAGS)"} {
		got := a.cmd("5", cmd, "OK")
		if len(got) != 2 || strings.Contains(got[0], "MODSEQ") || !strings.Contains(got[0], `FLAGS (\Flagged \Recent)`) {
			t.Errorf("%s under CONDSTORE: %q", cmd, got)
		}
	}
	// Setting \Seen is a flag change: UID, FLAGS and MODSEQ come with it.
	got := a.cmd("6", "FETCH 1 (BODY[])", "OK")
	if all := strings.Join(got, "\n"); !strings.HasPrefix(all, "* 1 FETCH (UID 1 ") || !strings.Contains(all, `\Seen`) || !strings.Contains(all, "MODSEQ (") {
		t.Errorf("FETCH that sets \\Seen under CONDSTORE: %q", got)
	}
	// An explicit MODSEQ is always answered.
	if got := a.cmd("7", "FETCH 1 (FLAGS MODSEQ)", "OK"); !strings.Contains(got[0], "MODSEQ (") {
		t.Errorf("FETCH (FLAGS MODSEQ): %q", got)
	}
}
