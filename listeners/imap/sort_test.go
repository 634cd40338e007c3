package imap

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// appendMsg appends a message with the given header lines (joined by
// CRLF) and internal date to box.
func (r *raw) appendMsg(box, date string, header ...string) {
	r.t.Helper()
	msg := strings.Join(header, "\r\n") + "\r\n\r\nbody\r\n"
	r.cmd("A", fmt.Sprintf("APPEND %s \"%s\" {%d+}\r\n%s", box, date, len(msg), msg), "OK")
}

// untaggedLine returns the line of lines that starts with prefix, failing
// the test when there is none.
func untaggedLine(t *testing.T, lines []string, prefix string) string {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	t.Fatalf("no %q in %q", prefix, lines)
	return ""
}

// sortBox fills INBOX with five messages (UIDs 2 to 6, UID 1 expunged)
// whose sent dates, base subjects and addresses order them differently.
func sortBox(t *testing.T) *raw {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.appendMsg("INBOX", "01-Jan-2006 00:00:00 +0000", "Subject: gone")
	// 1: sent 3 Jan 10:00 UTC.
	a.appendMsg("INBOX", "05-Jan-2006 00:00:00 +0000", "Subject: Re: beta",
		"Date: Tue, 03 Jan 2006 10:00:00 +0000", "From: Zed <zed@example.com>")
	// 2: sent 3 Jan 07:00 UTC, earlier than 1 once its zone is applied.
	a.appendMsg("INBOX", "04-Jan-2006 00:00:00 +0000", "Subject: alpha",
		"Date: Tue, 03 Jan 2006 12:00:00 +0500", "From: Adam <adam@example.com>")
	// 3: no Date, so its internal date (2 Jan 12:00 UTC) is its sent date.
	a.appendMsg("INBOX", "02-Jan-2006 12:00:00 +0000", "Subject: [list] Fwd: Alpha (fwd)",
		"From: mike@example.com")
	// 4: sent 2 Jan 16:00 UTC; an encoded subject that sorts after ASCII.
	a.appendMsg("INBOX", "06-Jan-2006 00:00:00 +0000", "Subject: =?utf-8?q?=C3=A9t=C3=A9?=",
		"Date: Mon, 02 Jan 2006 09:00:00 -0700", "From: bob@example.com")
	// 5: sent at the very instant 1 was.
	a.appendMsg("INBOX", "07-Jan-2006 00:00:00 +0000", "Subject: beta",
		"Date: Tue, 03 Jan 2006 10:00:00 +0000", "From: =?utf-8?q?Zo=C3=AB?= <aaa@example.com>")
	a.cmd("2", "SELECT INBOX", "OK")
	a.cmd("3", "STORE 1 +FLAGS.SILENT (\\Deleted)", "OK")
	a.cmd("4", "EXPUNGE", "OK")
	return a
}

// TestSort checks each RFC 5256 and RFC 5957 sort key and the
// tie-break by sequence number, which REVERSE does not reverse.
func TestSort(t *testing.T) {
	a := sortBox(t)
	for _, tc := range []struct{ cmd, want string }{
		{"SORT (DATE) UTF-8 ALL", "* SORT 3 4 2 1 5"},
		{"SORT (REVERSE DATE) UTF-8 ALL", "* SORT 1 5 2 4 3"},
		{"SORT (ARRIVAL) US-ASCII ALL", "* SORT 3 2 1 4 5"},
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 2 3 1 5 4"},
		{"SORT (SUBJECT DATE) UTF-8 ALL", "* SORT 3 2 1 5 4"},
		{"SORT (SUBJECT REVERSE ARRIVAL) UTF-8 ALL", "* SORT 2 3 5 1 4"},
		{"SORT (FROM) UTF-8 ALL", "* SORT 5 2 4 3 1"},
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 4 3 1 5"},
		{"SORT (DATE) UTF-8 SUBJECT beta", "* SORT 1 5"},
		{"SORT (DATE) UTF-8 SUBJECT nothing", "* SORT"},
		{"UID SORT (DATE) UTF-8 ALL", "* SORT 4 5 3 2 6"},
		{"UID SORT (REVERSE SUBJECT) UTF-8 UID 2:4", "* SORT 2 3 4"},
	} {
		got := a.cmd("5", tc.cmd, "OK")
		if line := untaggedLine(t, got, "* SORT"); line != tc.want {
			t.Errorf("%s: got %q, want %q", tc.cmd, line, tc.want)
		}
	}
	a.cmd("6", "SORT (DATE) KOI8-R ALL", "NO [BADCHARSET")
	for _, bad := range []string{"SORT (SENT) UTF-8 ALL", "SORT () UTF-8 ALL", "SORT DATE UTF-8 ALL",
		"SORT (DATE) UTF-8", "SORT (REVERSE) UTF-8 ALL", "SORT (DATE) UTF-8 FOO"} {
		a.cmd("7", bad, "BAD")
	}
}

