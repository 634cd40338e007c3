package imap

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestObjectID: OBJECTID (RFC 8474): CREATE, SELECT, STATUS and
// LIST-STATUS give one MAILBOXID that RENAME keeps and a new mailbox of
// the same name does not get; a message and its copy share an EMAILID,
// which SEARCH finds; THREADID is NIL.
func TestObjectID(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	c := e.raw()
	c.cmd("1", "LOGIN alice alicepw", "OK")
	idRE := regexp.MustCompile(`MAILBOXID \(([A-Za-z0-9_-]+)\)`)
	idOf := func(lines []string) string {
		t.Helper()
		m := idRE.FindStringSubmatch(strings.Join(lines, "\n"))
		if m == nil {
			t.Fatalf("no MAILBOXID in %q", lines)
		}
		return m[1]
	}
	created := idOf(c.cmd("2", "CREATE INBOX.a", "OK [MAILBOXID"))
	if got := idOf(c.cmd("3", "STATUS INBOX.a (MAILBOXID)", "OK")); got != created {
		t.Errorf("STATUS MAILBOXID %s, CREATE said %s", got, created)
	}
	c.cmd("4", "RENAME INBOX.a INBOX.b", "OK")
	if got := idOf(c.cmd("5", "SELECT INBOX.b", "OK")); got != created {
		t.Errorf("SELECT after RENAME: MAILBOXID %s, want %s", got, created)
	}
	if got := idOf(c.cmd("6", `LIST "" INBOX.b RETURN (STATUS (MAILBOXID))`, "OK")); got != created {
		t.Errorf("LIST-STATUS MAILBOXID %s, want %s", got, created)
	}
	if again := idOf(c.cmd("7", "CREATE INBOX.a", "OK")); again == created {
		t.Errorf("a new INBOX.a got the old mailbox's id %s", again)
	}
	for _, s := range []string{"one", "two"} {
		msg := testMessage(s, "body")
		c.cmd("8", fmt.Sprintf("APPEND INBOX.b {%d+}\r\n%s", len(msg), msg), "OK")
	}
	c.cmd("9", "NOOP", "OK")
	c.cmd("10", "COPY 1 INBOX.a", "OK")
	emailRE := regexp.MustCompile(`EMAILID \(([A-Za-z0-9_-]+)\) THREADID NIL`)
	got := c.cmd("11", "FETCH 1:2 (EMAILID THREADID)", "OK")
	var ids []string
	for _, l := range got[:len(got)-1] {
		m := emailRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("FETCH EMAILID THREADID: %q", got)
		}
		ids = append(ids, m[1])
	}
	if ids[0] == ids[1] {
		t.Errorf("two messages share EMAILID %s", ids[0])
	}
	if got := untagged(c.cmd("12", "SEARCH EMAILID "+ids[1], "OK")); !slices.Equal(got, []string{"* SEARCH 2"}) {
		t.Errorf("SEARCH EMAILID: %q", got)
	}
	if got := untagged(c.cmd("13", "SEARCH THREADID T1", "OK")); !slices.Equal(got, []string{"* SEARCH"}) {
		t.Errorf("SEARCH THREADID: %q", got)
	}
	c.cmd("14", "SELECT INBOX.a", "OK")
	if got := strings.Join(c.cmd("15", "FETCH 1 EMAILID", "OK"), "\n"); !strings.Contains(got, "EMAILID ("+ids[0]+")") {
		t.Errorf("the copy's EMAILID: %q, want %s", got, ids[0])
	}
}

// TestSaveDate: SAVEDATE (RFC 8514): FETCH SAVEDATE is when the message
// came into the mailbox, by APPEND or COPY, whatever its internal date;
// SAVEDBEFORE, SAVEDON and SAVEDSINCE search by it, and
// SAVEDATESUPPORTED matches every message.
func TestSaveDate(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	c := e.raw()
	c.cmd("1", "LOGIN alice alicepw", "OK")
	msg := testMessage("old", "body")
	c.cmd("2", fmt.Sprintf(`APPEND INBOX "01-Jan-2001 10:00:00 +0000" {%d+}`+"\r\n%s", len(msg), msg), "OK")
	c.cmd("3", "SELECT INBOX", "OK")
	today := time.Now().UTC().Format("02-Jan-2006")
	got := strings.Join(c.cmd("4", "FETCH 1 (INTERNALDATE SAVEDATE)", "OK"), "\n")
	if !strings.Contains(got, `INTERNALDATE "01-Jan-2001 10:00:00 +0000"`) || !strings.Contains(got, `SAVEDATE "`+today) {
		t.Errorf("FETCH SAVEDATE: %s", got)
	}
	for key, want := range map[string]string{
		"SAVEDON " + today:        "* SEARCH 1",
		"SAVEDSINCE " + today:     "* SEARCH 1",
		"SAVEDBEFORE " + today:    "* SEARCH",
		"SAVEDBEFORE 01-Jan-2002": "* SEARCH",
		"BEFORE 01-Jan-2002":      "* SEARCH 1",
		"SAVEDATESUPPORTED":       "* SEARCH 1",
		"SAVEDSINCE " + time.Now().AddDate(0, 0, 2).Format("02-Jan-2006"): "* SEARCH",
	} {
		if got := untagged(c.cmd("s", "SEARCH "+key, "OK")); !slices.Equal(got, []string{want}) {
			t.Errorf("SEARCH %s: %q, want %q", key, got, want)
		}
	}
	c.cmd("5", "CREATE INBOX.c", "OK")
	c.cmd("6", "COPY 1 INBOX.c", "OK")
	c.cmd("7", "SELECT INBOX.c", "OK")
	if got := strings.Join(c.cmd("8", "FETCH 1 SAVEDATE", "OK"), "\n"); !strings.Contains(got, `SAVEDATE "`+today) {
		t.Errorf("FETCH SAVEDATE of a copy: %s", got)
	}
}
