package mupdate

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

// transcribe feeds input to a Reader the way a server session does
// (ReadHead, then ReadArgs) and returns one event per step: a parsed
// command as `tag NAME "arg"...`, a BAD reply as `BAD <tag|*> <text>`, a
// continuation as `+`, and the final error unless it is io.EOF.
func transcribe(input string, lim Limits) []string {
	var events []string
	r := NewReader(strings.NewReader(input), lim)
	r.SetContinuation(func() error {
		events = append(events, "+")
		return nil
	})
	for range len(input) + 1 {
		tag, name, err := r.ReadHead()
		var args []string
		if err == nil {
			args, err = r.ReadArgs(tag, name)
		}
		var perr *ProtocolError
		switch {
		case err == nil:
			events = append(events, formatCommand(tag, name, args))
			continue
		case errors.As(err, &perr):
			t := perr.Tag
			if t == "" {
				t = "*"
			}
			events = append(events, "BAD "+t+" "+perr.Text)
			continue
		case errors.Is(err, io.EOF):
		case errors.Is(err, ErrFatal):
			events = append(events, "FATAL")
		default:
			events = append(events, "ERR "+err.Error())
		}
		return events
	}
	return append(events, "LOOP")
}

func formatCommand(tag, name string, args []string) string {
	var b strings.Builder
	b.WriteString(tag)
	b.WriteByte(' ')
	b.WriteString(name)
	for _, a := range args {
		b.WriteByte(' ')
		b.WriteString(strconv.Quote(a))
	}
	return b.String()
}

const zNoop = "z NOOP\r\n" // appended to show that the Reader recovered

