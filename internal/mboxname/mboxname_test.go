package mboxname

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		want error
	}{
		{"INBOX", nil},
		{"user.alice.Sent Items", nil},
		{"example.com!user.alice", nil},
		{"user.bob^smith.x", nil},
		{"~peter/mail/&U,BTFw-/&ZeVnLIqe-", nil}, // RFC 3501 5.1.3
		{"INBOX.caf&AOk-", nil},
		{"INBOX.&-", nil},
		{"INBOX.&AOk-&-", nil},      // "é&"
		{"INBOX.&2D3eAA-", nil},     // U+1F600, a surrogate pair
		{"INBOX.&AOk--x&AOk-", nil}, // '-' then a new shift after a literal
		{strings.Repeat("a", MaxLen), nil},
		{"", ErrEmpty},
		{strings.Repeat("a", MaxLen+1), ErrTooLong},
		{"INBOX.a\r\nb", ErrControl},
		{"INBOX.\x00", ErrControl},
		{"INBOX.\x1f", ErrControl},
		{"INBOX.\x7f", ErrControl},
		{"INBOX.\tx", ErrControl},
		{"INBOX.\xff\xfe", Err8Bit},
		{"INBOX.caf\xc3\xa9", Err8Bit},
		{"INBOX.&Jjo", ErrUTF7},       // unterminated
		{"INBOX.&Jjp-", ErrUTF7},      // leftover bits not zero
		{"INBOX.&Jjo-", nil},          // U+263A
		{"INBOX.&AGE-", ErrUTF7},      // 'a', which must stand for itself
		{"INBOX.&AAo-", ErrUTF7},      // LF, encoded
		{"INBOX.&AOk-&AOk-", ErrUTF7}, // two adjacent shifts
		{"INBOX.&A-", ErrUTF7},        // six bits, no character
		{"INBOX.&AOkA-", ErrUTF7},     // a whole extra digit
		{"INBOX.&2D0-", ErrUTF7},      // lone high surrogate
		{"INBOX.&3gA-", ErrUTF7},      // lone low surrogate
		{"INBOX.&AO/-", ErrUTF7},      // '/' is not modified base64
		{"INBOX.&AO=-", ErrUTF7},
	} {
		err := Check(tc.name)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("Check(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestCheckControl(t *testing.T) {
	for _, ok := range []string{"example.com!user.alice", "user.a b^c", "user.\xff", "shared.&Jjo", ""} {
		if err := CheckControl(ok); err != nil {
			t.Errorf("CheckControl(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"a\r\n t9 OK fake", "a\x00", "a\x7f", "\x1d"} {
		if err := CheckControl(bad); !errors.Is(err, ErrControl) {
			t.Errorf("CheckControl(%q) = %v", bad, err)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "INBOX.&Jjo", "&-", "&AOk-&-", "&2D3eAA-", "a\r\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Check(s) != nil {
			return
		}
		// Whatever passes goes in a quoted string on any wire.
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c >= 0x7f {
				t.Fatalf("Check(%q) passed byte %#x", s, c)
			}
		}
		if len(s) > MaxLen {
			t.Fatalf("Check passed %d bytes", len(s))
		}
	})
}
