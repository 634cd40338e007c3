package imapproxy_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// sortMessages are five messages of two threads whose sent dates, given
// in several zones, order them otherwise than their arrival.
var sortMessages = [][]string{
	{"Message-ID: <s1@x>", "Subject: sorting", "Date: Sun, 01 Jan 2006 10:00:00 +0000", "From: Carol <carol@example.com>"},
	{"Message-ID: <s2@x>", "References: <s1@x>", "Subject: Re: sorting", "Date: Sun, 01 Jan 2006 09:00:00 -0300", "From: alice@example.com"},
	{"Message-ID: <s3@x>", "Subject: another", "Date: Sun, 01 Jan 2006 11:00:00 +0000", "From: Zoe <bob@example.com>"},
	{"Message-ID: <s4@x>", "In-Reply-To: <s1@x>", "Subject: Re: sorting", "Date: Sun, 01 Jan 2006 12:30:00 +0100", "From: dave@example.com"},
	{"Message-ID: <s5@x>", "References: <s1@x> <s2@x>", "Subject: Re: sorting", "Date: Sun, 01 Jan 2006 13:00:00 +0000", "From: eve@example.com"},
}

// checkSortThread fills box through the frontend c and runs SORT, THREAD
// and ESEARCH on it there; the answers are the ones RFC 5256, RFC 5957,
// RFC 4731, RFC 5267 and RFC 5032 give, whatever the backend.
func checkSortThread(t *testing.T, c *client, box string) {
	t.Helper()
	for _, h := range sortMessages {
		msg := strings.Join(h, "\r\n") + "\r\n\r\nbody\r\n"
		c.ok("APPEND %s {%d+}\r\n%s", box, len(msg), msg)
	}
	c.ok("SELECT %s", box)
	for _, tc := range []struct{ cmd, want string }{
		{"SORT (DATE) UTF-8 ALL", "* SORT 1 3 4 2 5"},
		{"SORT (REVERSE DATE) UTF-8 ALL", "* SORT 5 2 4 3 1"},
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 3 1 2 4 5"},
		{"SORT (FROM) US-ASCII ALL", "* SORT 2 3 1 4 5"},
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 1 4 5 3"},
		{"UID SORT (SUBJECT REVERSE DATE) UTF-8 NOT 1", "* SORT 3 5 2 4"},
		// A search string as a literal streams through the proxy.
		{"SORT (DATE) UTF-8 SUBJECT {7+}\r\nsorting", "* SORT 1 4 2 5"},
		{"THREAD REFERENCES UTF-8 ALL", "* THREAD (1 (4)(2 5))(3)"},
		{"UID THREAD REFERENCES UTF-8 ALL", "* THREAD (1 (4)(2 5))(3)"},
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (1 (4)(2)(5))(3)"},
	} {
		u := c.ok("%s", tc.cmd)
		if len(u) != 1 || u[0] != tc.want {
			t.Errorf("%s through the frontend:\n got %q\nwant %q", tc.cmd, u, tc.want)
		}
	}
	for _, tc := range []struct{ cmd, want string }{
		{"SEARCH RETURN (MIN MAX COUNT) SUBJECT sorting", "MIN 1 MAX 5 COUNT 4"},
		{"UID SEARCH RETURN () SUBJECT sorting", "UID ALL 1:2,4:5"},
		{"SEARCH RETURN (COUNT) YOUNGER 86400", "COUNT 5"},
		{"SEARCH RETURN (COUNT) OLDER 86400", "COUNT 0"},
		{"SORT RETURN (COUNT) (DATE) UTF-8 FROM example", "COUNT 5"},
	} {
		u := c.ok("%s", tc.cmd)
		want := fmt.Sprintf(`* ESEARCH (TAG "t%d") %s`, c.n, tc.want)
		if len(u) != 1 || esearchItems(u[0]) != esearchItems(want) {
			t.Errorf("%s through the frontend:\n got %q\nwant %q", tc.cmd, u, want)
		}
	}
	// ESORT's ALL is in sort order; backends may write ranges or not.
	u := c.ok("SORT RETURN (ALL) (REVERSE DATE) UTF-8 ALL")
	if len(u) != 1 || expandSet(t, u[0][strings.LastIndex(u[0], " ")+1:]) != "5 2 4 3 1" {
		t.Errorf("SORT RETURN (ALL) (REVERSE DATE) through the frontend: %q", u)
	}
	for _, bad := range []string{"SORT (NOSUCHKEY) UTF-8 ALL", "THREAD NOSUCHALGORITHM UTF-8 ALL"} {
		if _, tagged := c.cmd("%s", bad); !strings.HasPrefix(tagged, "BAD") && !strings.HasPrefix(tagged, "NO") {
			t.Errorf("%s through the frontend: %s", bad, tagged)
		}
	}
}

