package store

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/rookery/rookery/internal/record"
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
//	grant    'g' + id + DBName(name)      empty; id is the string of an ACL
//	                                      identifier granted rights in name's
//	                                      entry (uvarint length, bytes)
//	server   'c' + server                 uvarint number of entries whose
//	                                      location names that server
//
// System keys:
//
//	's' "format"   uvarint store format (key layout) version, currently 2;
//	               Open brings a format 1 store (no grant or server keys)
//	               up to 2
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
//
// Grant keys index the list by who may see an entry, so a frontend's LIST
// costs what its user may see rather than the size of the whole list: a
// user's mailboxes are her INBOX's subtree of entry keys, and everything
// shared with her or with anyone is under her or anyone's grant prefix.
// Commit writes them in the entry's batch; negative ACL entries ("-id")
// grant nothing and are not indexed. Server keys count each server's
// entries, so placing a new mailbox on the emptiest server does not read
// the whole list.
const (
	prefixSys    = 's'
	prefixEntry  = 'e'
	prefixLog    = 'l'
	prefixMeta   = 'm'
	prefixGrant  = 'g'
	prefixServer = 'c'

	storeFormat = 2
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

// grantPrefix is where the grant keys of identifier id start.
func grantPrefix(dst []byte, id string) []byte {
	return record.AppendString(append(dst, prefixGrant), id)
}

func grantKey(dst []byte, id, name string) []byte {
	return appendDBName(grantPrefix(dst, id), name)
}

func serverKey(dst []byte, server string) []byte {
	return append(append(dst, prefixServer), server...)
}

// grantees calls fn for each identifier an ACL ("id\trights\t...")
// grants rights to.
func grantees(acl string, fn func(id string)) {
	for acl != "" {
		var id, rights string
		id, acl, _ = strings.Cut(acl, "\t")
		rights, acl, _ = strings.Cut(acl, "\t")
		if id != "" && id[0] != '-' && rights != "" {
			fn(id)
		}
	}
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

func encodeEntry(dst []byte, e *Entry) []byte {
	dst = append(dst, record.V1, byte(e.Kind))
	dst = record.AppendString(dst, e.Name)
	dst = record.AppendString(dst, e.Location)
	return record.AppendString(dst, e.ACL)
}

// appendLogEntry writes an entry of a change record; nil is kind 0.
func appendLogEntry(dst []byte, e *Entry) []byte {
	if e == nil {
		return append(dst, 0)
	}
	dst = append(dst, byte(e.Kind))
	dst = record.AppendString(dst, e.Location)
	return record.AppendString(dst, e.ACL)
}

func encodeChange(dst []byte, c *Change) []byte {
	dst = append(dst, record.V1)
	dst = record.AppendString(dst, c.Name)
	dst = appendLogEntry(dst, c.Old)
	return appendLogEntry(dst, c.New)
}

// logEntry reads an entry of a change record.
func logEntry(d *record.Decoder, name string) *Entry {
	k := Kind(d.Byte())
	if k == 0 || !d.OK() {
		return nil
	}
	if k != Active && k != Reserved {
		d.Fail()
		return nil
	}
	return &Entry{Name: name, Kind: k, Location: d.String(), ACL: d.String()}
}

// decodeEntry cuts the entry's strings from one copy of the value, one
// allocation instead of one per field.
func decodeEntry(key, v []byte) (Entry, error) {
	d := record.NewDecoder(v, true)
	e := Entry{Kind: Kind(d.Byte())}
	e.Name = d.String()
	e.Location = d.String()
	e.ACL = d.String()
	if e.Kind != Active && e.Kind != Reserved {
		d.Fail()
	}
	return e, d.Err("store", key)
}

func decodeChange(seq uint64, key, v []byte) (Change, error) {
	d := record.NewDecoder(v, true)
	c := Change{Seq: seq, Name: d.String()}
	c.Old = logEntry(&d, c.Name)
	c.New = logEntry(&d, c.Name)
	return c, d.Err("store", key)
}

func decodeUvarint(key, v []byte) (uint64, error) {
	d := record.NewDecoder(v, false)
	n := d.Uvarint()
	return n, d.Err("store", key)
}
