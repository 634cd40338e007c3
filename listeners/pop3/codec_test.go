package pop3

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestReply(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("+OK ready\r\n-ERR [AUTH] no\r\n+OK\r\n+ \r\n")), 100)
	for _, want := range []Reply{{true, "ready"}, {false, "[AUTH] no"}, {true, ""}} {
		if got, err := r.ReadReply(); err != nil || got != want {
			t.Errorf("ReadReply = %+v %v, want %+v", got, err, want)
		}
	}
	if _, err := r.ReadReply(); err == nil {
		t.Error("a continuation was taken as a reply")
	}
}

func TestCommand(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("pass a b\r\nSTAT\r\n"+strings.Repeat("x", 300)+"\r\nQUIT\r\n")), 255)
	c, err := r.ReadCommand()
	if err != nil || c.Name != "PASS" || strings.Join(c.Args, "|") != "a|b" {
		t.Errorf("PASS: %+v %v", c, err)
	}
	if c, _ := r.ReadCommand(); c.Name != "STAT" || len(c.Args) != 0 {
		t.Errorf("STAT: %+v", c)
	}
	if _, err := r.ReadCommand(); err != ErrLineTooLong {
		t.Errorf("long line: %v", err)
	}
	if c, _ := r.ReadCommand(); c.Name != "QUIT" {
		t.Errorf("after a long line: %+v", c)
	}
}

func TestMultiLine(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(bufio.NewWriter(&b))
	w.OK("2 messages")
	dw := w.DotWriter()
	io.WriteString(dw, "Subject: x\r\n\r\n.dot\r\n")
	dw.Close()
	w.Flush()
	if want := "+OK 2 messages\r\nSubject: x\r\n\r\n..dot\r\n.\r\n"; b.String() != want {
		t.Errorf("wrote %q", b.String())
	}
	r := NewReader(bufio.NewReader(&b), 100)
	if rep, err := r.ReadReply(); err != nil || !rep.OK {
		t.Fatal(rep, err)
	}
	body, err := io.ReadAll(r.DotReader())
	if err != nil || string(body) != "Subject: x\r\n\r\n.dot\r\n" {
		t.Errorf("read back %q %v", body, err)
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", "-ERR x\r\n", "+ \r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		rep, err := NewReader(bufio.NewReader(strings.NewReader(in)), 512).ReadReply()
		if err == nil && strings.Contains(rep.Text, "\n") {
			t.Errorf("%q: %+v", in, rep)
		}
	})
}