// TestSortNeedsSelection: SORT and THREAD are for the selected state.
func TestSortNeedsSelection(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "SORT (DATE) UTF-8 ALL", "BAD")
	a.cmd("3", "THREAD REFERENCES UTF-8 ALL", "BAD")
	caps := a.cmd("4", "CAPABILITY", "OK")
	for _, c := range []string{" SORT ", " SORT=DISPLAY ", " THREAD=ORDEREDSUBJECT ", " THREAD=REFERENCES ", " ESEARCH ", " ESORT ", " SEARCHRES ", " WITHIN", " CONTEXT=SEARCH ", " CONTEXT=SORT "} {
		if !strings.Contains(caps[0]+" ", c) {
			t.Errorf("capabilities lack %q: %s", strings.TrimSpace(c), caps[0])
		}
	}
}

// threadBox fills INBOX with messages that exercise every step of RFC
// 5256's REFERENCES algorithm.
func threadBox(t *testing.T) *raw {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	const in = "01-Feb-2006 00:00:00 +0000"
	date := func(day, hour int) string {
		return fmt.Sprintf("Date: %02d Jan 2006 %02d:00:00 +0000", day, hour)
	}
	for _, m := range [][]string{
		/* 1 */ {"Message-ID: <a@x>", "Subject: topic", date(1, 10)},
		/* 2 */ {"Message-ID: <b@x>", "References: <a@x>", "Subject: Re: topic", date(1, 11)},
		/* 3 */ {"Message-ID: <c@x>", "References: <a@x> <b@x>", "Subject: Re: topic", date(1, 12)},
		/* 4 */ {"Message-ID: <d@x>", "In-Reply-To: <a@x>", "Subject: Re: topic", date(1, 9)},
		/* 5 */ {"Message-ID: <e@x>", "Subject: other", date(2, 10)},
		// 6 replies to a message not here: the dummy is pruned, and the
		// subject gathers it under 5.
		/* 6 */ {"Message-ID: <f@x>", "References: <zz@x>", "Subject: Re: other", date(3, 10)},
		// 7 and 8 reply to one absent message: a dummy holds them.
		/* 7 */ {"Message-ID: <g@x>", "References: <x1@x>", "Subject: lone", date(4, 10)},
		/* 8 */ {"Message-ID: <h@x>", "References: <x1@x>", "Subject: lone", date(4, 11)},
		// 10 puts p3 under 9; p3 (11) then names 10 as its parent, a
		// loop: 11 leaves 9 (step 1B) and no link is made.
		/* 9 */ {"Message-ID: <p1@x>", "Subject: loop", date(5, 10)},
		/* 10 */ {"Message-ID: <p2@x>", "References: <p1@x> <p3@x>", "Subject: Re: loop", date(5, 12)},
		/* 11 */ {"Message-ID: <p3@x>", "References: <p2@x>", "Subject: different", date(5, 11)},
		// 12 repeats 1's Message-ID: it is a message of its own.
		/* 12 */ {"Message-ID: <a@x>", "Subject: dup", date(6, 10)},
		// 13: no Message-ID, an empty subject, a Date that does not
		// parse: the internal date is its sent date.
		/* 13 */ {"Subject: ", "Date: garbage"},
	} {
		d := in
		if len(m) == 2 {
			d = "01-Jan-2005 00:00:00 +0000"
		}
		a.appendMsg("INBOX", d, m...)
	}
	a.cmd("2", "SELECT INBOX", "OK")
	return a
}

