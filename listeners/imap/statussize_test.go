package imap

import (
	"strings"
	"testing"
)

// TestStatusSizeAndAppendLimit: STATUS=SIZE (RFC 8438) and APPENDLIMIT
// (RFC 7889) are announced, SIZE counts the mailbox's bytes, and an
// APPEND over the announced limit is refused with TOOBIG before its
// literal is read.
func TestStatusSizeAndAppendLimit(t *testing.T) {
	e := startEnv(t, t.TempDir(), func(c *Config) { c.MaxMessageSize = 1000 })
	e.makeUsers("alice")
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	caps := " " + strings.Join(a.cmd("2", "CAPABILITY", "OK"), " ") + " "
	for _, c := range []string{" STATUS=SIZE ", " APPENDLIMIT=1000 "} {
		if !strings.Contains(caps, c) {
			t.Errorf("CAPABILITY lacks%s: %s", c, caps)
		}
	}
	a.cmd("3", "APPEND INBOX {10+}\r\nSubject: x", "OK")
	a.cmd("4", "APPEND INBOX {12+}\r\nSubject: xyz", "OK")
	if got := a.cmd("5", "STATUS INBOX (MESSAGES SIZE)", "OK"); got[0] != "* STATUS INBOX (MESSAGES 2 SIZE 22)" {
		t.Errorf("STATUS: %q", got)
	}
	if got := a.cmd("6", "APPEND INBOX {1001}", "NO"); !strings.Contains(got[len(got)-1], "[TOOBIG]") {
		t.Errorf("APPEND over the limit: %q", got)
	}
	a.cmd("7", "NOOP", "OK")
}
