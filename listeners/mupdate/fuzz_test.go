package mupdate

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"testing"
)

// Seeds: client lines of the transcripts in shared/docs/mupdate-protocol.md
// and the edge cases of its section 8.
var commandSeeds = []string{
	"a1 AUTHENTICATE \"PLAIN\" \"AGFkbWluAHNlY3JldA==\"\r\nr1 RESERVE \"user.bob\" \"be1!default\"\r\nf1 FIND \"user.bob\"\r\n",
	"c1 ACTIVATE \"user.bob\" \"be1!default\" \"bob\tlrswipkxtecdan\t\"\r\nf2 find {8+}\r\nuser.bob\r\nl2 LIST \"be2\"\r\nL1 LOGOUT\r\n",
	"A01 AUTHENTICATE \"SCRAM-SHA-512\" {60+}\r\nbiwsbj1hZG1pbixyPUZPZlVTZitESmo2UTdSNENRSWRXemN2anM4T0dmVjk3\r\n\r\n",
	"X0 RESERVE {8+}\r\nuser.zoe {16+}\r\nbe1.test!default\r\nX1 ACTIVATE {8+}\r\nuser.zoe {16+}\r\nbe1.test!default {19+}\r\nzoe\tlrswipkxtecdan\t\r\nQ01 LOGOUT\r\n",
	"X0 DELETE {13+}\r\nuser.zoe.work\r\nX2 DEACTIVATE {8+}\r\nuser.bob {11+}\r\nbe1!default\r\n",
	"U01 UPDATE\r\nN0 NOOP\r\nu UPDATE \"be1\" \"be2\"\r\nu UPDATE \"\"\r\n",
	"f FIND {8}\r\nuser.bob\r\ng FIND {131073}\r\nz NOOP\r\n",
	"e1\r\n(x FIND \"y\"\r\n\r\na \r\na  NOOP\r\na FOO {3+}\r\nabc\r\n",
	"a FIND user.bob\r\na FIND  \"x\"\r\na FIND \"x\" \r\na LIST \r\na NOOP x\nb STARTTLS\nc COMPRESS \"DEFLATE\"\n",
	"a FIND \"a\\\"b\\\\c\"\r\na FIND {3+}\r\na\x00b\r\na FIND \"x\r\n",
	"a FIND {2147483648}\r\na FIND {99+}\r\n",
	"U01 XUPDATE \"\" \"0\"\r\nU01 XUPDATE \"e\"\r\n",
}

func FuzzReadCommand(f *testing.F) {
	for _, s := range commandSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzCommands(t, data, Limits{})
		fuzzCommands(t, data, Limits{MaxString: 16, MaxLine: 64, MaxDiscard: 256})
	})
}

var argCounts = map[string][2]int{
	cmdAuthenticate: {1, 2}, cmdActivate: {3, 3}, cmdReserve: {2, 2}, cmdDeactivate: {2, 2},
	cmdDelete: {1, 1}, cmdFind: {1, 1}, cmdList: {0, 1}, cmdUpdate: {0, maxUpdateHosts},
	cmdNoop: {0, 0}, cmdLogout: {0, 0}, cmdStartTLS: {0, 0}, cmdCompress: {1, 1}, cmdXUpdate: {2, 2},
}

var badTexts = []string{textNeedCommand, textNullCommand, textMissing, textExtra, textUnrecognized, textBadlyFormed}

