package lmtp

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func reader(s string) *Reader { return NewReader(bufio.NewReaderSize(strings.NewReader(s), 16), 64) }

func TestReadReply(t *testing.T) {
	r := reader("250-mx.test\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n550 5.1.1 User unknown\r\n354\r\n")
	rep, err := r.ReadReply()
	if err != nil || rep.Code != 250 || strings.Join(rep.Lines, "|") != "mx.test|PIPELINING|AUTH PLAIN" {
		t.Errorf("multi-line: %+v %v", rep, err)
	}
	if rep, err := r.ReadReply(); err != nil || rep.String() != "550 5.1.1 User unknown" || rep.Positive() {
		t.Errorf("550: %+v %v", rep, err)
	}
	if rep, err := r.ReadReply(); err != nil || rep.Code != 354 || !rep.Positive() {
		t.Errorf("354: %+v %v", rep, err)
	}
	for _, bad := range []string{"25\r\n", "abc\r\n", "250-a\r\n251 b\r\n", "250xyz\r\n", "700 no\r\n"} {
		if _, err := reader(bad).ReadReply(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadLine(t *testing.T) {
	r := reader(strings.Repeat("x", 100) + "\r\nRSET\r\n" + strings.Repeat("y", 64) + "\n")
	if _, err := r.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v", err)
	}
	if c, err := r.ReadCommand(); err != nil || c.Verb != "RSET" {
		t.Errorf("after a long line: %+v %v", c, err)
	}
	if l, err := r.ReadLine(); err != nil || len(l) != 64 {
		t.Errorf("line of exactly the limit: %d %v", len(l), err)
	}
}

func TestParsePath(t *testing.T) {
	cases := []struct {
		arg, kw, addr, params string
		ok                    bool
	}{
		{"FROM:<a@b> SIZE=10 BODY=8BITMIME", "FROM", "a@b", "SIZE=10,BODY=8BITMIME", true},
		{"from: <>", "FROM", "", "", true},
		{"TO:<bob+x@example.com>", "TO", "bob+x@example.com", "", true},
		{"TO:bob@example.com", "TO", "", "", false},
		{"TO:<bob", "TO", "", "", false},
		{"FROM:<a@b>", "TO", "", "", false},
		{"TO:<a b@c>", "TO", "", "", false},
	}
	for _, c := range cases {
		addr, params, err := ParsePath(c.arg, c.kw)
		if (err == nil) != c.ok || addr != c.addr || strings.Join(params, ",") != c.params {
			t.Errorf("ParsePath(%q, %q) = %q %q %v", c.arg, c.kw, addr, params, err)
		}
	}
}

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(bufio.NewWriter(&b))
	w.Reply(250, "mx.test", "8BITMIME", "SIZE 10")
	dw := w.DotWriter()
	io.WriteString(dw, ".hidden\nline")
	dw.Close()
	w.Flush()
	want := "250-mx.test\r\n250-8BITMIME\r\n250 SIZE 10\r\n..hidden\r\nline\r\n.\r\n"
	if b.String() != want {
		t.Errorf("wrote %q, want %q", b.String(), want)
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"250 ok\r\n", "250-a\r\n250 b\r\n", "451 4.4.3 x\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rep, err := reader(in).ReadReply()
		if err == nil && (rep.Code < 200 || rep.Code > 599 || len(rep.Lines) == 0) {
			t.Errorf("%q: %+v", in, rep)
		}
	})
}
