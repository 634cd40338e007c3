package mailstore

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/rookery/rookery/internal/record"
)

// Key schema. Every key starts with a one-byte family prefix (readable
// ASCII, so a raw dump is legible); every value starts with a one-byte
// layout version. Integers in keys are big-endian so that byte order is
// numeric order; integers in values are uvarints; strings in values are a
// uvarint length then the bytes.
//
//	family    key                                   value (after version 0x01)
//	--------  ------------------------------------  -----------------------------------
//	system    's' + name                            see the sys* keys below
//	mailbox   'n' + sortName(mailbox)               name, id, uidvalidity, uidnext,
//	                                                highestmodseq, acl, specialuse,
//	                                                exists, size, keywords
//	id index  'i' + id (8)                          mailbox name
//	message   'm' + mailbox id (8) + uid (4)        modseq, internal date (unix s),
//	                                                zone offset (s, zigzag), body id,
//	                                                size, header size, flags,
//	                                                save date (unix s; absent in
//	                                                records written before it)
//	body      'b' + body id (8)                     refs, size, header size, summary
//	chunk     'c' + body id (8) + index (4)         raw bytes, no version byte
//	pending   'p' + body id (8)                     empty: a body being staged
//	subscr.   'u' + user + 0x00 + mailbox           empty
//	quota     'q' + sortName(root)                  root name, limit (KiB + 1; 0 = none),
//	                                                used bytes
//	change    'x' + mailbox id (8) + modseq (8)     one byte: changeLive or changeExpunged
//	            + uid (4)
//	held      'h' + mailbox id (8) + uid (4)        expunge modseq, then the message
//	                                                record as it was (holds a body ref)
//	recent    'r' + mailbox id (8)                  uvarint highest UID given \Recent
//	metadata  'a' + mailbox id (8) + owner + 0x00   the entry's value (RFC 5464); id 0
//	            + entry name                        is the server's, owner "" /shared
//
// System keys:
//
//	's' "format"    uvarint layout version of the whole store, currently 1
//	's' "mbid"      uvarint last mailbox id handed out
//	's' "body"      uvarint last body id handed out
//	's' "uidv"      uvarint last UIDVALIDITY handed out (a re-created name
//	                always gets a new one, even within the same second)
//
// Messages are keyed by the mailbox's id, not its name, so RENAME moves one
// record and the id index entry. Bodies are shared by the messages COPY
// makes (refs counts them) and stored in chunks so that no value, and no
// read, ever holds a whole large message. A body is staged (chunks written
// without waiting for the disk, its 'p' key marking it unfinished) before
// the batch that adds its message; that batch deletes the 'p' key and is
// synced, which also makes the earlier chunk writes durable (one WAL). At
// open, bodies still marked pending are removed.
//
// The change index has one entry per message at its current modseq and
// one per expunged UID at the modseq of its expunge, so "what changed
// since modseq N" is a range scan whatever the mailbox's size (a
// session's update, CONDSTORE's CHANGEDSINCE, QRESYNC's VANISHED). The
// expunged entries stay as the mailbox's memory of expunged UIDs.
//
// An expunged message leaves a held record while some session that has
// selected the mailbox has not yet been told (see Pin): it keeps the body
// readable under the UID that session may still name (RFC 2180 4.1).
// Held records are reclaimed once every such session has been told, and
// all of them at open, when no session can exist.
//
// The recent UID is written without waiting for the disk: losing its
// last step in a crash only shows a message as \Recent once more.
//
// sortName maps '.' to 0x1F so mailboxes sort in Cyrus's order, with a
// mailbox directly followed by its children ("user.bob.sub" before
// "user.bob-x"); names holding 0x1F or 0x00 are refused.
const (
	prefixSys      = 's'
	prefixMailbox  = 'n'
	prefixID       = 'i'
	prefixMessage  = 'm'
	prefixBody     = 'b'
	prefixChunk    = 'c'
	prefixPending  = 'p'
	prefixSub      = 'u'
	prefixQuota    = 'q'
	prefixChange   = 'x'
	prefixHeld     = 'h'
	prefixRecent   = 'r'
	prefixMetadata = 'a'

	changeLive     = 'l'
	changeExpunged = 'x'

	// storeFormat 2 added the change index, held and recent records; a
	// format 1 store is upgraded at open by indexing its messages.
	storeFormat = 2

	// chunkSize is the largest chunk value; a body up to this size is one
	// value written in the same batch as its message.
	chunkSize = 128 << 10
	// stageBatch is how many bytes of chunks one staging batch carries.
	stageBatch = 1 << 20
)

var (
	sysFormat = []byte("sformat")
	sysMBID   = []byte("smbid")
	sysBody   = []byte("sbody")
	sysUIDV   = []byte("suidv")
)

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("mailstore: empty mailbox name")
	}
	for i := 0; i < len(name); i++ {
		if name[i] == 0x1F || name[i] == 0 {
			return fmt.Errorf("mailstore: mailbox name %q holds byte %#x", name, name[i])
		}
	}
	return nil
}

func appendSortName(dst []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '.' {
			c = 0x1F
		}
		dst = append(dst, c)
	}
	return dst
}

