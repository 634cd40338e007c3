package imap

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestMetadata: GETMETADATA and SETMETADATA (RFC 5464) on mailboxes and
// the server: private entries per user, shared ones for everyone with
// the rights, NIL for a missing entry, DEPTH, MAXSIZE with LONGENTRIES,
// the read-only Cyrus vendor entries, /private/specialuse tied to the
// mailbox's special use, entries kept through RENAME and dropped with
// the mailbox, and the limits.
func TestMetadata(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) {
		c.DiskSpace = func() (uint64, uint64, error) { return 3 << 20, 8 << 20, nil }
	})
	e.makeUsers("alice", "bob")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	b := e.raw()
	b.cmd("1", "LOGIN bob bobpw", "OK")
	admin := e.raw()
	admin.cmd("1", "LOGIN admin adminpw", "OK")
	check := func(c *raw, cmd string, want ...string) {
		t.Helper()
		if got := untagged(c.cmd("t", cmd, "OK")); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", cmd, got, want)
		}
	}
	if caps := strings.Join(a.cmd("c", "CAPABILITY", "OK"), " "); !strings.Contains(caps, " METADATA METADATA-SERVER ") {
		t.Errorf("capabilities: %s", caps)
	}
	check(a, "GETMETADATA INBOX /private/comment", `* METADATA INBOX ("/private/comment" NIL)`)
	a.cmd("s", `SETMETADATA INBOX (/private/comment "mine" /Shared/Comment "for all" /private/a/b "1" /private/a/b/c "2")`, "OK")
	check(a, "GETMETADATA INBOX (/shared/comment /private/comment)",
		`* METADATA INBOX ("/shared/comment" "for all" "/private/comment" "mine")`)
	check(a, "GETMETADATA (DEPTH 1) INBOX /private/a", `* METADATA INBOX ("/private/a/b" "1")`)
	check(a, "GETMETADATA (DEPTH infinity) INBOX /private/a", `* METADATA INBOX ("/private/a/b" "1" "/private/a/b/c" "2")`)
	got := a.cmd("m", "GETMETADATA (MAXSIZE 4) INBOX (/private/comment /shared/comment)", "OK")
	if !slices.Equal(untagged(got), []string{`* METADATA INBOX ("/private/comment" "mine")`}) ||
		!strings.HasPrefix(got[len(got)-1], "m OK [METADATA LONGENTRIES 7]") {
		t.Errorf("MAXSIZE: %q", got)
	}
	check(a, "GETMETADATA (DEPTH infinity) INBOX /shared/vendor/cmu/cyrus-imapd/size",
		`* METADATA INBOX ("/shared/vendor/cmu/cyrus-imapd/size" "0")`)
	a.cmd("ro", `SETMETADATA INBOX (/shared/vendor/cmu/cyrus-imapd/size "1")`, "NO")
	a.cmd("b1", `SETMETADATA INBOX (/other/x "1")`, "BAD")
	a.cmd("b2", `GETMETADATA INBOX /private/a/`, "BAD")
	a.cmd("b3", `GETMETADATA INBOX /private/*`, "BAD")

	// bob, with lr on alice's INBOX, reads her shared entries only and
	// may not set them.
	a.cmd("acl", "SETACL INBOX bob lr", "OK")
	check(b, "GETMETADATA user.alice (/shared/comment /private/comment)",
		`* METADATA user.alice ("/shared/comment" "for all" "/private/comment" NIL)`)
	b.cmd("n", `SETMETADATA user.alice (/shared/comment "bob was here")`, "NO")
	b.cmd("p", `SETMETADATA user.alice (/private/comment "bob's own")`, "OK")
	check(a, "GETMETADATA INBOX /private/comment", `* METADATA INBOX ("/private/comment" "mine")`)

	// The server's entries.
	check(a, `GETMETADATA "" /shared/vendor/cmu/cyrus-imapd/freespace/total`,
		`* METADATA "" ("/shared/vendor/cmu/cyrus-imapd/freespace/total" "3072;8192")`)
	a.cmd("sv", `SETMETADATA "" (/shared/admin "mailto:postmaster@example.com")`, "NO")
	admin.cmd("sv", `SETMETADATA "" (/shared/admin "mailto:postmaster@example.com")`, "OK")
	a.cmd("sp", `SETMETADATA "" (/private/vendor/x "y")`, "OK")
	check(a, `GETMETADATA "" (/shared/admin /private/vendor/x)`,
		`* METADATA "" ("/shared/admin" "mailto:postmaster@example.com" "/private/vendor/x" "y")`)

	// /private/specialuse is the mailbox's special use.
	a.cmd("cr", "CREATE INBOX.Sent", "OK")
	a.cmd("su", `SETMETADATA INBOX.Sent (/private/specialuse "\\Sent")`, "OK")
	check(a, `LIST (SPECIAL-USE) "" "*"`, `* LIST (\HasNoChildren \Sent) "." INBOX.Sent`)
	check(a, "GETMETADATA INBOX.Sent /private/specialuse", `* METADATA INBOX.Sent ("/private/specialuse" "\\Sent")`)
	got = a.cmd("su2", `SETMETADATA INBOX.Sent (/private/specialuse "\\Bogus")`, "NO")
	if !strings.HasPrefix(got[len(got)-1], "su2 NO [USEATTR]") {
		t.Errorf("a bad special use: %q", got)
	}

	// Entries follow RENAME, and go with DELETE.
	a.cmd("cm", `SETMETADATA INBOX.Sent (/shared/comment "sent mail")`, "OK")
	a.cmd("rn", "RENAME INBOX.Sent INBOX.Outbox", "OK")
	check(a, "GETMETADATA INBOX.Outbox /shared/comment", `* METADATA INBOX.Outbox ("/shared/comment" "sent mail")`)
	a.cmd("dl", "DELETE INBOX.Outbox", "OK")
	a.cmd("cr2", "CREATE INBOX.Outbox", "OK")
	check(a, "GETMETADATA INBOX.Outbox /shared/comment", `* METADATA INBOX.Outbox ("/shared/comment" NIL)`)

	// Limits: too many entries is refused whole.
	var sb strings.Builder
	for i := range maxMetadataEntries + 1 {
		fmt.Fprintf(&sb, ` /private/many/%d "x"`, i)
	}
	got = a.cmd("tm", "SETMETADATA INBOX.Outbox ("+sb.String()[1:]+")", "NO")
	if !strings.HasPrefix(got[len(got)-1], "tm NO [METADATA TOOMANY]") {
		t.Errorf("too many entries: %q", got[len(got)-1])
	}
	check(a, "GETMETADATA INBOX.Outbox /private/many/0", `* METADATA INBOX.Outbox ("/private/many/0" NIL)`)
	big := strings.Repeat("v", 64<<10+1)
	got = a.cmd("big", fmt.Sprintf("SETMETADATA INBOX (/private/big {%d+}\r\n%s)", len(big), big), "NO")
	if !strings.HasPrefix(got[len(got)-1], "big NO [") {
		t.Errorf("a value over the limit: %q", got[len(got)-1])
	}
	a.cmd("n", "NOOP", "OK")
}
