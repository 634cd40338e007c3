package imap

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// bigMessage is a message whose body spans several store chunks, each
// line naming its message, so a body read from the wrong place shows.
func bigMessage(n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: a@example.org\r\nSubject: message %d\r\n\r\n", n)
	for b.Len() < 300<<10 {
		fmt.Fprintf(&b, "message %d line %06d\r\n", n, b.Len())
	}
	return b.String()
}

// literalAfter returns the literal that follows marker in lines (as the raw
// client splits it into lines), joined with CRLF.
func literalAfter(t *testing.T, lines []string, marker string) string {
	t.Helper()
	for i, l := range lines {
		j := strings.Index(l, marker+" {")
		if j < 0 {
			continue
		}
		var n int
		if _, err := fmt.Sscanf(l[j+len(marker)+2:], "%d}", &n); err != nil {
			t.Fatalf("literal size in %q: %v", l, err)
		}
		var b strings.Builder
		for _, rest := range lines[i+1:] {
			if b.Len() >= n {
				break
			}
			b.WriteString(rest + "\r\n")
		}
		return b.String()[:n]
	}
	t.Fatalf("no %s literal in %q", marker, lines)
	return ""
}

// TestFetchExpungedElsewhere: a session that has not been told of an
// expunge made by another session can still read the message (RFC 2180
// 4.1.3), whether the expunge lands between FETCH's record read and its
// body read or before the command; the EXPUNGE comes only when allowed.
func TestFetchExpungedElsewhere(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	var msgs []string
	for i := 1; i <= 3; i++ {
		msgs = append(msgs, bigMessage(i))
		if _, err := e.store.Deliver(context.Background(), "user.alice", nil, time.Now(), strings.NewReader(msgs[i-1]), 0); err != nil {
			t.Fatal(err)
		}
	}
	mb, _, err := e.store.Mailbox("user.alice")
	if err != nil {
		t.Fatal(err)
	}
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "SELECT INBOX", "OK")

	expunged := false
	e.srv.fetchHook = func() {
		if expunged {
			return
		}
		expunged = true
		if _, err := e.store.Expunge(mb.ID, []uint32{1, 2}); err != nil {
			t.Error(err)
		}
	}
	got := a.cmd("3", "FETCH 1:3 (RFC822.SIZE BODY.PEEK[] BODY.PEEK[TEXT]<0.100> ENVELOPE)", "OK")
	if !expunged {
		t.Fatal("the hook did not run")
	}
	for i := 1; i <= 3; i++ {
		var own []string
		for j, l := range got {
			if strings.HasPrefix(l, fmt.Sprintf("* %d FETCH ", i)) {
				own = got[j:]
				break
			}
		}
		if own == nil {
			t.Fatalf("no FETCH for message %d in %q", i, got[:3])
		}
		if body := literalAfter(t, own, "BODY[]"); body != msgs[i-1] {
			t.Errorf("message %d: BODY[] is %d bytes, want %d (%.60q)", i, len(body), len(msgs[i-1]), body)
		}
	}
	for _, l := range got {
		if strings.HasSuffix(l, " EXPUNGE") {
			t.Fatalf("EXPUNGE during FETCH: %q", l)
		}
	}

	// Expunged before this command, still not told: still readable.
	got = a.cmd("4", "FETCH 2 BODY.PEEK[]", "OK")
	if body := literalAfter(t, got, "BODY[]"); body != msgs[1] {
		t.Errorf("message 2 after its expunge: %d bytes, want %d", len(body), len(msgs[1]))
	}
	got = a.cmd("5", "NOOP", "OK")
	if len(got) != 3 || got[0] != "* 2 EXPUNGE" || got[1] != "* 1 EXPUNGE" {
		t.Fatalf("NOOP after the expunges: %q", got)
	}
	got = a.cmd("6", "FETCH 1 (UID BODY.PEEK[])", "OK")
	if !strings.HasPrefix(got[0], "* 1 FETCH (UID 3 ") || literalAfter(t, got, "BODY[]") != msgs[2] {
		t.Fatalf("message 3 after the EXPUNGEs: %.80q", got[0])
	}
}
