package imap

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// allocatedBy returns how many bytes the process allocated while f ran
// (the server runs in this process).
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestNestingLimit sends commands nested far past maxNesting, each under
// the line limit: they get BAD with a reason, the session goes on, and
// the memory they take stays in proportion to their length.
func TestNestingLimit(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("a1", "LOGIN alice alicepw", "OK")
	a.send("a2 APPEND INBOX {" + strconv.Itoa(len(testMessage("x", "y"))) + "+}\r\n" + testMessage("x", "y") + "\r\n")
	a.until("a2 OK")
	a.cmd("a3", "SELECT INBOX", "OK")

	const n = 32700 // 64 KiB of parentheses, under the 64 KiB line limit
	for _, c := range []struct{ tag, cmd string }{
		{"s1", "SEARCH " + strings.Repeat("(", n) + "ALL" + strings.Repeat(")", n)},
		{"s2", "SEARCH " + strings.Repeat("NOT ", n/2) + "ALL"},
		{"s3", "SEARCH " + strings.Repeat("OR ALL ", n/4) + "ALL"},
		{"s4", "UID SEARCH " + strings.Repeat("(", n) + "ALL"},
		{"f1", "FETCH 1 " + strings.Repeat("(", n) + "FLAGS" + strings.Repeat(")", n)},
		{"f2", "STORE 1 FLAGS " + strings.Repeat("(", n) + `\Seen` + strings.Repeat(")", n)},
	} {
		var lines []string
		alloc := allocatedBy(func() { lines = a.cmd(c.tag, c.cmd, "BAD") })
		last := lines[len(lines)-1]
		t.Logf("%s: %s, %d KiB allocated", c.tag, last, alloc>>10)
		if len(last) > 200 {
			t.Errorf("%s: a %d-byte reply to a bad command", c.tag, len(last))
		}
		if c.tag[0] == 's' && !strings.Contains(lines[len(lines)-1], "nested") {
			t.Errorf("%s: no reason: %q", c.tag, lines)
		}
		// Generous: the line is 64 KiB; without the limit a nested
		// SEARCH took hundreds of MiB.
		if alloc > 16<<20 {
			t.Errorf("%s: %d MiB allocated for a 64 KiB command", c.tag, alloc>>20)
		}
	}
	// Nesting up to the limit still works.
	a.cmd("s5", "SEARCH "+strings.Repeat("(", maxNesting-1)+"ALL"+strings.Repeat(")", maxNesting-1), "OK")
	a.cmd("s6", "SEARCH "+strings.Repeat("NOT ", maxNesting-2)+"ALL", "OK")
	a.cmd("z", "NOOP", "OK")
}
