package imap

import (
	"fmt"
	"strings"
	"testing"
)

// binaryMessage has a base64 part that decodes to bytes with NUL, a
// quoted-printable part, a part in an encoding nobody knows and a
// message/rfc822 part.
const binaryMessage = "From: alice@example.com\r\nSubject: parts\r\nMIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
	"AAEC/2hp\r\n AA==\r\n" + // 00 01 02 ff 'h' 'i' 00, with a stray space
	"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: Quoted-Printable\r\n\r\n" +
	"caf=C3=A9 =\r\nsoft\r\n" +
	"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n" +
	"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n" +
	"--b--\r\n"

// TestBinaryFetch: BINARY[part] undoes the part's encoding, in a literal8
// only when the content holds NUL (RFC 3516 4.3); BINARY.SIZE is the
// decoded size; partial ranges count decoded bytes; an unknown encoding
// is NO [UNKNOWN-CTE]; a missing part is NIL; BINARY sets \Seen,
// BINARY.PEEK does not.
func TestBinaryFetch(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	c := e.raw()
	c.cmd("1", "LOGIN alice alicepw", "OK")
	if caps := strings.Join(c.cmd("2", "CAPABILITY", "OK"), "\n"); !strings.Contains(caps, " BINARY") {
		t.Fatalf("BINARY not announced: %q", caps)
	}
	c.cmd("3", fmt.Sprintf("APPEND INBOX {%d+}\r\n%s", len(binaryMessage), binaryMessage), "OK")
	c.cmd("4", "SELECT INBOX", "OK")

	steps := []struct{ cmd, want string }{
		{"FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2])", "* 1 FETCH (BINARY.SIZE[1] 7 BINARY.SIZE[2] 10)"},
		{"FETCH 1 (BINARY.PEEK[1])", "* 1 FETCH (BINARY[1] ~{7}\r\n\x00\x01\x02\xffhi\x00)"},
		{"FETCH 1 (BINARY.PEEK[2])", "* 1 FETCH (BINARY[2] {10}\r\ncafé soft)"},
		{"FETCH 1 (BINARY.PEEK[1]<3.2>)", "* 1 FETCH (BINARY[1]<3> {2}\r\n\xffh)"},
		{"FETCH 1 (BINARY.PEEK[1]<6.100>)", "* 1 FETCH (BINARY[1]<6> ~{1}\r\n\x00)"},
		{"FETCH 1 (BINARY.PEEK[4])", "* 1 FETCH (BINARY[4] {28}\r\nSubject: inner\r\n\r\ninner body)"},
		{"FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9])", "* 1 FETCH (BINARY[9] NIL BINARY.SIZE[9] NIL)"},
		{"FETCH 1 (FLAGS)", "* 1 FETCH (FLAGS (\\Recent))"},
		{"FETCH 1 (BINARY[2])", "* 1 FETCH (BINARY[2] {10}\r\ncafé soft FLAGS (\\Seen \\Recent))"},
	}
	for i, s := range steps {
		tag := fmt.Sprint("f", i)
		got := strings.Join(c.cmd(tag, s.cmd, "OK"), "\r\n")
		if want := s.want + "\r\n" + tag + " OK "; !strings.HasPrefix(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", s.cmd, got, want)
		}
	}
	got := c.cmd("u", "FETCH 1 (BINARY.PEEK[3])", "NO")
	if last := got[len(got)-1]; !strings.HasPrefix(last, "u NO [UNKNOWN-CTE]") {
		t.Errorf("unknown encoding: %q", last)
	}
	c.cmd("b", "FETCH 1 (BINARY.PEEK[1.HEADER])", "BAD")
	c.cmd("b2", "FETCH 1 (BINARY.SIZE[1]<0.2>)", "BAD")
}

// TestBinaryAppend: APPEND takes a literal8, NUL and all, and keeps the
// message as sent; BODY[] stands in 0x80 for NUL, since a plain literal
// must not carry it, while BINARY[] sends it as stored, in a literal8.
func TestBinaryAppend(t *testing.T) {
	e := startEnv(t, t.TempDir(), nil)
	e.makeUsers("alice")
	c := e.raw()
	c.cmd("1", "LOGIN alice alicepw", "OK")
	msg := "Subject: nul\r\nContent-Transfer-Encoding: binary\r\n\r\na\x00b\r\n"
	c.send(fmt.Sprintf("2 APPEND INBOX (\\Flagged) ~{%d}\r\n", len(msg)))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND literal8: %q, want a continuation", l)
	}
	c.send(msg + "\r\n")
	if l := c.until("2 "); !strings.HasPrefix(l[len(l)-1], "2 OK [APPENDUID") {
		t.Fatalf("APPEND literal8: %q", l)
	}
	c.cmd("3", fmt.Sprintf("APPEND INBOX ~{%d+}\r\n%s", len(msg), msg), "OK [APPENDUID")
	c.cmd("4", "EXAMINE INBOX", "OK")
	steps := []struct{ cmd, want string }{
		{"FETCH 1 (RFC822.SIZE BODY.PEEK[TEXT])", "* 1 FETCH (RFC822.SIZE 56 BODY[TEXT] {5}\r\na\x80b\r\n)"},
		{"FETCH 2 (BINARY.PEEK[])", "* 2 FETCH (BINARY[] ~{56}\r\n" + msg + ")"},
		{"FETCH 2 (BINARY.SIZE[1] BINARY.PEEK[1])", "* 2 FETCH (BINARY.SIZE[1] 5 BINARY[1] ~{5}\r\na\x00b\r\n)"},
	}
	for i, s := range steps {
		tag := fmt.Sprint("f", i)
		got := strings.Join(c.cmd(tag, s.cmd, "OK"), "\r\n")
		if want := s.want + "\r\n" + tag + " OK "; !strings.HasPrefix(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", s.cmd, got, want)
		}
	}
}
