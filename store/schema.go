package store

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Key schema. Every key starts with a one-byte family prefix (readable ASCII, so
// a raw dump of the Pebble store is legible); every value starts with a
// one-byte version of its layout, so a layout can change without a key change.
// Strings in values are a uvarint length followed by the bytes.
//
//	family   key                          value (after the version byte 0x01)
//	-------  ---------------------------  --------------------------------------------
//	system   's' + name                   see the sys* keys below
//	entry    'e' + DBName(mailbox name)   kind byte, name, location, acl
//	log      'l' + seq (8 bytes, BE)      name, old entry, new entry; an entry is a
//	                                      kind byte (0 = absent) then, when present,
//	                                      location and acl (its name is the change's)
//	meta     'm' + meta key               the meta value's bytes, unprefixed
//
// System keys:
//
//	's' "format"   uvarint store format (key layout) version, currently 1
//	's' "epoch"    16 random bytes made when the store is created
//	's' "lastseq"  uvarint seq of the last committed change
//	's' "count"    uvarint number of entry keys
//	's' "reserved" uvarint number of entries of kind Reserved (counted at
//	               Open in a store written before it was kept)
//
// Entry keys sort in Cyrus's mailboxes.db order, which is the order LIST and
// the UPDATE dump must use. DBName is injective only for names without the
// bytes 0x1D and 0x1F ("a.b" and "a\x1fb" share a key), so Commit refuses such
// names and every entry value repeats the exact name, which Get checks.
//
// The log holds every change from OldestSeq through LastSeq without gaps;
// Commit trims its head with one range deletion once it has grown a quarter
// past Options.LogRetain, so trimming is rare and never leaves fewer than
// LogRetain records.
const (
	prefixSys   = 's'
	prefixEntry = 'e'
	prefixLog   = 'l'
	prefixMeta  = 'm'

	valueV1 = 1

	storeFormat = 1
)

var (
	sysFormat   = []byte("sformat")
	sysEpoch    = []byte("sepoch")
	sysLastSeq  = []byte("slastseq")
	sysCount    = []byte("scount")
	sysReserved = []byte("sreserved")
)

// DBName returns the Cyrus 3.6 dbname sort key for an internal mailbox name:
// a virtual domain ("example.com!") stays as it is, its '!' becomes 0x1D;
// in the rest '.' -> 0x1F, '^' -> '.', other bytes as is. Byte order of
// dbnames is the order Cyrus lists mailboxes in, e.g. "user.bob.sub" before
// "user.bob-x", which plain name order would reverse.
func DBName(name string) []byte {
	return appendDBName(make([]byte, 0, len(name)), name)
}

func appendDBName(dst []byte, name string) []byte {
	if i := strings.IndexByte(name, '!'); i >= 0 {
		dst = append(append(dst, name[:i]...), 0x1D)
		name = name[i+1:]
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch c {
		case '!':
			c = 0x1D
		case '.':
			c = 0x1F
		case '^':
			c = '.'
		}
		dst = append(dst, c)
	}
	return dst
}

// CheckName refuses names the list cannot hold: empty ones, and ones
// whose key would alias another name's.
func CheckName(name string) error {
	return checkName(name)
}

// checkName refuses names whose key would alias another name's.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("store: empty mailbox name")
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0x1D || name[i] == 0x1F {
			return fmt.Errorf("store: mailbox name %q holds byte %#x", name, name[i])
		}
	}
	return nil
}

func entryKey(dst []byte, name string) []byte {
	return appendDBName(append(dst, prefixEntry), name)
}

func logKey(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, prefixLog), seq)
}

func metaKey(dst []byte, key string) []byte {
	return append(append(dst, prefixMeta), key...)
}

// familyBounds returns the iterator bounds covering one key family.
func familyBounds(prefix byte) (lower, upper []byte) {
	return []byte{prefix}, []byte{prefix + 1}
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func encodeEntry(dst []byte, e *Entry) []byte {
	dst = append(dst, valueV1, byte(e.Kind))
	dst = appendString(dst, e.Name)
	dst = appendString(dst, e.Location)
	return appendString(dst, e.ACL)
}

// appendLogEntry writes an entry of a change record; nil is kind 0.
func appendLogEntry(dst []byte, e *Entry) []byte {
	if e == nil {
		return append(dst, 0)
	}
	dst = append(dst, byte(e.Kind))
	dst = appendString(dst, e.Location)
	return appendString(dst, e.ACL)
}

func encodeChange(dst []byte, c *Change) []byte {
	dst = append(dst, valueV1)
	dst = appendString(dst, c.Name)
	dst = appendLogEntry(dst, c.Old)
	return appendLogEntry(dst, c.New)
}

func encodeUvarint(dst []byte, v uint64) []byte {
	return binary.AppendUvarint(append(dst, valueV1), v)
}

// decoder reads a value. Strings are cut from one copy of the whole value,
// so decoding an entry costs one allocation instead of one per field.
type decoder struct {
	b   []byte
	s   string
	off int
	bad bool
}

// newDecoder checks the version byte; copyStrings is false for values with
// no string fields.
func newDecoder(v []byte, copyStrings bool) *decoder {
	d := &decoder{b: v, off: 1}
	if len(v) == 0 || v[0] != valueV1 {
		d.bad = true
		return d
	}
	if copyStrings {
		d.s = string(v)
	}
	return d
}

func (d *decoder) byte() byte {
	if d.bad || d.off >= len(d.b) {
		d.bad = true
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint() uint64 {
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

func (d *decoder) string() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.b)-d.off) {
		d.bad = true
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

// logEntry reads an entry of a change record.
func (d *decoder) logEntry(name string) *Entry {
	k := Kind(d.byte())
	if k == 0 || d.bad {
		return nil
	}
	if k != Active && k != Reserved {
		d.bad = true
		return nil
	}
	return &Entry{Name: name, Kind: k, Location: d.string(), ACL: d.string()}
}

// err reports a malformed value or trailing bytes.
func (d *decoder) err(key []byte) error {
	if d.bad || d.off != len(d.b) {
		return fmt.Errorf("store: corrupt value for key %q", key)
	}
	return nil
}

func decodeEntry(key, v []byte) (Entry, error) {
	d := newDecoder(v, true)
	e := Entry{Kind: Kind(d.byte())}
	e.Name = d.string()
	e.Location = d.string()
	e.ACL = d.string()
	if e.Kind != Active && e.Kind != Reserved {
		d.bad = true
	}
	return e, d.err(key)
}

func decodeChange(seq uint64, key, v []byte) (Change, error) {
	d := newDecoder(v, true)
	c := Change{Seq: seq, Name: d.string()}
	c.Old = d.logEntry(c.Name)
	c.New = d.logEntry(c.Name)
	return c, d.err(key)
}

func decodeUvarint(key, v []byte) (uint64, error) {
	d := newDecoder(v, false)
	n := d.uvarint()
	return n, d.err(key)
}