func fuzzCommands(t *testing.T, data []byte, lim Limits) {
	r := NewReader(bytes.NewReader(data), lim)
	lim = lim.withDefaults()
	r.SetContinuation(func() error { return nil })
	for range len(data) + 1 {
		tag, name, err := r.ReadHead()
		var args []string
		if err == nil {
			args, err = r.ReadArgs(tag, name)
		}
		var perr *ProtocolError
		switch {
		case err == nil:
			checkCommand(t, tag, name, args, lim)
			continue
		case errors.As(err, &perr):
			if !slices.Contains(badTexts, perr.Text) {
				t.Fatalf("unexpected BAD text %q", perr.Text)
			}
			continue
		case err == io.EOF, err == io.ErrUnexpectedEOF, errors.Is(err, ErrFatal):
			return
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	t.Fatalf("no progress after %d commands on %d bytes", len(data)+1, len(data))
}

func checkCommand(t *testing.T, tag, name string, args []string, lim Limits) {
	n, ok := argCounts[name]
	if !ok {
		t.Fatalf("parsed unknown command %q", name)
	}
	if len(args) < n[0] || len(args) > n[1] {
		t.Fatalf("%s with %d arguments", name, len(args))
	}
	if tag == "" || len(tag) > lim.MaxString {
		t.Fatalf("bad tag %q", tag)
	}
	for _, a := range args {
		if len(a) > lim.MaxString || bytes.IndexByte([]byte(a), 0) >= 0 {
			t.Fatalf("bad argument %q", a)
		}
		if name == cmdUpdate && a == "" {
			t.Fatal("empty UPDATE host")
		}
	}
	// What was read, written again, reads back the same.
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Command(tag, name, args...)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r := NewReader(&buf, Limits{})
	tag2, name2, err := r.ReadHead()
	if err != nil {
		t.Fatalf("re-read %q: %v", buf.String(), err)
	}
	args2, err := r.ReadArgs(tag2, name2)
	if err != nil || tag2 != tag || name2 != name || !slices.Equal(args, args2) {
		t.Fatalf("round trip of %s: got %s, %v", formatCommand(tag, name, args), formatCommand(tag2, name2, args2), err)
	}
}

var responseSeeds = []string{
	"* AUTH \"SCRAM-SHA-512\" \"PLAIN\" \"LOGIN\"\r\n* STARTTLS\r\n* COMPRESS \"DEFLATE\"\r\n* PARTIAL-UPDATE\r\n" +
		"* OK MUPDATE \"mupdate.test\" \"Cyrus IMAP\" \"3.6.1-Debian-3.6.1-4+deb12u5\" \"(master)\"\r\n",
	"* BYE \"Server Unable\"\r\n\x00",
	"f1 RESERVE {8+}\r\nuser.bob {11+}\r\nbe1!default\r\nf1 OK \"Search completed\"\r\n",
	"f2 MAILBOX {8+}\r\nuser.bob {11+}\r\nbe1!default {19+}\r\nbob\tlrswipkxtecdan\t\r\nf2 OK \"Search completed\"\r\n",
	"U01 MAILBOX {6+}\r\nuser.x {4+}\r\nbe1! {0+}\r\n\r\nU01 DELETE {10+}\r\nuser.frank\r\nN0 OK \"Noop done\"\r\n",
	"a NO Client canceled authentication\r\ns OK Begin TLS negotiation now\r\nz OK DEFLATE active\r\na1 NO \"undefined error!\"\r\n",
	"a OK\r\nb NO \"\"\r\nc BAD {5+}\r\nab\"cd\r\nd OK \"a\\\"b\"\r\ne BYE \"unterminated\r\nf ok x\ry\r\n",
	"a OK {x} {12 {3+} {}\r\nb mailbox \"n\" {1}\r\nl \"c\"\n",
	"U01 XSYNC \"FULL\" \"e1\"\r\nU01 XSEQ \"42\"\r\nU01 OK \"streaming starts\"\r\n",
}

func FuzzReadResponse(f *testing.F) {
	for _, s := range responseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzResponses(t, data, Limits{})
		fuzzResponses(t, data, Limits{MaxString: 16, MaxLine: 64, MaxDiscard: 256})
	})
}

func fuzzResponses(t *testing.T, data []byte, lim Limits) {
	r := NewReader(bytes.NewReader(data), lim)
	for range len(data) + 1 {
		resp, err := r.ReadResponse()
		switch {
		case err == nil:
			checkResponse(t, resp)
			continue
		case errors.Is(err, errMalformed):
			continue
		case err == io.EOF, err == io.ErrUnexpectedEOF, errors.Is(err, ErrFatal):
			return
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	t.Fatalf("no progress after %d responses on %d bytes", len(data)+1, len(data))
}

func checkResponse(t *testing.T, resp *Response) {
	if resp.Tag == "" || resp.Kind == "" {
		t.Fatalf("empty tag or kind: %+v", resp)
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	switch resp.Kind {
	case kindMailbox:
		w.Entry(resp.Tag, resp.Kind, resp.Args[0], resp.Args[1], resp.Args[2])
	case kindReserve:
		w.Entry(resp.Tag, resp.Kind, resp.Args[0], resp.Args[1], "")
	case kindDelete:
		w.Delete(resp.Tag, resp.Args[0])
	default:
		return
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	again, err := NewReader(&buf, Limits{}).ReadResponse()
	if err != nil || again.Tag != resp.Tag || again.Kind != resp.Kind || !slices.Equal(again.Args, resp.Args) {
		t.Fatalf("round trip of %s: got %+v, %v", formatResponse(resp), again, err)
	}
}