func TestThread(t *testing.T) {
	a := threadBox(t)
	for _, tc := range []struct{ cmd, want string }{
		{"THREAD REFERENCES UTF-8 ALL", "* THREAD (13)(1 (4)(2 3))(5 6)((7)(8))(9)(11 10)(12)"},
		// Without 2, 3's reference to it leaves a dummy that is pruned.
		{"THREAD REFERENCES UTF-8 NOT 2", "* THREAD (13)(1 (4)(3))(5 6)((7)(8))(9)(11 10)(12)"},
		{"UID THREAD REFERENCES US-ASCII SUBJECT topic", "* THREAD (1 (4)(2 3))"},
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (13)(4 (1)(2)(3))(5 6)(7 8)(9 10)(11)(12)"},
		{"THREAD ORDEREDSUBJECT UTF-8 SUBJECT nothing", "* THREAD"},
	} {
		got := a.cmd("3", tc.cmd, "OK")
		if line := untaggedLine(t, got, "* THREAD"); line != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.cmd, line, tc.want)
		}
	}
	a.cmd("4", "THREAD REFS UTF-8 ALL", "BAD")
	a.cmd("5", "THREAD REFERENCES KOI8-R ALL", "NO [BADCHARSET")
	a.cmd("6", "THREAD REFERENCES UTF-8", "BAD")
}

// TestESearch checks RETURN on SEARCH (RFC 4731) and SORT (RFC 5267
// ESORT): MIN and MAX of a SORT are its first and last in sort order,
// ALL keeps the sort order.
func TestESearch(t *testing.T) {
	a := sortBox(t)
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (MIN MAX COUNT) SUBJECT beta", `* ESEARCH (TAG "5") MIN 1 MAX 5 COUNT 2`},
		{"SEARCH RETURN () ALL", `* ESEARCH (TAG "5") ALL 1:5`},
		{"UID SEARCH RETURN (ALL) NOT 3", `* ESEARCH (TAG "5") UID ALL 2:3,5:6`},
		{"UID SEARCH RETURN (COUNT) SUBJECT nothing", `* ESEARCH (TAG "5") UID COUNT 0`},
		{"SEARCH RETURN (MIN MAX) SUBJECT nothing", `* ESEARCH (TAG "5")`},
		{"SEARCH RETURN (COUNT) CHARSET UTF-8 SUBJECT beta", `* ESEARCH (TAG "5") COUNT 2`},
		{"SORT RETURN (MIN MAX ALL COUNT) (DATE) UTF-8 ALL", `* ESEARCH (TAG "5") MIN 3 MAX 5 ALL 3:4,2,1,5 COUNT 5`},
		{"UID SORT RETURN (ALL) (REVERSE DATE) UTF-8 ALL", `* ESEARCH (TAG "5") UID ALL 2,6,3,5,4`},
		{"SORT RETURN () (SUBJECT) UTF-8 ALL", `* ESEARCH (TAG "5") ALL 2:3,1,5,4`},
		{"SORT RETURN (PARTIAL 2:3) (DATE) UTF-8 ALL", `* ESEARCH (TAG "5") PARTIAL (2:3 4,2)`},
		{"SEARCH RETURN (PARTIAL 4:9) ALL", `* ESEARCH (TAG "5") PARTIAL (4:9 4:5)`},
		{"SEARCH RETURN (PARTIAL 6:9) ALL", `* ESEARCH (TAG "5") PARTIAL (6:9 NIL)`},
	} {
		got := a.cmd("5", tc.cmd, "OK")
		if line := untaggedLine(t, got, "* ESEARCH"); line != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.cmd, line, tc.want)
		}
	}
	for _, bad := range []string{"SEARCH RETURN (FOO) ALL", "SEARCH RETURN (PARTIAL 1:2 ALL) ALL",
		"SEARCH RETURN (PARTIAL 0:2) ALL", "SEARCH RETURN MIN ALL", "SORT RETURN (MIN) UTF-8 ALL"} {
		a.cmd("6", bad, "BAD")
	}
}

