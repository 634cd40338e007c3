package imapproxy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rookery/rookery/internal/cyrustest"
)

// startMixedMurder is startMurder plus a Rookery backend, rb1, holding
// the mailbox "rook" that alice may use: a frontend in front of it routes
// to a real Cyrus 3.6 backend (alice's INBOX on be1) and to Rookery.
func startMixedMurder(t *testing.T) *murder {
	t.Helper()
	m := startMurder(t)
	m.usersPath = filepath.Join(t.TempDir(), "users")
	content := usersFile + cyrustest.ProxyUser + ":{PLAIN}" + cyrustest.ProxyPass + "\n"
	if err := os.WriteFile(m.usersPath, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	rb1 := m.rookeryBackend(t, "rb1", nil)
	admin := login(t, rb1.IMAPAddr(), "admin", "secret")
	admin.ok("CREATE rook")
	admin.ok("SETACL rook alice lrswipted")
	m.waitEntry(t, "rook", "rb1")
	return m
}

// TestQresyncThroughFrontend: QRESYNC resync after reconnect through the
// frontend, to a mailbox on a real Cyrus 3.6 backend and to one on a
// Rookery backend: a client that knew modseq N and six UIDs comes back
// after another client expunged two, flagged one and added one, and
// SELECT (QRESYNC ...) tells it exactly that; UID FETCH (CHANGEDSINCE
// VANISHED) and live VANISHED too. The frontend announces QRESYNC.
func TestQresyncThroughFrontend(t *testing.T) {
	m := startMixedMurder(t)
	_, addr := m.frontend(t)
	caps := login(t, addr, "alice", "alicepw").ok("CAPABILITY")
	if !strings.Contains(caps[0], " QRESYNC") {
		t.Errorf("frontend does not announce QRESYNC: %s", caps[0])
	}
	for _, box := range []string{"INBOX", "rook"} {
		t.Run(box, func(t *testing.T) { resyncScenario(t, addr, box) })
	}
	t.Run("switch", func(t *testing.T) { switchScenario(t, addr) })
}

// switchScenario: a QRESYNC client moving between a mailbox on Cyrus and
// one on Rookery gets [CLOSED] once per switch, before the new mailbox's
// responses, and each backend, including one whose connection the
// frontend opened before ENABLE, takes SELECT (QRESYNC ...).
func switchScenario(t *testing.T, addr string) {
	c := login(t, addr, "alice", "alicepw")
	c.ok("STATUS rook (MESSAGES)") // a connection to rb1 before ENABLE
	if _, tagged := c.cmd("SELECT rook (QRESYNC (1 1))"); !strings.HasPrefix(tagged, "BAD") {
		t.Errorf("SELECT (QRESYNC) before ENABLE QRESYNC: %s", tagged)
	}
	c.ok("ENABLE QRESYNC")
	state := map[string][2]string{}
	for _, box := range []string{"INBOX", "rook"} {
		st := c.ok("STATUS %s (UIDVALIDITY HIGHESTMODSEQ)", box)
		uv := regexp.MustCompile(`UIDVALIDITY (\d+)`).FindStringSubmatch(strings.Join(st, " "))
		hm := regexp.MustCompile(`HIGHESTMODSEQ (\d+)`).FindStringSubmatch(strings.Join(st, " "))
		if uv == nil || hm == nil {
			t.Fatalf("STATUS %s: %q", box, st)
		}
		state[box] = [2]string{uv[1], hm[1]}
	}
	closed := func(got []string) int {
		n := 0
		for i, l := range got {
			if strings.Contains(l, "[CLOSED]") {
				n++
				if i != 0 {
					t.Errorf("[CLOSED] after other responses:\n%s", strings.Join(got, "\n"))
				}
			}
		}
		return n
	}
	for i, box := range []string{"INBOX", "rook", "rook", "INBOX"} {
		got := c.ok("SELECT %s (QRESYNC (%s 1))", box, state[box][0])
		want := 1
		if i == 0 {
			want = 0
		}
		if n := closed(got); n != want {
			t.Errorf("SELECT %s #%d: %d [CLOSED], want %d:\n%s", box, i, n, want, strings.Join(got, "\n"))
		}
		if !has(got, "* VANISHED (EARLIER) ") {
			t.Errorf("SELECT %s (QRESYNC) from modseq 1: no VANISHED (EARLIER):\n%s", box, strings.Join(got, "\n"))
		}
	}
	// A MOVE across backends, which the frontend ends with UID EXPUNGE on
	// the source, is told as VANISHED, from Cyrus and from Rookery.
	for _, mv := range [][2]string{{"INBOX", "rook"}, {"rook", "INBOX"}} {
		c.ok("SELECT %s", mv[0])
		uid := fetchUIDs(t, c)[0]
		got := c.ok("UID MOVE %s %s", uid, mv[1])
		if !slices.Contains(got, "* VANISHED "+uid) || has(got, "EXPUNGE") {
			t.Errorf("UID MOVE %s from %s to %s:\n%s", uid, mv[0], mv[1], strings.Join(got, "\n"))
		}
	}
}

func resyncScenario(t *testing.T, addr, box string) {
	a := login(t, addr, "alice", "alicepw")
	for i := range 6 {
		a.ok("APPEND %s {%d+}\r\n%s", box, len(message(fmt.Sprint("q", i), "x")), message(fmt.Sprint("q", i), "x"))
	}
	a.ok("ENABLE QRESYNC")
	sel := a.ok("SELECT %s", box)
	uv, n := respCode(t, sel, "UIDVALIDITY"), respCode(t, sel, "HIGHESTMODSEQ")
	uids := fetchUIDs(t, a)
	if len(uids) != 6 {
		t.Fatalf("UIDs of %s: %v", box, uids)
	}
	a.ok("LOGOUT")

	b := login(t, addr, "alice", "alicepw")
	b.ok("SELECT %s", box)
	b.ok(`UID STORE %s,%s +FLAGS.SILENT (\Deleted)`, uids[1], uids[2])
	b.ok("EXPUNGE")
	b.ok(`UID STORE %s +FLAGS.SILENT (\Flagged)`, uids[4])
	b.ok("APPEND %s {%d+}\r\n%s", box, len(message("new", "x")), message("new", "x"))

	c := login(t, addr, "alice", "alicepw")
	c.ok("ENABLE QRESYNC")
	known := uids[0] + ":" + uids[5]
	got := c.ok("SELECT %s (QRESYNC (%s %s %s))", box, uv, n, known)
	vanished := uids[1] + ":" + uids[2]
	if !slices.Contains(got, "* VANISHED (EARLIER) "+vanished) {
		t.Errorf("SELECT (QRESYNC) of %s: no VANISHED (EARLIER) %s:\n%s", box, vanished, strings.Join(got, "\n"))
	}
	var fetches []string
	for _, l := range got {
		if strings.Contains(l, " FETCH ") {
			fetches = append(fetches, l)
		}
	}
	if len(fetches) != 1 || !strings.HasPrefix(fetches[0], "* 3 FETCH ") || !strings.Contains(fetches[0], "UID "+uids[4]) ||
		!strings.Contains(fetches[0], `\Flagged`) || !strings.Contains(fetches[0], "MODSEQ (") {
		t.Errorf("SELECT (QRESYNC) of %s: FETCH %q", box, fetches)
	}
	if !slices.Contains(got, "* 5 EXISTS") {
		t.Errorf("SELECT (QRESYNC) of %s: no 5 EXISTS:\n%s", box, strings.Join(got, "\n"))
	}
	got = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %s VANISHED)", n)
	if len(got) != 3 || got[0] != "* VANISHED (EARLIER) "+vanished {
		t.Errorf("UID FETCH (CHANGEDSINCE VANISHED) of %s:\n%s", box, strings.Join(got, "\n"))
	}
	// Another client's expunge reaches this one as VANISHED.
	b.ok(`UID STORE %s +FLAGS.SILENT (\Deleted)`, uids[3])
	b.ok("EXPUNGE")
	if got := c.ok("NOOP"); !slices.Contains(got, "* VANISHED "+uids[3]) {
		t.Errorf("NOOP after another client's EXPUNGE of %s:\n%s", box, strings.Join(got, "\n"))
	}
}

