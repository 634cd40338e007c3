package imap

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestIMAP4rev2: a client that enables IMAP4rev2 names mailboxes in
// UTF-8 (an IMAP4rev1 client sees the same mailbox in modified UTF-7),
// gets no \Recent or RECENT, ESEARCH for SEARCH, SELECT's LIST line
// without UNSEEN, and STATUS DELETED.
func TestIMAP4rev2(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	c := e.raw()
	if caps := c.cmd("0", "CAPABILITY", "OK"); !strings.Contains(caps[0], " IMAP4rev2 ") {
		t.Errorf("IMAP4rev2 not announced: %s", caps[0])
	}
	c.cmd("1", "LOGIN alice alicepw", "OK")
	if got := untagged(c.cmd("2", "ENABLE IMAP4rev2", "OK")); !slices.Equal(got, []string{"* ENABLED IMAP4rev2"}) {
		t.Errorf("ENABLE IMAP4rev2: %q", got)
	}
	name := "INBOX.Entwürfe"
	c.cmd("3", fmt.Sprintf("CREATE {%d+}\r\n%s", len(name), name), "OK")
	for i := range 2 {
		msg := testMessage(fmt.Sprint("m", i), "body")
		c.cmd("4", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(msg), msg), "OK")
	}
	list := strings.Join(c.cmd("5", `LIST "" "INBOX.*"`, "OK"), "\n")
	if !strings.Contains(list, name) || strings.Contains(list, "&APw-") {
		t.Errorf("LIST in IMAP4rev2: %q", list)
	}
	old := e.raw()
	old.cmd("1", "LOGIN alice alicepw", "OK")
	if got := strings.Join(old.cmd("2", `LIST "" "INBOX.*"`, "OK"), "\n"); !strings.Contains(got, "INBOX.Entw&APw-rfe") {
		t.Errorf("LIST in IMAP4rev1: %q", got)
	}
	st := strings.Join(c.cmd("6", fmt.Sprintf("STATUS {%d+}\r\n%s (MESSAGES DELETED)", len(name), name), "OK"), "\n")
	if !strings.Contains(st, "Entwürfe") || !strings.Contains(st, "(MESSAGES 0 DELETED 0)") {
		t.Errorf("STATUS in IMAP4rev2: %q", st)
	}
	sel := untagged(c.cmd("7", "SELECT INBOX", "OK"))
	joined := strings.Join(sel, "\n")
	if strings.Contains(joined, "RECENT") || strings.Contains(joined, "UNSEEN") || !slices.Contains(sel, `* LIST (\HasChildren) "." INBOX`) {
		t.Errorf("SELECT in IMAP4rev2: %q", sel)
	}
	if got := strings.Join(c.cmd("8", "FETCH 1:* FLAGS", "OK"), "\n"); strings.Contains(got, `\Recent`) {
		t.Errorf("FETCH FLAGS in IMAP4rev2: %q", got)
	}
	c.cmd("9", `STORE 2 +FLAGS.SILENT (\Deleted)`, "OK")
	if got := untagged(c.cmd("10", "SEARCH ALL", "OK")); !slices.Equal(got, []string{`* ESEARCH (TAG "10") ALL 1:2`}) {
		t.Errorf("SEARCH in IMAP4rev2: %q", got)
	}
	if got := untagged(c.cmd("11", "UID SEARCH SUBJECT nothing", "OK")); !slices.Equal(got, []string{`* ESEARCH (TAG "11") UID`}) {
		t.Errorf("UID SEARCH with no match in IMAP4rev2: %q", got)
	}
	if got := untagged(c.cmd("12", "STATUS INBOX (DELETED)", "OK")); !slices.Equal(got, []string{"* STATUS INBOX (DELETED 1)"}) {
		t.Errorf("STATUS DELETED: %q", got)
	}
	// The IMAP4rev1 session still has \Recent (the IMAP4rev2 one claimed
	// none) and SEARCH.
	old.cmd("3", "SELECT INBOX", "OK")
	if got := strings.Join(old.cmd("4", "FETCH 1 FLAGS", "OK"), "\n"); !strings.Contains(got, `\Recent`) {
		t.Errorf("IMAP4rev1 FETCH FLAGS: %q", got)
	}
	if got := untagged(old.cmd("5", "SEARCH ALL", "OK")); !slices.Equal(got, []string{"* SEARCH 1 2"}) {
		t.Errorf("IMAP4rev1 SEARCH: %q", got)
	}
}
