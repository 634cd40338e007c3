package mboxname

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// IMAP4rev2 (RFC 9051 5.1) names mailboxes in UTF-8 where IMAP4rev1 uses
// modified UTF-7 (RFC 3501 5.1.3), the form names are stored and sent
// between servers in. A session that enables IMAP4rev2 converts at its
// edge.

const b64Digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,"

// ToUTF8 decodes a modified UTF-7 name; ok is false if it is not valid
// modified UTF-7 (Check says why), and the name is then returned as is.
func ToUTF8(name string) (string, bool) {
	if !strings.Contains(name, "&") {
		return name, true
	}
	if Check(name) != nil {
		return name, false
	}
	var sb strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c != '&' {
			sb.WriteByte(c)
			continue
		}
		end := i + 1 + strings.IndexByte(name[i+1:], '-')
		if end == i+1 {
			sb.WriteByte('&')
			i = end
			continue
		}
		units, _ := utf16Units(name[i+1 : end])
		sb.WriteString(string(utf16.Decode(units)))
		i = end
	}
	return sb.String(), true
}

// FromUTF8 encodes a UTF-8 name in modified UTF-7; ok is false if it is
// not valid UTF-8.
func FromUTF8(name string) (string, bool) {
	if !utf8.ValidString(name) {
		return "", false
	}
	var sb strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		sb.WriteByte('&')
		var bits, nbits uint32
		for _, u := range utf16.Encode(run) {
			bits = bits<<16 | uint32(u)
			nbits += 16
			for nbits >= 6 {
				nbits -= 6
				sb.WriteByte(b64Digits[bits>>nbits&0x3f])
			}
		}
		if nbits > 0 {
			sb.WriteByte(b64Digits[bits<<(6-nbits)&0x3f])
		}
		sb.WriteByte('-')
		run = run[:0]
	}
	for _, r := range name {
		switch {
		case r >= 0x20 && r < 0x7f:
			flush()
			sb.WriteRune(r)
			if r == '&' {
				sb.WriteByte('-')
			}
		default:
			run = append(run, r)
		}
	}
	flush()
	return sb.String(), true
}
