package imapproxy_test

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/rookery/rookery/internal/cyrustest"
)

// TestBinaryThroughFrontend: BINARY through the frontend, to a mailbox
// on a real Cyrus 3.6 backend (alice's INBOX) and to one on a Rookery
// backend: APPEND with a literal8 holding NUL, then FETCH BINARY[part]
// (the encoding undone, a literal8 where the data holds NUL),
// BINARY.SIZE and a partial range; then Python's imaplib, which knows
// nothing of BINARY, reads a decoded attachment the same way. The
// frontend announces BINARY.
func TestBinaryThroughFrontend(t *testing.T) {
	m := startMixedMurder(t)
	_, addr := m.frontend(t)
	c := login(t, addr, "alice", "alicepw")
	if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " BINARY") {
		t.Errorf("frontend does not announce BINARY: %s", caps[0])
	}
	msg := "Subject: bin\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC/2hpAA==\r\n" +
		"--b--\r\n"
	for _, box := range []string{"INBOX", "rook"} {
		t.Run(box, func(t *testing.T) {
			c.ok("APPEND %s ~{%d+}\r\n%s", box, len(msg), msg)
			c.ok("SELECT %s", box)
			for item, want := range map[string]string{
				"BINARY.SIZE[2]":       "BINARY.SIZE[2] 7)",
				"BINARY.PEEK[2]":       "BINARY[2] ~{7}\r\n\x00\x01\x02\xffhi\x00)",
				"BINARY.PEEK[1]":       "BINARY[1] {5}\r\nhello)",
				"BINARY.PEEK[2]<3.2>":  "BINARY[2]<3> {2}\r\n\xffh)",
				"BINARY.PEEK[2]<4.10>": "BINARY[2]<4> ~{3}\r\nhi\x00)",
			} {
				if u := c.ok("FETCH * (%s)", item); len(u) != 1 || !strings.HasSuffix(u[0], want) {
					t.Errorf("FETCH %s:\n got %q\nwant suffix %q", item, u, want)
				}
			}
			u := c.ok("FETCH * (BINARY.PEEK[])")
			if len(u) != 1 || !strings.HasSuffix(u[0], fmt.Sprintf("(BINARY[] {%d}\r\n%s)", len(msg), msg)) {
				t.Errorf("FETCH BINARY[]: %q", u)
			}
		})
	}
	python := cyrustest.RequireTool(t, "python3", "python3")
	out, err := exec.Command(python, "testdata/binary.py", addr, "INBOX", "rook").CombinedOutput()
	if err != nil {
		t.Fatalf("binary.py: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
