package imap

import (
	"slices"
	"strings"
	"testing"
)

// TestMailboxNames: names a client of any frontend could not use are
// refused where they would be created or named as a target, so they never
// reach the store or the master.
func TestMailboxNames(t *testing.T) {
	reg := &fakeRegistry{entries: map[string]string{}}
	e := startEnv(t, t.TempDir(), func(c *Config) { c.Registry = reg })
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "CREATE INBOX.ok", "OK")
	a.cmd("3", "CREATE INBOX.caf&AOk-", "OK")
	lit := func(s string) string { return "{" + itoa(uint32(len(s))) + "+}\r\n" + s }
	for i, name := range []string{"INBOX.\xff\xfe", "INBOX.caf\xc3\xa9", "INBOX.&Jjo", "INBOX.&AGE-", "INBOX.a\x7fb",
		"INBOX.a\tb", "INBOX." + strings.Repeat("x", 500)} {
		tag := "c" + itoa(uint32(i))
		a.cmd(tag+"a", "CREATE "+lit(name), "NO Invalid mailbox name")
		a.cmd(tag+"b", "RENAME INBOX.ok "+lit(name), "NO Invalid mailbox name")
		a.cmd(tag+"c", "SUBSCRIBE "+lit(name), "NO Invalid mailbox name")
		a.cmd(tag+"d", "APPEND "+lit(name)+" {3+}\r\nx\r\n", "NO Invalid mailbox name")
	}
	a.cmd("4", "CREATE "+lit("INBOX.a\r\nb"), "NO Invalid mailbox name")
	a.cmd("5", "SELECT INBOX.ok", "OK")
	a.cmd("6", "APPEND INBOX.ok {3+}\r\nx\r\n", "OK")
	a.cmd("7", "COPY 1 "+lit("INBOX.&Jjo"), "NO Invalid mailbox name")
	a.cmd("8", "MOVE 1 "+lit("INBOX.caf\xc3\xa9"), "NO Invalid mailbox name")
	list := a.cmd("9", `LIST "" *`, "OK")
	want := []string{`* LIST (\HasChildren) "." INBOX`, `* LIST (\HasNoChildren) "." INBOX.caf&AOk-`,
		`* LIST (\HasNoChildren) "." INBOX.ok`}
	if !slices.Equal(list[:len(list)-1], want) {
		t.Errorf("LIST: %q\nwant %q", list, want)
	}

	// A name stored before the check is listed as a literal, and can
	// still be renamed or deleted.
	if _, err := e.store.CreateMailbox("user.alice.old\xff", "alice\tlrswipkxtecdan\t", ""); err != nil {
		t.Fatal(err)
	}
	list = a.cmd("10", `LIST "" INBOX.old*`, "OK")
	if want := []string{`* LIST (\HasNoChildren) "." {10}`, "INBOX.old\xff"}; !slices.Equal(list[:len(list)-1], want) {
		t.Errorf("LIST of a stored 8-bit name: %q", list)
	}
	a.cmd("11", "RENAME "+lit("INBOX.old\xff")+" INBOX.old", "OK")
	a.cmd("12", "DELETE INBOX.old", "OK")

	var got []string
	for n := range reg.entries {
		got = append(got, n)
	}
	slices.Sort(got)
	if want := []string{"user.alice", "user.alice.caf&AOk-", "user.alice.ok"}; !slices.Equal(got, want) {
		t.Errorf("registered %q, want %q", got, want)
	}
}