// TestSearchRes: SAVE keeps a result as "$" (RFC 5182) for later
// commands, as UIDs; expunged messages drop out of it; a failed SAVE
// empties it.
func TestSearchRes(t *testing.T) {
	a := sortBox(t)
	got := a.cmd("1", "SEARCH RETURN (SAVE) SUBJECT beta", "OK")
	if len(got) != 1 {
		t.Errorf("SAVE alone answers nothing untagged: %q", got)
	}
	fetchUIDs := func(cmd string) string {
		var uids []string
		for _, l := range a.cmd("2", cmd, "OK") {
			if i := strings.Index(l, "UID "); strings.HasPrefix(l, "* ") && i > 0 {
				uids = append(uids, strings.TrimSuffix(l[i+4:], ")"))
			}
		}
		return strings.Join(uids, " ")
	}
	if got := fetchUIDs("FETCH $ (UID)"); got != "2 6" {
		t.Errorf("FETCH $ after SEARCH SAVE SUBJECT beta: UIDs %q, want 2 6", got)
	}
	// A SORT's MIN and MAX alone are what it saves.
	a.cmd("3", "SORT RETURN (SAVE MIN MAX) (DATE) UTF-8 ALL", "OK")
	if got := fetchUIDs("UID FETCH $ (UID)"); got != "4 6" {
		t.Errorf("after SORT RETURN (SAVE MIN MAX): $ is %q, want 4 6", got)
	}
	got = a.cmd("4", "UID SEARCH RETURN (ALL) $", "OK")
	if line := untaggedLine(t, got, "* ESEARCH"); line != `* ESEARCH (TAG "4") UID ALL 4,6` {
		t.Errorf("UID SEARCH $: %q", line)
	}
	got = a.cmd("4", "SEARCH UID $ SUBJECT beta", "OK")
	if line := untaggedLine(t, got, "* SEARCH"); line != "* SEARCH 5" {
		t.Errorf("SEARCH UID $ SUBJECT beta: %q", line)
	}
	a.cmd("5", "STORE $ +FLAGS.SILENT (\\Deleted)", "OK")
	a.cmd("6", "UID EXPUNGE 6", "OK")
	if got := fetchUIDs("FETCH $ (UID)"); got != "4" {
		t.Errorf("after expunging UID 6: $ is %q, want 4", got)
	}
	a.cmd("7", "SEARCH RETURN (SAVE) FOO", "BAD")
	got = a.cmd("8", "SEARCH $", "OK")
	if line := untaggedLine(t, got, "* SEARCH"); line != "* SEARCH" {
		t.Errorf("after a failed SAVE, $ is not empty: %q", line)
	}
	// "$" is for the selected mailbox only: a new selection forgets it.
	a.cmd("9", "SEARCH RETURN (SAVE) ALL", "OK")
	a.cmd("10", "SELECT INBOX", "OK")
	got = a.cmd("11", "SEARCH $", "OK")
	if line := untaggedLine(t, got, "* SEARCH"); line != "* SEARCH" {
		t.Errorf("after SELECT, $ is not empty: %q", line)
	}
}