// esearchItems puts an ESEARCH response's result items in one order:
// servers may send them in any (Cyrus: COUNT first).
func esearchItems(line string) string {
	f := strings.Fields(line)
	head := 4 // "*", "ESEARCH", "(TAG", `"tN")`
	if len(f) > head && f[head] == "UID" {
		head++
	}
	var items []string
	for i := head; i+1 < len(f); i += 2 {
		items = append(items, f[i]+" "+f[i+1])
	}
	slices.Sort(items)
	return strings.Join(f[:min(head, len(f))], " ") + " " + strings.Join(items, " ")
}

// expandSet writes a sequence set's numbers in its order, space-separated.
func expandSet(t *testing.T, set string) string {
	t.Helper()
	var out []string
	for _, r := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(r, ":")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil {
			t.Fatalf("bad sequence set %q", set)
		}
		for i := a; ; i += map[bool]int{true: 1, false: -1}[b >= a] {
			out = append(out, strconv.Itoa(i))
			if i == b {
				break
			}
		}
	}
	return strings.Join(out, " ")
}

// TestRookerySortThread: SORT, THREAD and ESEARCH through the frontend
// reach the selected mailbox's Rookery backend unchanged, on either
// backend, and the frontend announces what both kinds of backend have.
func TestRookerySortThread(t *testing.T) {
	m, _, _ := startRookeryMurder(t)
	_, addr := m.frontend(t)
	alice := login(t, addr, "alice", "alicepw")
	caps := " " + alice.ok("CAPABILITY")[0] + " "
	for _, c := range []string{"SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "ESEARCH", "ESORT", "WITHIN"} {
		if !strings.Contains(caps, " "+c+" ") {
			t.Errorf("frontend does not announce %s: %s", c, caps)
		}
	}
	// Cyrus 3.6 backends lack SEARCHRES.
	if strings.Contains(caps, " SEARCHRES ") {
		t.Errorf("frontend announces SEARCHRES: %s", caps)
	}
	alice.ok("CREATE INBOX.sorting")
	m.waitEntry(t, "user.alice.sorting", "rb1")
	checkSortThread(t, alice, "INBOX.sorting")
	// shared is on rb2.
	checkSortThread(t, login(t, addr, "bob", "bobpw"), "shared")

	// "$" passes through too, where the backend has SEARCHRES: kept by
	// the selected mailbox's backend, used there by FETCH, and by a COPY
	// to another backend, which the frontend does with a FETCH of "$".
	alice.ok("SELECT INBOX.sorting")
	if u := alice.ok("SEARCH RETURN (SAVE) SUBJECT another"); len(u) != 0 {
		t.Errorf("SEARCH RETURN (SAVE) answered %q", u)
	}
	if u := alice.ok("FETCH $ (UID)"); len(u) != 1 || u[0] != "* 3 FETCH (UID 3)" {
		t.Errorf("FETCH $: %q", u)
	}
	if _, tagged := alice.cmd("COPY $ shared"); !strings.HasPrefix(tagged, "OK [COPYUID ") || !strings.HasSuffix(strings.Fields(tagged)[3], "3") {
		t.Errorf("COPY $ to the other backend: %s", tagged)
	}
	alice.ok("SELECT shared")
	if u := alice.ok("SEARCH SUBJECT another"); len(u) != 1 || u[0] != "* SEARCH 3 6" {
		t.Errorf("shared after COPY $: %q", u)
	}
}

// TestCyrusSortThread: the same through the frontend to a real Cyrus 3.6
// backend.
func TestCyrusSortThread(t *testing.T) {
	m := startMurder(t)
	_, addr := m.frontend(t)
	alice := login(t, addr, "alice", "alicepw")
	alice.ok("CREATE INBOX.sorting")
	m.waitEntry(t, "user.alice.sorting", m.be1.ServerName)
	checkSortThread(t, alice, "INBOX.sorting")
}