// TestLsubParents: '%' stopping above a subscribed name lists the parent
// it stops at as \Noselect (RFC 3501 6.3.9), as imaptest's "subscribe"
// group checks.
func TestLsubParents(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) { c.AllowAllSubscribe = true })
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	for _, n := range []string{"t", "t.a", "t.b", "t.b.x", "t.c.y", "t.d.z"} {
		a.cmd("c", "CREATE INBOX."+n, "OK")
	}
	for _, n := range []string{"t.a", "t.b.x", "t.c.y", "t.d", "t.d.z"} {
		a.cmd("s", "SUBSCRIBE INBOX."+n, "OK")
	}
	got := a.cmd("2", `LSUB "" INBOX.t.%`, "OK")
	want := []string{`* LSUB () "." INBOX.t.a`, `* LSUB (\Noselect) "." INBOX.t.b`, `* LSUB (\Noselect) "." INBOX.t.c`,
		`* LSUB (\Noselect) "." INBOX.t.d`}
	slices.Sort(got[:len(got)-1])
	if !slices.Equal(got[:len(got)-1], want) {
		t.Errorf("LSUB %%: %q\nwant %q", got, want)
	}
	// INBOX.t.d is subscribed, but no mailbox: \Noselect as before, once.
	if got := a.cmd("3", `LSUB "" INBOX.%`, "OK"); !slices.Equal(got[:len(got)-1], []string{`* LSUB (\Noselect) "." INBOX.t`}) {
		t.Errorf("LSUB INBOX.%%: %q", got)
	}
	if got := a.cmd("4", `LSUB "" *.x`, "OK"); !slices.Equal(got[:len(got)-1], []string{`* LSUB () "." INBOX.t.b.x`}) {
		t.Errorf("LSUB *.x: %q", got)
	}
}

// TestMoveIntoSelected: MOVE and COPY into the selected mailbox itself
// give the messages new UIDs there (RFC 6851), as Cyrus and Dovecot do.
func TestMoveIntoSelected(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "APPEND INBOX {3+}\r\nab\n", "OK")
	a.cmd("3", "APPEND INBOX {3+}\r\ncd\n", "OK")
	sel := a.cmd("4", "SELECT INBOX", "OK")
	var uidv string
	for _, l := range sel {
		if v, ok := strings.CutPrefix(l, "* OK [UIDVALIDITY "); ok {
			uidv, _, _ = strings.Cut(v, "]")
		}
	}
	got := a.cmd("5", "MOVE 1 INBOX", "OK")
	want := []string{"* OK [COPYUID " + uidv + " 1 3] Moved", "* 1 EXPUNGE", "* 2 EXISTS", "* 2 RECENT"}
	if !slices.Equal(got[:len(got)-1], want) {
		t.Errorf("MOVE into itself: %q\nwant %q", got, want)
	}
	if got := a.cmd("6", "UID COPY 2 INBOX", "OK [COPYUID "+uidv+" 2 4]"); !slices.Equal(got[:len(got)-1], []string{"* 3 EXISTS", "* 3 RECENT"}) {
		t.Errorf("COPY into itself: %q", got)
	}
	got = a.cmd("7", "UID FETCH 1:* (UID RFC822.SIZE)", "OK")
	want = []string{"* 1 FETCH (UID 2 RFC822.SIZE 3)", "* 2 FETCH (UID 3 RFC822.SIZE 3)", "* 3 FETCH (UID 4 RFC822.SIZE 3)"}
	if !slices.Equal(got[:len(got)-1], want) {
		t.Errorf("after: %q\nwant %q", got, want)
	}
}

// TestSubscribeElsewhere: in a murder (a registry) a backend takes a
// subscription to any valid name, as the mailbox may live on another
// backend; alone it still wants the mailbox to exist.
func TestSubscribeElsewhere(t *testing.T) {
	reg := &fakeRegistry{entries: map[string]string{}}
	e := startEnv(t, t.TempDir(), func(c *Config) { c.Registry = reg })
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "SUBSCRIBE shared.elsewhere", "OK")
	if got := a.cmd("3", `LSUB "" shared.*`, "OK"); !slices.Equal(got[:len(got)-1], []string{`* LSUB (\Noselect) "." shared.elsewhere`}) {
		t.Errorf("LSUB: %q", got)
	}
	a.cmd("4", "SUBSCRIBE {10+}\r\nshared.&Jj", "NO Invalid mailbox name")

	alone := startEnv(t, t.TempDir(), nil)
	alone.makeUsers("alice")
	b := alone.raw()
	b.cmd("1", "LOGIN alice alicepw", "OK")
	b.cmd("2", "SUBSCRIBE shared.elsewhere", "NO Mailbox does not exist")
}