func respCode(t *testing.T, lines []string, name string) string {
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

func fetchUIDs(t *testing.T, c *client) []string {
	t.Helper()
	var uids []string
	re := regexp.MustCompile(`UID (\d+)`)
	for _, l := range c.ok("UID FETCH 1:* (UID)") {
		if m := re.FindStringSubmatch(l); m != nil {
			uids = append(uids, m[1])
		}
	}
	return uids
}

// TestQresyncFakeBackends: the frontend passes SELECT (QRESYNC ...) as the
// client wrote it, to a backend it has sent ENABLE QRESYNC first, and
// keeps a backend that is not the selected one from telling the client
// about its mailbox: no VANISHED, HIGHESTMODSEQ or EXISTS of it reach the
// client, which has another mailbox selected.
func TestQresyncFakeBackends(t *testing.T) {
	handle := func(c *fakeConn, tag, cmd string) bool {
		switch up := strings.ToUpper(cmd); {
		case strings.HasPrefix(up, "ENABLE "):
			c.send("* ENABLED " + cmd[len("ENABLE "):])
			c.send(tag + " OK enabled")
		case strings.HasPrefix(up, "SELECT "):
			c.send("* 3 EXISTS")
			c.send("* OK [UIDVALIDITY 7] x")
			c.send("* OK [HIGHESTMODSEQ 20] x")
			c.send("* VANISHED (EARLIER) 5")
			c.send(tag + " OK [READ-WRITE] selected")
		case strings.HasPrefix(up, "FETCH "):
			c.send(tag + " OK done")
		case strings.HasPrefix(up, "STATUS "):
			// Updates of the mailbox the backend still thinks selected.
			c.send("* VANISHED 3")
			c.send("* OK [HIGHESTMODSEQ 21] x")
			c.send("* 2 EXISTS")
			c.send("* STATUS INBOX (MESSAGES 2)")
			c.send(tag + " OK done")
		default:
			c.send(tag + " BAD unknown")
		}
		return true
	}
	f1, f2 := startFake(t, "LITERAL+ UNSELECT QRESYNC", handle), startFake(t, "LITERAL+ UNSELECT QRESYNC", handle)
	addr := fakeMurder(t, map[string]string{"fake1": f1.ln.Addr().String(), "fake2": f2.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	// Before ENABLE QRESYNC the parameter is refused, and the selected
	// mailbox stays selected.
	c.ok("SELECT INBOX")
	if got, tagged := c.cmd("SELECT other (QRESYNC (7 10))"); !strings.HasPrefix(tagged, "BAD") || has(got, "CLOSED") {
		t.Errorf("SELECT (QRESYNC) before ENABLE QRESYNC: %s\n%s", tagged, strings.Join(got, "\n"))
	}
	if got := c.ok("FETCH 1 (FLAGS)"); len(got) != 0 {
		t.Errorf("FETCH on the mailbox still selected: %q", got)
	}
	if got := c.ok("ENABLE QRESYNC"); !has(got, "* ENABLED ") || !has(got, "QRESYNC") {
		t.Errorf("ENABLE QRESYNC: %q", got)
	}
	c.ok("SELECT INBOX (QRESYNC (7 10 1:3))")
	got := c.ok("SELECT other (QRESYNC (7 10 1:5 (1,3 1,5)))")
	if len(got) == 0 || got[0] != "* OK [CLOSED] Previous mailbox closed" || !has(got, "* VANISHED (EARLIER) 5") {
		t.Errorf("SELECT on another backend:\n%s", strings.Join(got, "\n"))
	}
	got = c.ok("STATUS INBOX (MESSAGES)")
	if !slices.Equal(got, []string{"* STATUS INBOX (MESSAGES 2)"}) {
		t.Errorf("STATUS on the backend not selected: updates of its mailbox leaked:\n%s", strings.Join(got, "\n"))
	}
	for _, f := range []*fakeBackend{f1, f2} {
		lines := f.received()
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ENABLE ") })
		j := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "SELECT ") && strings.Contains(l, "QRESYNC") })
		if i < 0 || j < i || !strings.Contains(lines[i], "QRESYNC") {
			t.Errorf("backend did not get ENABLE QRESYNC before SELECT: %q", lines)
		}
	}
	sel := func(f *fakeBackend) string {
		var last string
		for _, l := range f.received() {
			if strings.HasPrefix(l, "SELECT ") {
				last = l
			}
		}
		return last
	}
	if got := sel(f1); !strings.HasSuffix(got, " (QRESYNC (7 10 1:3))") {
		t.Errorf("fake1 got %q", got)
	}
	if got := sel(f2); !strings.HasSuffix(got, " (QRESYNC (7 10 1:5 (1,3 1,5)))") {
		t.Errorf("fake2 got %q", got)
	}
}