func mailboxKey(name string) []byte {
	return appendSortName([]byte{prefixMailbox}, name)
}

func quotaKey(root string) []byte {
	return appendSortName([]byte{prefixQuota}, root)
}

func idKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixID}, id)
}

func messageKey(id uint64, uid uint32) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 13), id)
	k = append([]byte{prefixMessage}, k...)
	return binary.BigEndian.AppendUint32(k, uid)
}

// messageBounds covers the messages of one mailbox with uid in [from, to].
func messageBounds(id uint64, from, to uint32) (lo, hi []byte) {
	lo = messageKey(id, from)
	if to == ^uint32(0) {
		hi = binary.BigEndian.AppendUint64([]byte{prefixMessage}, id+1)
	} else {
		hi = messageKey(id, to+1)
	}
	return lo, hi
}

func changeKey(id, modseq uint64, uid uint32) []byte {
	k := make([]byte, 0, 21)
	k = append(k, prefixChange)
	k = binary.BigEndian.AppendUint64(k, id)
	k = binary.BigEndian.AppendUint64(k, modseq)
	return binary.BigEndian.AppendUint32(k, uid)
}

// changeBounds covers the changes of one mailbox with modseq > since.
func changeBounds(id, since uint64) (lo, hi []byte) {
	lo = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64([]byte{prefixChange}, id), since+1)
	return lo, binary.BigEndian.AppendUint64([]byte{prefixChange}, id+1)
}

// parseChangeKey reads modseq and uid out of a change key.
func parseChangeKey(k []byte) (modseq uint64, uid uint32, ok bool) {
	if len(k) != 21 {
		return 0, 0, false
	}
	return binary.BigEndian.Uint64(k[9:]), binary.BigEndian.Uint32(k[17:]), true
}

func heldKey(id uint64, uid uint32) []byte {
	k := binary.BigEndian.AppendUint64([]byte{prefixHeld}, id)
	return binary.BigEndian.AppendUint32(k, uid)
}

// heldBounds covers the held records of one mailbox.
func heldBounds(id uint64) (lo, hi []byte) {
	return binary.BigEndian.AppendUint64([]byte{prefixHeld}, id), binary.BigEndian.AppendUint64([]byte{prefixHeld}, id+1)
}

func encodeHeld(expunged uint64, m *Message) []byte {
	return append(binary.AppendUvarint([]byte{record.V1}, expunged), encodeMessage(m)...)
}

// decodeHeld reads a held record; key is its held key.
func decodeHeld(key, v []byte) (uint64, Message, error) {
	if len(key) != 13 || len(v) < 2 || v[0] != record.V1 {
		return 0, Message{}, fmt.Errorf("mailstore: bad held record %x", key)
	}
	x, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return 0, Message{}, fmt.Errorf("mailstore: bad held record %x", key)
	}
	// The embedded record decodes as a message record under its message key.
	m, err := decodeMessage(append([]byte{prefixMessage}, key[1:]...), v[1+n:])
	return x, m, err
}

func recentKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixRecent}, id)
}

func bodyKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixBody}, id)
}

func pendingKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixPending}, id)
}

func chunkKey(id uint64, n uint32) []byte {
	k := binary.BigEndian.AppendUint64([]byte{prefixChunk}, id)
	return binary.BigEndian.AppendUint32(k, n)
}

// chunkBounds covers every chunk of one body.
func chunkBounds(id uint64) (lo, hi []byte) {
	return chunkKey(id, 0), binary.BigEndian.AppendUint64([]byte{prefixChunk}, id+1)
}

func subKey(user, mailbox string) []byte {
	k := append([]byte{prefixSub}, user...)
	return append(append(k, 0), mailbox...)
}

func subBounds(user string) (lo, hi []byte) {
	lo = append(append([]byte{prefixSub}, user...), 0)
	hi = append(append([]byte{prefixSub}, user...), 1)
	return lo, hi
}

func encodeMailbox(m *Mailbox) []byte {
	b := []byte{record.V1}
	b = record.AppendString(b, m.Name)
	b = binary.AppendUvarint(b, m.ID)
	b = binary.AppendUvarint(b, uint64(m.UIDValidity))
	b = binary.AppendUvarint(b, uint64(m.UIDNext))
	b = binary.AppendUvarint(b, m.HighestModSeq)
	b = record.AppendString(b, m.ACL)
	b = record.AppendString(b, m.SpecialUse)
	b = binary.AppendUvarint(b, uint64(m.Exists))
	b = binary.AppendUvarint(b, uint64(m.Size))
	b = binary.AppendUvarint(b, uint64(len(m.Keywords)))
	for _, k := range m.Keywords {
		b = record.AppendString(b, k)
	}
	return b
}