// TestWithin: OLDER and YOUNGER (RFC 5032) compare the internal date with
// the time of the command, to the second; the intervals here are hours
// apart from the messages' ages, so the test's own duration is no matter.
func TestWithin(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	now := time.Now()
	for _, age := range []time.Duration{48 * time.Hour, 2 * time.Hour, 0} {
		a.appendMsg("INBOX", now.Add(-age).Format("02-Jan-2006 15:04:05 -0700"), "Subject: x")
	}
	a.cmd("2", "SELECT INBOX", "OK")
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH YOUNGER 3600", "* SEARCH 3"},
		{"SEARCH OLDER 3600", "* SEARCH 1 2"},
		{"SEARCH OLDER 3600 YOUNGER 86400", "* SEARCH 2"},
		{"SEARCH OR OLDER 86400 YOUNGER 3600", "* SEARCH 1 3"},
		{"SEARCH NOT YOUNGER 86400", "* SEARCH 1"},
		{"SEARCH OLDER 3600 OLDER 86400", "* SEARCH 1"},
		{"SEARCH YOUNGER 86400 YOUNGER 3600", "* SEARCH 3"},
		{"SEARCH OLDER 99999999999999", "* SEARCH"},
	} {
		got := a.cmd("3", tc.cmd, "OK")
		if line := untaggedLine(t, got, "* SEARCH"); line != tc.want {
			t.Errorf("%s: got %q, want %q", tc.cmd, line, tc.want)
		}
	}
	for _, bad := range []string{"SEARCH OLDER 0", "SEARCH YOUNGER", "SEARCH YOUNGER -5", "SEARCH OLDER x"} {
		a.cmd("4", bad, "BAD")
	}
}

// TestSearchPastLastMessage: in SEARCH, sequence numbers past the last
// message name none (imaptest's ESEARCH tests, Dovecot and Cyrus), where
// FETCH still refuses them.
func TestSearchPastLastMessage(t *testing.T) {
	a := sortBox(t)
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH 1000", "* SEARCH"},
		{"SEARCH 4:1000", "* SEARCH 4 5"},
		{"SEARCH 1000:4", "* SEARCH 4 5"},
		{"SEARCH RETURN () 1000", `* ESEARCH (TAG "1")`},
		{"SEARCH RETURN (COUNT) 1000", `* ESEARCH (TAG "1") COUNT 0`},
	} {
		got := a.cmd("1", tc.cmd, "OK")
		if line := untaggedLine(t, got, "* "); line != tc.want {
			t.Errorf("%s: got %q, want %q", tc.cmd, line, tc.want)
		}
	}
	a.cmd("2", "FETCH 1000 (FLAGS)", "BAD")
}

// TestFetchModSeqEnablesCondstore: a FETCH of MODSEQ is a CONDSTORE
// enabling command (RFC 7162 3.1): it is told the HIGHESTMODSEQ once,
// and STORE then reports MODSEQ.
func TestFetchModSeqEnablesCondstore(t *testing.T) {
	a := sortBox(t)
	got := a.cmd("1", "FETCH 1 (MODSEQ)", "OK")
	if !strings.HasPrefix(got[0], "* OK [HIGHESTMODSEQ ") || len(got) != 3 || !strings.Contains(got[1], "MODSEQ (") {
		t.Errorf("first FETCH MODSEQ: %q", got)
	}
	if got := a.cmd("2", "FETCH 2 (MODSEQ)", "OK"); len(got) != 2 {
		t.Errorf("second FETCH MODSEQ: %q", got)
	}
	got = a.cmd("3", "STORE 1 +FLAGS (\\Seen)", "OK")
	if !strings.Contains(got[0], "MODSEQ (") {
		t.Errorf("STORE after FETCH MODSEQ: %q", got)
	}
}

// TestKeyCacheBound: the sort keys kept stay within maxCachedBytes, the
// least recently sorted mailbox going first.
func TestKeyCacheBound(t *testing.T) {
	var c keyCache
	refs := make([]string, 100)
	for i := range refs {
		refs[i] = strings.Repeat("r", 100)
	}
	perBox := 2000
	k := &msgKeys{refs: refs}
	boxes := maxCachedBytes/(perBox*k.size()) + 2
	for box := 1; box <= boxes; box++ {
		added := map[uint32]*msgKeys{}
		for uid := 1; uid <= perBox; uid++ {
			added[uint32(uid)] = k
		}
		c.put(uint64(box), added, func(uint32) bool { return true }, perBox)
		if c.total > maxCachedBytes {
			t.Fatalf("after box %d: %d bytes kept", box, c.total)
		}
	}
	if c.get(1, 1) != nil || c.get(uint64(boxes), 1) != k {
		t.Error("the least recently used mailbox was not the one dropped")
	}
}
