// Package mboxname decides which mailbox names the murder accepts, the
// same way for every role: a backend checks names before it creates or
// subscribes to them, a frontend checks the names clients give it, and
// the MUPDATE master checks what backends register.
//
// A name is printable US-ASCII, with other characters in modified UTF-7
// (RFC 3501 5.1.3) in its canonical form, so that it can go in a quoted
// string on every wire and means one thing to every client. The master
// checks only for control bytes (CheckControl): a Cyrus mupdate accepts
// anything, and peers' names ("example.com!user.alice", spaces, '^')
// must pass; CR and LF cannot, as they end a line on every wire.
package mboxname

import (
	"errors"
	"fmt"
)

// MaxLen is the longest name accepted, in bytes: Cyrus's
// MAX_MAILBOX_NAME, so a name created here fits a Cyrus peer too.
const MaxLen = 490

// Errors Check returns, wrapped with the offending position.
var (
	ErrEmpty   = errors.New("mboxname: empty name")
	ErrTooLong = errors.New("mboxname: name too long")
	ErrControl = errors.New("mboxname: control character in name")
	Err8Bit    = errors.New("mboxname: 8-bit character in name")
	ErrUTF7    = errors.New("mboxname: invalid modified UTF-7 in name")
)

// Check reports why name cannot be a mailbox name, or nil.
func Check(name string) error {
	if name == "" {
		return ErrEmpty
	}
	if len(name) > MaxLen {
		return fmt.Errorf("%w (%d bytes, at most %d)", ErrTooLong, len(name), MaxLen)
	}
	shiftEnd := -1 // where the last shift sequence ended
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%w at byte %d", ErrControl, i)
		case c >= 0x80:
			return fmt.Errorf("%w at byte %d", Err8Bit, i)
		case c == '&':
			n, err := shifted(name[i+1:], i == shiftEnd)
			if err != nil {
				return fmt.Errorf("%w at byte %d: %s", ErrUTF7, i, err.Error())
			}
			i += n
			if n > 1 {
				shiftEnd = i + 1
			}
		}
	}
	return nil
}

// CheckControl reports a control byte (below 0x20, or DEL) in name: the
// one check the master makes, as names it stores reach every frontend
// and client.
func CheckControl(name string) error {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w at byte %d", ErrControl, i)
		}
	}
	return nil
}

// utf16Units decodes modified base64 digits into UTF-16 code units; clean
// is false if bits are left over past the last whole unit, beyond the
// zero padding canonical modified UTF-7 allows.
func utf16Units(digits string) (units []uint16, clean bool) {
	var bits, nbits uint32
	for j := 0; j < len(digits); j++ {
		bits = bits<<6 | uint32(b64(digits[j]))
		nbits += 6
		if nbits >= 16 {
			nbits -= 16
			units = append(units, uint16(bits>>nbits))
			bits &= 1<<nbits - 1
		}
	}
	return units, nbits < 6 && bits == 0
}

// shifted checks the base64 part of a shift sequence, s being what follows
// its '&', and returns how many bytes it spans, the closing '-' included.
// afterShift says the '&' directly follows another shift sequence, which
// canonical modified UTF-7 merges into one.
func shifted(s string, afterShift bool) (int, error) {
	end := -1
	for j := 0; j < len(s); j++ {
		if s[j] == '-' {
			end = j
			break
		}
		if b64(s[j]) < 0 {
			return 0, fmt.Errorf("%q is not modified base64", s[j])
		}
	}
	switch {
	case end < 0:
		return 0, errors.New("no closing '-'")
	case end == 0:
		return 1, nil // "&-" is '&'
	case afterShift:
		return 0, errors.New("two adjacent shift sequences")
	}
	units, clean := utf16Units(s[:end])
	if !clean {
		return 0, errors.New("leftover bits")
	}
	for k := 0; k < len(units); k++ {
		u := units[k]
		switch {
		case u < 0x80:
			// Printable US-ASCII must stand for itself (RFC 3501 5.1.3);
			// Cyrus refuses encoded controls too.
			return 0, errors.New("encoded US-ASCII")
		case u >= 0xD800 && u < 0xDC00:
			if k+1 >= len(units) || units[k+1] < 0xDC00 || units[k+1] >= 0xE000 {
				return 0, errors.New("unpaired surrogate")
			}
			k++
		case u >= 0xDC00 && u < 0xE000:
			return 0, errors.New("unpaired surrogate")
		}
	}
	return end + 1, nil
}

// b64 is the value of a modified base64 digit (',' for '/'), or -1.
func b64(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == ',':
		return 63
	}
	return -1
}
