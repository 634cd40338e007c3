package textline

import (
	"bufio"
	"errors"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	// A 16-byte buffer makes long lines arrive in several chunks.
	r := bufio.NewReaderSize(strings.NewReader("short\r\nbare lf\n"+strings.Repeat("x", 40)+"\r\nafter\r\n"+strings.Repeat("y", 30)+"\r\n"), 16)
	for _, want := range []string{"short", "bare lf"} {
		if got, err := Read(r, 32); got != want || err != nil {
			t.Fatalf("Read = %q, %v; want %q", got, err, want)
		}
	}
	if _, err := Read(r, 32); !errors.Is(err, ErrTooLong) {
		t.Fatalf("long line: %v", err)
	}
	if got, err := Read(r, 32); got != "after" || err != nil {
		t.Fatalf("after a long line: %q, %v", got, err)
	}
	if got, err := Read(r, 32); got != strings.Repeat("y", 30) || err != nil {
		t.Fatalf("line near the limit: %q, %v", got, err)
	}
}