func decodeMailbox(key, v []byte) (Mailbox, error) {
	d := record.NewDecoder(v, false)
	m := Mailbox{Name: d.String(), ID: d.Uvarint()}
	m.UIDValidity = d.Uint32()
	m.UIDNext = d.Uint32()
	m.HighestModSeq = d.Uvarint()
	m.ACL = d.String()
	m.SpecialUse = d.String()
	m.Exists = d.Uint32()
	m.Size = int64(d.Uvarint())
	n := d.Uvarint()
	if n > uint64(len(v)) {
		d.Fail()
	}
	for i := uint64(0); i < n && d.OK(); i++ {
		m.Keywords = append(m.Keywords, d.String())
	}
	return m, d.Err("mailstore", key)
}

func encodeMessage(m *Message) []byte {
	b := make([]byte, 0, 48)
	b = append(b, record.V1)
	b = binary.AppendUvarint(b, m.ModSeq)
	_, off := m.InternalDate.Zone()
	b = binary.AppendVarint(b, m.InternalDate.Unix())
	b = binary.AppendVarint(b, int64(off))
	b = binary.AppendUvarint(b, m.body)
	b = binary.AppendUvarint(b, uint64(m.Size))
	b = binary.AppendUvarint(b, uint64(m.HeaderSize))
	b = binary.AppendUvarint(b, uint64(len(m.Flags)))
	for _, f := range m.Flags {
		b = record.AppendString(b, f)
	}
	if !m.SaveDate.IsZero() {
		b = binary.AppendVarint(b, m.SaveDate.Unix())
	}
	return b
}

func decodeMessage(key, v []byte) (Message, error) {
	d := record.NewDecoder(v, false)
	uid, ok := messageUID(key)
	if !ok {
		d.Fail()
	}
	m := Message{UID: uid, ModSeq: d.Uvarint()}
	sec, off := d.Varint(), d.Varint()
	if off > -86400*2 && off < 86400*2 {
		m.InternalDate = time.Unix(sec, 0).In(zone(int(off)))
	} else {
		d.Fail()
	}
	m.body = d.Uvarint()
	m.Size = int64(d.Uvarint())
	m.HeaderSize = int64(d.Uvarint())
	n := d.Uvarint()
	if n > uint64(len(v)) {
		d.Fail()
	}
	if n > 0 && d.OK() {
		m.Flags = make([]string, 0, n)
		for i := uint64(0); i < n && d.OK(); i++ {
			m.Flags = append(m.Flags, d.String())
		}
	}
	if d.More() {
		m.SaveDate = time.Unix(d.Varint(), 0).UTC()
	}
	return m, d.Err("mailstore", key)
}

// peekMessage reads a message record's UID and whether it has \Seen,
// skipping the fields decodeMessage would allocate for.
func peekMessage(key, v []byte) (uint32, bool, error) {
	d := record.NewDecoder(v, false)
	uid, ok := messageUID(key)
	if !ok {
		d.Fail()
	}
	d.Uvarint() // modseq
	d.Varint()  // internal date
	d.Varint()  // zone offset
	d.Uvarint() // body
	d.Uvarint() // size
	d.Uvarint() // header size
	n := d.Uvarint()
	seen := false
	for i := uint64(0); i < n && d.OK(); i++ {
		if f := d.Bytes(); string(f) == `\Seen` {
			seen = true
		}
	}
	if d.More() {
		d.Varint() // save date
	}
	return uid, seen, d.Err("mailstore", key)
}

// messageUID reads the UID out of a message key.
func messageUID(key []byte) (uint32, bool) {
	if len(key) != 13 {
		return 0, false
	}
	return binary.BigEndian.Uint32(key[9:]), true
}

// zone returns a fixed zone for an offset; UTC is shared so that most
// decoded dates allocate nothing for their location.
func zone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	return time.FixedZone("", off)
}

type bodyRecord struct {
	refs       uint64
	size       int64
	headerSize int64
	summary    []byte
}

func encodeBody(r *bodyRecord) []byte {
	b := []byte{record.V1}
	b = binary.AppendUvarint(b, r.refs)
	b = binary.AppendUvarint(b, uint64(r.size))
	b = binary.AppendUvarint(b, uint64(r.headerSize))
	b = binary.AppendUvarint(b, uint64(len(r.summary)))
	return append(b, r.summary...)
}

func decodeBody(key, v []byte) (bodyRecord, error) {
	d := record.NewDecoder(v, false)
	r := bodyRecord{refs: d.Uvarint(), size: int64(d.Uvarint()), headerSize: int64(d.Uvarint())}
	// The value's buffer belongs to Pebble; the summary outlives it.
	r.summary = append([]byte(nil), d.Bytes()...)
	return r, d.Err("mailstore", key)
}

type quotaRecord struct {
	root  string
	limit int64 // KiB; -1 = no limit
	used  int64 // bytes
}

func encodeQuota(q *quotaRecord) []byte {
	b := []byte{record.V1}
	b = record.AppendString(b, q.root)
	b = binary.AppendUvarint(b, uint64(q.limit+1))
	return binary.AppendUvarint(b, uint64(max(q.used, 0)))
}

func decodeQuota(key, v []byte) (quotaRecord, error) {
	d := record.NewDecoder(v, false)
	q := quotaRecord{root: d.String()}
	q.limit = int64(d.Uvarint()) - 1
	q.used = int64(d.Uvarint())
	return q, d.Err("mailstore", key)
}