func TestReadCommandTranscripts(t *testing.T) {
	// Exact client lines of the appendix A transcripts.
	const scram = "biwsbj1hZG1pbixyPUZPZlVTZitESmo2UTdSNENRSWRXemN2anM4T0dmVjk3"
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"A.3 session", "a1 AUTHENTICATE \"PLAIN\" \"AGFkbWluAHNlY3JldA==\"\r\n" +
			"r1 RESERVE \"user.bob\" \"be1!default\"\r\n" +
			"f1 FIND \"user.bob\"\r\n" +
			"r2 RESERVE \"user.bob\" \"be2!default\"\r\n" +
			"c1 ACTIVATE \"user.bob\" \"be1!default\" \"bob\tlrswipkxtecdan\t\"\r\n" +
			"f2 find {8+}\r\nuser.bob\r\n" +
			"l2 LIST \"be2\"\r\n" +
			"f4 FIND \"nonexistent\"\r\n" +
			"L1 LOGOUT\r\n",
			[]string{
				`a1 AUTHENTICATE "PLAIN" "AGFkbWluAHNlY3JldA=="`,
				`r1 RESERVE "user.bob" "be1!default"`,
				`f1 FIND "user.bob"`,
				`r2 RESERVE "user.bob" "be2!default"`,
				`c1 ACTIVATE "user.bob" "be1!default" "bob\tlrswipkxtecdan\t"`,
				`f2 FIND "user.bob"`,
				`l2 LIST "be2"`,
				`f4 FIND "nonexistent"`,
				`L1 LOGOUT`,
			}},
		{"A.3 challenge auth", "a5 AUTHENTICATE \"PLAIN\"\r\n", []string{`a5 AUTHENTICATE "PLAIN"`}},
		{"A.1 Cyrus backend", "A01 AUTHENTICATE \"SCRAM-SHA-512\" {60+}\r\n" + scram + "\r\n" +
			"X0 RESERVE {8+}\r\nuser.zoe {16+}\r\nbe1.test!default\r\n" +
			"X1 ACTIVATE {8+}\r\nuser.zoe {16+}\r\nbe1.test!default {19+}\r\nzoe\tlrswipkxtecdan\t\r\n" +
			"Q01 LOGOUT\r\n",
			[]string{
				`A01 AUTHENTICATE "SCRAM-SHA-512" "` + scram + `"`,
				`X0 RESERVE "user.zoe" "be1.test!default"`,
				`X1 ACTIVATE "user.zoe" "be1.test!default" "zoe\tlrswipkxtecdan\t"`,
				`Q01 LOGOUT`,
			}},
		{"6.3/6.4/6.8 Cyrus lines", "X0 DELETE {13+}\r\nuser.zoe.play\r\n" +
			"X1 RESERVE {30+}\r\nDELETED.user.zoe.play.6B0AEB75 {9+}\r\nbe1.test!\r\n" +
			"X0 LIST {9+}\r\nbe1.test!\r\n" +
			"X4 FIND {8+}\r\nuser^bob\r\n" +
			"X2 DEACTIVATE {8+}\r\nuser.bob {11+}\r\nbe1!default\r\n",
			[]string{
				`X0 DELETE "user.zoe.play"`,
				`X1 RESERVE "DELETED.user.zoe.play.6B0AEB75" "be1.test!"`,
				`X0 LIST "be1.test!"`,
				`X4 FIND "user^bob"`,
				`X2 DEACTIVATE "user.bob" "be1!default"`,
			}},
		{"A.2 slave", "U01 UPDATE\r\nN0 NOOP\r\nN4 NOOP\r\n",
			[]string{`U01 UPDATE`, `N0 NOOP`, `N4 NOOP`}},
		{"no-argument and optional forms", "a LIST\r\nb STARTTLS\r\nc COMPRESS \"DEFLATE\"\r\nd UPDATE \"be1\" \"be2\"\r\n",
			[]string{`a LIST`, `b STARTTLS`, `c COMPRESS "DEFLATE"`, `d UPDATE "be1" "be2"`}},
		{"Rookery XUPDATE", "U01 XUPDATE \"\" \"0\"\r\nU01 xupdate \"e1\" {2+}\r\n42\r\nU02 XUPDATE \"e1\"\r\n",
			[]string{`U01 XUPDATE "" "0"`, `U01 XUPDATE "e1" "42"`, `BAD U02 Missing arguments`}},
		{"case-insensitive names", "a noop\r\nb NoOp\r\nc fInD \"x\"\r\n",
			[]string{`a NOOP`, `b NOOP`, `c FIND "x"`}},
		{"unknown name is upper-cased", "a Frob\r\n", []string{`BAD a Unrecognized command`}},
		{"bare LF", "a NOOP\nb FIND \"x\"\nc FIND {1+}\ny\n", []string{`a NOOP`, `b FIND "x"`, `c FIND "y"`}},
		{"sync literal", "f {8}\r\n", []string{`BAD f Unrecognized command`}},
		{"sync literal argument", "f FIND {8}\r\nuser.bob\r\n" + zNoop, []string{"+", `f FIND "user.bob"`, `z NOOP`}},
		{"sync literals, bare LF", "c ACTIVATE {1}\na {1}\nb {0}\n\n" + zNoop, []string{"+", "+", "+", `c ACTIVATE "a" "b" ""`, `z NOOP`}},
		{"empty strings", "a ACTIVATE \"\" {0+}\r\n \"\"\r\n", []string{`a ACTIVATE "" "" ""`}},
		{"quoted escapes", `a FIND "a\"b\\c\x"` + "\r\n", []string{`a FIND "a\"b\\cx"`}},
		{"8-bit bytes", "a FIND \"\xc3\xa9t\xe9\"\r\n", []string{`a FIND "ét\xe9"`}},
		{"tags with specials", "* NOOP\r\n+ NOOP\r\na.b{1} NOOP\r\n",
			[]string{`* NOOP`, `+ NOOP`, `a.b{1} NOOP`}},
		{"literal with spaces, quotes, CRLF", "a FIND {7+}\r\na \"b\"\r\n\r\n", []string{`a FIND "a \"b\"\r\n"`}},

		// Section 8 and 1.3: the head of the line.
		{"no space after tag", "e1\r\n" + zNoop, []string{`BAD * Need command`, `z NOOP`}},
		{"paren first", "(x FIND \"y\"\r\n" + zNoop, []string{`BAD * Need command`, `z NOOP`}},
		{"quote first", "\"x\" FIND\r\n" + zNoop, []string{`BAD * Need command`, `z NOOP`}},
		{"empty line", "\r\n\n" + zNoop, []string{`BAD * Need command`, `BAD * Need command`, `z NOOP`}},
		{"tab after tag", "a\tNOOP\r\n" + zNoop, []string{`BAD * Need command`, `z NOOP`}},
		{"paren after tag", "a(NOOP\r\n" + zNoop, []string{`BAD * Need command`, `z NOOP`}},
		{"empty tag", " NOOP\r\n" + zNoop, []string{`BAD * Need command`, `z NOOP`}},
		{"null command", "a \r\n" + zNoop, []string{`BAD a Null command`, `z NOOP`}},
		{"two spaces", "a  NOOP\r\n" + zNoop, []string{`BAD a Null command`, `z NOOP`}},
		{"unknown command skips literal", "a FOO {5+}\r\nb NOO bar\r\n" + zNoop, []string{`BAD a Unrecognized command`, `z NOOP`}},
		{"unknown command, sync literal not continued", "a FOO {5}\r\n" + zNoop, []string{`BAD a Unrecognized command`, `z NOOP`}},

		// Section 3.1 and 8: arguments.
		{"FIND without argument", "a FIND\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"FIND paren", "a FIND(\"x\")\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"FIND atom", "a FIND user.bob\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND two spaces", "a FIND  \"x\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND trailing space", "a FIND \"x\" \r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND two arguments", "a FIND \"x\" \"y\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND glued", "a FIND \"x\"y\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND CR CR LF", "a FIND \"x\"\r\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND unterminated", "a FIND \"x\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND escaped line end", "a FIND \"x\\\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND NUL in quoted", "a FIND \"x\x00\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND NUL in literal", "a FIND {3+}\r\na\x00b\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND NUL in literal, rest skipped", "a FIND {1+}\r\n\x00 {4+}\r\nb\r\nc\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND literal without digits", "a FIND {}\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND literal bad close", "a FIND {3x}\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"FIND literal CR without LF", "a FIND {3}\rx\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"ACTIVATE missing two", "a ACTIVATE \"n\"\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"ACTIVATE missing one", "a ACTIVATE \"n\" \"l\"\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"ACTIVATE atom first", "a ACTIVATE n \"l\" \"c\"\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"ACTIVATE atom last", "a ACTIVATE \"n\" \"l\" c\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"ACTIVATE four", "a ACTIVATE \"n\" \"l\" \"c\" \"d\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"ACTIVATE two spaces", "a ACTIVATE \"n\"  \"l\" \"c\"\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"RESERVE missing", "a RESERVE \"n\"\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"RESERVE none", "a RESERVE\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"RESERVE extra", "a RESERVE \"n\" \"l\" \"x\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"DEACTIVATE missing", "a DEACTIVATE \"n\"\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"DELETE missing", "a DELETE\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"DELETE extra", "a DELETE \"n\" \"x\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"AUTHENTICATE none", "a AUTHENTICATE\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"AUTHENTICATE atom", "a AUTHENTICATE PLAIN\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"AUTHENTICATE atom response", "a AUTHENTICATE \"PLAIN\" AGFk\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"AUTHENTICATE three", "a AUTHENTICATE \"PLAIN\" \"x\" \"y\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"COMPRESS none", "a COMPRESS\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"COMPRESS atom", "a COMPRESS DEFLATE\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"NOOP argument", "a NOOP \"x\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"NOOP trailing space", "a NOOP \r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"LOGOUT argument", "a LOGOUT \"x\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"STARTTLS argument", "a STARTTLS x\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"LIST trailing space", "a LIST \r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"LIST atom", "a LIST be1\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"LIST two", "a LIST \"a\" \"b\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"UPDATE empty host", "a UPDATE \"\"\r\n" + zNoop, []string{`BAD a Badly formed arguments`, `z NOOP`}},
		{"UPDATE empty second host", "a UPDATE \"be1\" {0+}\r\n\r\n" + zNoop, []string{`BAD a Badly formed arguments`, `z NOOP`}},
		{"UPDATE atom", "a UPDATE be1\r\n" + zNoop, []string{`BAD a Badly formed arguments`, `z NOOP`}},
		{"UPDATE trailing space", "a UPDATE \"be1\" \r\n" + zNoop, []string{`BAD a Badly formed arguments`, `z NOOP`}},
		{"UPDATE unterminated", "a UPDATE \"be1\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"UPDATE 30 hosts", "a UPDATE" + strings.Repeat(` "h"`, 30) + "\r\n",
			[]string{"a UPDATE" + strings.Repeat(` "h"`, 30)}},
		{"UPDATE 31 hosts", "a UPDATE" + strings.Repeat(` "h"`, 31) + "\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"UPDATE 31st host empty", "a UPDATE" + strings.Repeat(` "h"`, 30) + " \"\"\r\n" + zNoop, []string{`BAD a Badly formed arguments`, `z NOOP`}},

		// Section 1.5: literal sizes.
		{"literal at the limit", "a FIND {131072+}\r\n" + strings.Repeat("x", 131072) + "\r\n",
			[]string{`a FIND "` + strings.Repeat("x", 131072) + `"`}},
		{"sync literal over the limit", "a FIND {131073}\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"sync literal over the limit, not last", "a RESERVE {131073}\r\n" + zNoop, []string{`BAD a Missing arguments`, `z NOOP`}},
		{"sync literal over the limit, UPDATE", "a UPDATE {131073}\r\n" + zNoop, []string{`BAD a Badly formed arguments`, `z NOOP`}},
		{"sync literal over int32", "a FIND {2147483648}\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"sync literal size overflowing everything", "a FIND {99999999999999999999999}\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"non-sync literal over the limit is skipped", "a FIND {131073+}\r\n" + strings.Repeat("y", 131073) + " {3+}\r\nb c\r\n" + zNoop,
			[]string{`BAD a Extra arguments`, `z NOOP`}},
		{"non-sync literal over the discard limit", "a FIND {16777217+}\r\n", []string{"FATAL"}},
		{"non-sync literal over int32", "a FIND {2147483648+}\r\n", []string{"FATAL"}},
		{"discarded literal over the discard limit", "a FOO {16777217+}\r\n", []string{`FATAL`}},
		{"quoted over the limit", "a FIND \"" + strings.Repeat("q", 131073) + "\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"tag over the limit", strings.Repeat("t", 131073) + " NOOP\r\n" + zNoop, []string{`BAD * Need command`, `z NOOP`}},
		{"name over the limit", "a " + strings.Repeat("N", 131073) + "\r\n" + zNoop, []string{`BAD a Unrecognized command`, `z NOOP`}},

		// End of input.
		{"EOF mid-line", "a FIND \"x", []string{"ERR unexpected EOF"}},
		{"EOF in literal", "a FIND {5+}\r\nab", []string{"ERR unexpected EOF"}},
		{"EOF after tag", "a", []string{"ERR unexpected EOF"}},
		{"EOF in discard", "a FOO bar", []string{"ERR unexpected EOF"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := transcribe(tc.input, Limits{})
			if !equalStrings(got, tc.want) {
				t.Errorf("input %q\n got %q\nwant %q", clip(tc.input), clipAll(got), clipAll(tc.want))
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func clipAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = clip(s)
	}
	return out
}

func TestReadCommandSmallLimits(t *testing.T) {
	lim := Limits{MaxString: 8, MaxLine: 40, MaxDiscard: 64}
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"string at the limit", "a FIND \"12345678\"\r\n", []string{`a FIND "12345678"`}},
		{"quoted over the limit", "a FIND \"123456789\"\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"sync literal over the limit", "a FIND {9}\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"non-sync literal skipped", "a FIND {9+}\r\n123456789\r\n" + zNoop, []string{`BAD a Extra arguments`, `z NOOP`}},
		{"non-sync literal over discard", "a FIND {65+}\r\n", []string{"FATAL"}},
		{"line over MaxLine", "a UPDATE \"h1\" \"h2\" \"h3\" \"h4\" \"h5\" \"h6\" \"h7\"\r\n" + zNoop,
			[]string{`BAD a Badly formed arguments`, `z NOOP`}},
		{"line over MaxLine by a literal", "a UPDATE \"h1\" \"h2\" \"h3\" \"h4\" {8+}\r\n12345678\r\n" + zNoop,
			[]string{`BAD a Badly formed arguments`, `z NOOP`}},
		{"discarded line over MaxDiscard", "a FOO " + strings.Repeat("x", 100) + "\r\n", []string{"FATAL"}},
		{"discarded literals add up", "a FOO {40+}\r\n" + strings.Repeat("x", 40) + " {40+}\r\n", []string{"FATAL"}},
		{"tag over the limit", "123456789 NOOP\r\n" + zNoop, []string{`BAD * Need command`, `z NOOP`}},
		{"name over the limit", "a NOOPNOOPN\r\n" + zNoop, []string{`BAD a Unrecognized command`, `z NOOP`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := transcribe(tc.input, lim)
			if !equalStrings(got, tc.want) {
				t.Errorf("input %q\n got %q\nwant %q", clip(tc.input), got, tc.want)
			}
		})
	}
}

// A command refused before its arguments are parsed (BAD "Please login
// first") is thrown away with DiscardLine, like Cyrus's eatline.
func TestDiscardLine(t *testing.T) {
	input := "a ACTIVATE {3+}\r\nx y {2+}\r\nab \"c\"\r\n" + // literals skipped
		"b FIND {3}\r\n" + // a {n} is not continued: the line ends
		"c NOOP\r\n" +
		"d LIST\r\n"
	var conts int
	r := NewReader(strings.NewReader(input), Limits{})
	r.SetContinuation(func() error { conts++; return nil })
	for _, want := range []string{"a", "b"} {
		tag, _, err := r.ReadHead()
		if err != nil || tag != want {
			t.Fatalf("ReadHead = %q, %v; want %q", tag, err, want)
		}
		if err := r.DiscardLine(); err != nil {
			t.Fatalf("DiscardLine: %v", err)
		}
		if err := r.DiscardLine(); err != nil { // nothing left: a no-op
			t.Fatalf("second DiscardLine: %v", err)
		}
	}
	// ReadHead finishes a line the caller left unread.
	if tag, name, err := r.ReadHead(); err != nil || tag != "c" || name != "NOOP" {
		t.Fatalf("ReadHead = %q %q %v", tag, name, err)
	}
	if tag, name, err := r.ReadHead(); err != nil || tag != "d" || name != "LIST" {
		t.Fatalf("ReadHead = %q %q %v", tag, name, err)
	}
	if args, err := r.ReadArgs("d", "LIST"); err != nil || len(args) != 0 {
		t.Fatalf("ReadArgs = %q %v", args, err)
	}
	if _, _, err := r.ReadHead(); err != io.EOF {
		t.Fatalf("ReadHead at end = %v, want io.EOF", err)
	}
	if conts != 0 {
		t.Errorf("continuation called %d times while discarding", conts)
	}
}

func TestContinuationError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(strings.NewReader("a FIND {3}\r\nabc\r\n"), Limits{})
	r.SetContinuation(func() error { return boom })
	tag, name, err := r.ReadHead()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadArgs(tag, name); !errors.Is(err, boom) {
		t.Fatalf("ReadArgs = %v, want the continuation's error", err)
	}
}

// The continuation runs before the payload is read: a peer that waits for
// "+ go ahead" must not deadlock the Reader.
func TestContinuationBeforePayload(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(pr, Limits{})
	r.SetContinuation(func() error {
		go func() {
			pw.Write([]byte("user.bob\r\n"))
			pw.Close()
		}()
		return nil
	})
	go pw.Write([]byte("f FIND {8}\r\n"))
	tag, name, err := r.ReadHead()
	if err != nil {
		t.Fatal(err)
	}
	args, err := r.ReadArgs(tag, name)
	if err != nil || len(args) != 1 || args[0] != "user.bob" {
		t.Fatalf("ReadArgs = %q, %v", args, err)
	}
}

func TestReadLine(t *testing.T) {
	r := NewReader(strings.NewReader("AGFkbWluAHNlY3JldA==\r\n\r\n*\nlast"), Limits{MaxLine: 30})
	for _, want := range []string{"AGFkbWluAHNlY3JldA==", "", "*"} {
		got, err := r.ReadLine()
		if err != nil || got != want {
			t.Fatalf("ReadLine = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := r.ReadLine(); err != io.ErrUnexpectedEOF {
		t.Fatalf("ReadLine of an unterminated line = %v", err)
	}
	r = NewReader(strings.NewReader(strings.Repeat("x", 31)+"\r\n"), Limits{MaxLine: 30})
	if _, err := r.ReadLine(); !errors.Is(err, ErrFatal) {
		t.Fatalf("ReadLine of a long line = %v, want ErrFatal", err)
	}
}

func TestWriterCyrusBytes(t *testing.T) {
	tests := []struct {
		name  string
		write func(w *Writer)
		want  string
	}{
		// Appendix A.3.
		{"MAILBOX", func(w *Writer) { w.Entry("f2", "MAILBOX", "user.bob", "be1!default", "bob\tlrswipkxtecdan\t") },
			"f2 MAILBOX {8+}\r\nuser.bob {11+}\r\nbe1!default {19+}\r\nbob\tlrswipkxtecdan\t\r\n"},
		{"RESERVE", func(w *Writer) { w.Entry("f1", "RESERVE", "user.bob", "be1!default", "") },
			"f1 RESERVE {8+}\r\nuser.bob {11+}\r\nbe1!default\r\n"},
		{"LIST reply", func(w *Writer) {
			w.Entry("l2", "MAILBOX", "user.alice", "be2!p2", "alice\tlrswipkxtecdan\t")
			w.Status("l2", "OK", "list complete")
		}, "l2 MAILBOX {10+}\r\nuser.alice {6+}\r\nbe2!p2 {21+}\r\nalice\tlrswipkxtecdan\t\r\nl2 OK \"list complete\"\r\n"},
		// Section 1.6: empty ACL.
		{"empty ACL", func(w *Writer) { w.Entry("U01", "MAILBOX", "user.x", "be1!", "") },
			"U01 MAILBOX {6+}\r\nuser.x {4+}\r\nbe1! {0+}\r\n\r\n"},
		// Appendix A.2.
		{"DELETE", func(w *Writer) { w.Delete("U01", "user.frank") }, "U01 DELETE {10+}\r\nuser.frank\r\n"},
		{"statuses", func(w *Writer) {
			w.Status("a1", "OK", "Authenticated")
			w.Status("r2", "NO", "mailbox already exists")
			w.Status("*", "BAD", "Need command")
			w.Status("f4", "OK", "Search completed")
		}, "a1 OK \"Authenticated\"\r\nr2 NO \"mailbox already exists\"\r\n* BAD \"Need command\"\r\nf4 OK \"Search completed\"\r\n"},
		{"status escapes", func(w *Writer) { w.Status("a", "NO", "say \"hi\" \\ bye\r\nnow\x00") },
			"a NO \"say \\\"hi\\\" \\\\ bye  now \"\r\n"},
		{"raw statuses", func(w *Writer) {
			w.StatusRaw("a", "NO", "Client canceled authentication")
			w.StatusRaw("s", "OK", "Begin TLS negotiation now")
			w.StatusRaw("b", "NO", "bad\r\nline")
		}, "a NO Client canceled authentication\r\ns OK Begin TLS negotiation now\r\nb NO bad  line\r\n"},
		// Section 2.1.
		{"greeting", func(w *Writer) {
			w.Line(`* AUTH "PLAIN"`)
			w.Line(`* PARTIAL-UPDATE`)
			w.Line(`* OK MUPDATE "mupdate.test" "Cyrus IMAP" "3.6.1-Debian-3.6.1-4+deb12u5" "(master)"`)
			w.Line("")
		}, "* AUTH \"PLAIN\"\r\n* PARTIAL-UPDATE\r\n* OK MUPDATE \"mupdate.test\" \"Cyrus IMAP\" \"3.6.1-Debian-3.6.1-4+deb12u5\" \"(master)\"\r\n\r\n"},
		{"commands", func(w *Writer) {
			w.Command("X0", "RESERVE", "user.zoe", "be1.test!default")
			w.Command("X1", "ACTIVATE", "user.zoe", "be1.test!default", "zoe\tlrswipkxtecdan\t")
			w.Command("X2", "FIND", `a"b\c`)
			w.Command("X3", "FIND", "a\r\nb")
			w.Command("X4", "FIND", "nul\x00")
			w.Command("X5", "LIST")
			w.Command("X6", "FIND", "")
		}, "X0 RESERVE \"user.zoe\" \"be1.test!default\"\r\n" +
			"X1 ACTIVATE \"user.zoe\" \"be1.test!default\" \"zoe\tlrswipkxtecdan\t\"\r\n" +
			"X2 FIND \"a\\\"b\\\\c\"\r\n" +
			"X3 FIND {4+}\r\na\r\nb\r\n" +
			"X4 FIND {4+}\r\nnul\x00\r\n" +
			"X5 LIST\r\n" +
			"X6 FIND \"\"\r\n"},
		{"long argument as literal", func(w *Writer) { w.Command("X0", "FIND", strings.Repeat("n", 1025)) },
			"X0 FIND {1025+}\r\n" + strings.Repeat("n", 1025) + "\r\n"},
		{"1024 bytes still quoted", func(w *Writer) { w.Command("X0", "FIND", strings.Repeat("n", 1024)) },
			"X0 FIND \"" + strings.Repeat("n", 1024) + "\"\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewWriter(&buf)
			tc.write(w)
			if w.Buffered() != len(tc.want) {
				t.Errorf("Buffered = %d, want %d", w.Buffered(), len(tc.want))
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes before Flush", buf.Len())
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tc.want {
				t.Errorf("got  %q\nwant %q", clip(buf.String()), clip(tc.want))
			}
		})
	}
}

// What Command writes, ReadHead and ReadArgs read back unchanged.
func TestCommandRoundTrip(t *testing.T) {
	names := []string{"user.bob", "", `q"uote\back`, "tab\there", "line\r\nend", "nul\x00x"[:3], strings.Repeat("é", 600), "\xff\xfe"}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for i, n := range names {
		w.Command("X"+strconv.Itoa(i), "ACTIVATE", n, "be1!default", n)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&buf, Limits{})
	for i, n := range names {
		tag, name, err := r.ReadHead()
		if err != nil {
			t.Fatal(err)
		}
		args, err := r.ReadArgs(tag, name)
		if err != nil {
			t.Fatalf("%q: %v", n, err)
		}
		if tag != "X"+strconv.Itoa(i) || name != "ACTIVATE" || len(args) != 3 || args[0] != n || args[2] != n {
			t.Errorf("got %s, want name %q", formatCommand(tag, name, args), n)
		}
	}
}

func formatResponse(resp *Response) string {
	s := resp.Tag + " " + resp.Kind
	for _, a := range resp.Args {
		s += " " + strconv.Quote(a)
	}
	if resp.Text != "" {
		s += " text=" + strconv.Quote(resp.Text)
	}
	return s
}

func readResponses(input string, lim Limits) []string {
	var out []string
	r := NewReader(strings.NewReader(input), lim)
	for range len(input) + 1 {
		resp, err := r.ReadResponse()
		switch {
		case err == nil:
			out = append(out, formatResponse(resp))
			continue
		case err == io.EOF:
		case errors.Is(err, errMalformed):
			out = append(out, "MALFORMED")
			continue
		default:
			out = append(out, "ERR "+err.Error())
		}
		return out
	}
	return append(out, "LOOP")
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		// Section 2.1.
		{"Cyrus greeting",
			"* AUTH \"SCRAM-SHA-512\" \"SCRAM-SHA-384\" \"PLAIN\" \"LOGIN\"\r\n" +
				"* STARTTLS\r\n" +
				"* COMPRESS \"DEFLATE\"\r\n" +
				"* PARTIAL-UPDATE\r\n" +
				"* OK MUPDATE \"mupdate.test\" \"Cyrus IMAP\" \"3.6.1-Debian-3.6.1-4+deb12u5\" \"(master)\"\r\n",
			[]string{
				`* AUTH "SCRAM-SHA-512" "SCRAM-SHA-384" "PLAIN" "LOGIN"`,
				`* STARTTLS`,
				`* COMPRESS "DEFLATE"`,
				`* PARTIAL-UPDATE`,
				`* OK "MUPDATE" "mupdate.test" "Cyrus IMAP" "3.6.1-Debian-3.6.1-4+deb12u5" "(master)" text="MUPDATE \"mupdate.test\" \"Cyrus IMAP\" \"3.6.1-Debian-3.6.1-4+deb12u5\" \"(master)\""`,
			}},
		{"empty AUTH and unknown capability", "* AUTH\r\n* X-FOO bar \"baz\"  {3+}\r\nq u\r\n* auth \"plain\"\n",
			[]string{`* AUTH`, `* X-FOO "bar" "baz" "q u"`, `* AUTH "plain"`}},
		{"server busy", "* BYE \"Server Unable\"\r\n\x00", []string{`* BYE "Server Unable" text="Server Unable"`, "ERR unexpected EOF"}},
		// Appendix A.3.
		{"FIND reply",
			"f1 RESERVE {8+}\r\nuser.bob {11+}\r\nbe1!default\r\nf1 OK \"Search completed\"\r\n" +
				"f2 MAILBOX {8+}\r\nuser.bob {11+}\r\nbe1!default {19+}\r\nbob\tlrswipkxtecdan\t\r\nf2 OK \"Search completed\"\r\n",
			[]string{
				`f1 RESERVE "user.bob" "be1!default"`,
				`f1 OK "Search completed" text="Search completed"`,
				`f2 MAILBOX "user.bob" "be1!default" "bob\tlrswipkxtecdan\t"`,
				`f2 OK "Search completed" text="Search completed"`,
			}},
		{"stream", "U01 MAILBOX {6+}\r\nuser.x {4+}\r\nbe1! {0+}\r\n\r\nU01 DELETE {10+}\r\nuser.frank\r\nN0 OK \"Noop done\"\r\n",
			[]string{`U01 MAILBOX "user.x" "be1!" ""`, `U01 DELETE "user.frank"`, `N0 OK "Noop done" text="Noop done"`}},
		{"quoted data lines", "a mailbox \"n\" \"l\" \"c\"\nb reserve \"n\" {1}\r\nl\n",
			[]string{`a MAILBOX "n" "l" "c"`, `b RESERVE "n" "l"`}},
		// Section 8 unquoted texts.
		{"raw texts", "a NO Client canceled authentication\r\ns OK Begin TLS negotiation now\r\nz OK DEFLATE active\r\n",
			[]string{
				`a NO "Client" "canceled" "authentication" text="Client canceled authentication"`,
				`s OK "Begin" "TLS" "negotiation" "now" text="Begin TLS negotiation now"`,
				`z OK "DEFLATE" "active" text="DEFLATE active"`,
			}},
		{"status forms", "a OK\r\nb NO \"\"\r\nc BAD {5+}\r\nab\"cd\r\nd OK \"a\\\"b\"\r\ne BYE \"unterminated\r\nf ok x\ry\r\n",
			[]string{`a OK`, `b NO ""`, `c BAD "ab\"cd" text="ab\"cd"`, `d OK "a\"b" text="a\"b"`,
				`e BYE "unterminated" text="unterminated"`, `f OK "x" "\ry" text="x\ry"`}},
		{"literal-looking words", "a OK {x} {12 {3+} {}\r\n",
			[]string{`a OK "{x}" "{12" "{3+}" "{}" text="{x} {12 {3+} {}"`}},
		{"malformed data lines",
			"a MAILBOX {1+}\r\nn {1+}\r\nl\r\n" + // too few
				"b RESERVE \"n\" \"l\" \"x\"\r\n" + // too many
				"c DELETE n\r\n" + // atom
				"d DELETE  \"n\"\r\n" + // two spaces
				"e MAILBOX\r\n" +
				"f DELETE \"n\" \r\n" +
				"g DELETE {1+}\r\n\x00\r\n" +
				"h OK \"fine\"\r\n",
			[]string{"MALFORMED", "MALFORMED", "MALFORMED", "MALFORMED", "MALFORMED", "MALFORMED", "MALFORMED", `h OK "fine" text="fine"`}},
		{"no kind", "abc\r\n* \r\n\r\nh OK \"fine\"\r\n", []string{"MALFORMED", "MALFORMED", "MALFORMED", `h OK "fine" text="fine"`}},
		{"EOF mid-line", "a OK \"x", []string{"ERR unexpected EOF"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := readResponses(tc.input, Limits{})
			if !equalStrings(got, tc.want) {
				t.Errorf("input %q\n got %q\nwant %q", tc.input, got, tc.want)
			}
		})
	}
}

func TestReadResponseLimits(t *testing.T) {
	lim := Limits{MaxString: 8, MaxLine: 40, MaxDiscard: 64}
	got := readResponses("a DELETE {9+}\r\n123456789\r\n"+
		"b DELETE \"123456789\"\r\n"+
		"c OK 123456789\r\n"+
		"d OK {9+}\r\n123456789\r\n"+
		"e DELETE {8+}\r\n12345678\r\n"+
		"f DELETE {65+}\r\n", lim)
	want := []string{"MALFORMED", "MALFORMED", "MALFORMED", "MALFORMED", `e DELETE "12345678"`, "ERR " +
		"mupdate: literal of 65 bytes over the 64 byte limit: " + ErrFatal.Error()}
	if !equalStrings(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// What the Writer sends, ReadResponse reads back.
func TestResponseRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Entry("U01", "MAILBOX", "user.a b", "be1!default", "a\tlrs\t")
	w.Entry("U01", "RESERVE", "user.\"q\"", "be1!", "")
	w.Delete("U01", "user.\r\nx")
	w.Status("N1", "OK", `Noop "done" \ `)
	w.StatusRaw("a", "NO", "Client canceled authentication")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got := readResponses(buf.String(), Limits{})
	want := []string{
		`U01 MAILBOX "user.a b" "be1!default" "a\tlrs\t"`,
		`U01 RESERVE "user.\"q\"" "be1!"`,
		`U01 DELETE "user.\r\nx"`,
		`N1 OK "Noop \"done\" \\ " text="Noop \"done\" \\ "`,
		`a NO "Client" "canceled" "authentication" text="Client canceled authentication"`,
	}
	if !equalStrings(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func BenchmarkReadActivate(b *testing.B) {
	line := []byte("X1 ACTIVATE {8+}\r\nuser.zoe {16+}\r\nbe1.test!default {19+}\r\nzoe\tlrswipkxtecdan\t\r\n" +
		"X2 ACTIVATE \"user.zoe\" \"be1.test!default\" \"zoe\tlrswipkxtecdan\t\"\r\n")
	const perRound = 2
	input := bytes.Repeat(line, 1000)
	b.SetBytes(int64(len(line)) / perRound)
	b.ReportAllocs()
	src := bytes.NewReader(input)
	r := NewReader(src, Limits{})
	for i := 0; b.Loop(); i++ {
		if i%(1000*perRound) == 0 {
			src.Reset(input)
		}
		tag, name, err := r.ReadHead()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.ReadArgs(tag, name); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteEntry(b *testing.B) {
	w := NewWriter(io.Discard)
	b.ReportAllocs()
	for b.Loop() {
		w.Entry("U01", "MAILBOX", "user.someone.folder", "be1.test!default", "someone\tlrswipkxtecdan\t")
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkReadEntry(b *testing.B) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for range 1000 {
		w.Entry("U01", "MAILBOX", "user.someone.folder", "be1.test!default", "someone\tlrswipkxtecdan\t")
	}
	w.Flush()
	input := buf.Bytes()
	b.SetBytes(int64(len(input) / 1000))
	b.ReportAllocs()
	src := bytes.NewReader(input)
	r := NewReader(src, Limits{})
	for i := 0; b.Loop(); i++ {
		if i%1000 == 0 {
			src.Reset(input)
		}
		if _, err := r.ReadResponse(); err != nil {
			b.Fatal(err)
		}
	}
}
