package dotstuff

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReader(t *testing.T) {
	cases := []struct{ in, want, rest string }{
		{".\r\nNEXT", "", "NEXT"},
		{"a\r\n.\r\n", "a\r\n", ""},
		{"..a\r\n...\r\n.\r\nX", ".a\r\n..\r\n", "X"},
		{"bare\nlf\n.\n", "bare\r\nlf\r\n", ""},
		{"lone\rcr\r\n.\r\n", "lone\rcr\r\n", ""},
		{".x\r\n.\r\n", "x\r\n", ""},
		{".\rx\r\n.\r\n", ".\rx\r\n", ""},
		{"\r\n\r\n.\r\n", "\r\n\r\n", ""},
	}
	for _, c := range cases {
		for _, size := range []int{16, 4096} { // block boundaries everywhere
			br := bufio.NewReaderSize(strings.NewReader(c.in), size)
			got, err := io.ReadAll(NewReader(br))
			if err != nil || string(got) != c.want {
				t.Errorf("Read(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != c.rest {
				t.Errorf("after %q: left %q, want %q", c.in, rest, c.rest)
			}
		}
	}
	if _, err := io.ReadAll(NewReader(bufio.NewReader(strings.NewReader("no end\r\n")))); !errors.Is(err, ErrUnexpectedEOF) {
		t.Errorf("unterminated: %v", err)
	}
}

func TestWriterRoundTrip(t *testing.T) {
	for _, msg := range []string{"", "a", "a\r\n", ".\r\n", "..\r\n.x\r\n", "x\ny\n", "no newline", "ends in cr\r", "\r\n.\r\n.."} {
		var b bytes.Buffer
		w := NewWriter(&b)
		// Byte by byte, so state crosses Write calls.
		for i := range len(msg) {
			w.Write([]byte{msg[i]})
		}
		w.Close()
		got, err := io.ReadAll(NewReader(bufio.NewReader(&b)))
		want := strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")
		if msg != "" && !strings.HasSuffix(want, "\r\n") {
			if strings.HasSuffix(want, "\r") {
				want += "\n"
			} else {
				want += "\r\n"
			}
		}
		if err != nil || string(got) != want {
			t.Errorf("round trip of %q: %q %v, want %q", msg, got, err, want)
		}
	}
}

func FuzzReader(f *testing.F) {
	for _, s := range []string{".\r\n", "a\r\n..b\r\n.\r\n", "x\n.\n", ".\rx\r\n.\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := io.ReadAll(NewReader(bufio.NewReader(strings.NewReader(in))))
		if err != nil {
			return
		}
		// What was read, written again and read back, is the same.
		var b bytes.Buffer
		w := NewWriter(&b)
		w.Write(got)
		w.Close()
		again, err := io.ReadAll(NewReader(bufio.NewReader(&b)))
		if err != nil || !bytes.Equal(again, got) {
			t.Errorf("%q: read %q, round trip %q %v", in, got, again, err)
		}
	})
}
