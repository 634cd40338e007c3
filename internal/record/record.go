// Package record is the value format of both Pebble stores (the mailbox
// list and the mail): a version byte, then fields as uvarints, varints and
// length-prefixed strings. A decoder's first problem sticks, so a value is
// read field by field and checked once, at the end.
package record

import (
	"encoding/binary"
	"fmt"
)

// V1 is the version byte every value starts with.
const V1 = 1

// AppendString appends s with its length before it.
func AppendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// Uvarint appends a whole value holding one uvarint.
func Uvarint(dst []byte, v uint64) []byte {
	return binary.AppendUvarint(append(dst, V1), v)
}

// Decoder reads the fields of a value.
type Decoder struct {
	b   []byte
	s   string // a copy of b that strings are cut from, if shared
	off int
	bad bool
}

// NewDecoder checks the version byte. With shareStrings, strings are cut
// from one copy of the whole value, one allocation for all of them,
// which then live as long as any of them does.
func NewDecoder(v []byte, shareStrings bool) Decoder {
	d := Decoder{b: v, off: 1}
	if len(v) == 0 || v[0] != V1 {
		d.bad = true
	} else if shareStrings {
		d.s = string(v)
	}
	return d
}

// Fail marks the value malformed, for checks the caller makes.
func (d *Decoder) Fail() { d.bad = true }

// OK reports whether no problem was found so far.
func (d *Decoder) OK() bool { return !d.bad }

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if d.bad || d.off >= len(d.b) {
		d.bad = true
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.off += n
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	if d.bad {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.bad = true
		return 0
	}
	d.off += n
	return v
}

// Uint32 reads a uvarint that must fit 32 bits.
func (d *Decoder) Uint32() uint32 {
	v := d.Uvarint()
	if v > uint64(^uint32(0)) {
		d.bad = true
	}
	return uint32(v)
}

// Bytes reads a length-prefixed field; the slice is the value's own.
func (d *Decoder) Bytes() []byte {
	n := d.Uvarint()
	if d.bad || n > uint64(len(d.b)-d.off) {
		d.bad = true
		return nil
	}
	b := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return b
}

// String reads a length-prefixed string.
func (d *Decoder) String() string {
	if d.s == "" {
		return string(d.Bytes())
	}
	n := d.Uvarint()
	if d.bad || n > uint64(len(d.b)-d.off) {
		d.bad = true
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// More reports whether bytes are left: a field added to a layout after
// values were written is read only when present.
func (d *Decoder) More() bool { return !d.bad && d.off < len(d.b) }

// Err reports a malformed value or bytes left after its fields, naming
// the package (as error prefix) and the key.
func (d *Decoder) Err(pkg string, key []byte) error {
	if d.bad || d.off != len(d.b) {
		return fmt.Errorf("%s: corrupt value for key %q", pkg, key)
	}
	return nil
}
