package mailstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rookery/rookery/internal/record"
)

// Metadata (RFC 5464) entries are stored per mailbox id (ServerMetadata
// for the server's own) and per owner: a user's /private entries under
// the user, /shared entries under "". Keyed by id, they follow a mailbox
// through RENAME and go with it on DELETE.

// ServerMetadata is the mailbox id under which the server's entries are
// kept; mailbox ids start at 1.
const ServerMetadata = 0

// ErrTooManyEntries refuses a change that would leave more entries for
// one owner of one mailbox than the caller's limit.
var ErrTooManyEntries = errors.New("mailstore: too many metadata entries")

// metadataPrefix is the start of the keys of id's entries for owner.
func metadataPrefix(id uint64, owner string) []byte {
	k := binary.BigEndian.AppendUint64([]byte{prefixMetadata}, id)
	k = append(k, owner...)
	return append(k, 0)
}

// Metadata calls fn with each entry (name, value) owner has on the
// mailbox id, in name order, until fn returns false; the value is fn's
// to keep.
func (v *View) Metadata(id uint64, owner string, fn func(entry string, value []byte) bool) error {
	lo := metadataPrefix(id, owner)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: prefixEnd(lo)})
	if err != nil {
		return fmt.Errorf("mailstore: metadata: %w", err)
	}
	var derr error
	for ok := it.First(); ok; ok = it.Next() {
		val, err := it.ValueAndErr()
		if err != nil || len(val) == 0 || val[0] != record.V1 {
			derr = fmt.Errorf("mailstore: bad metadata entry %x: %v", it.Key(), err)
			break
		}
		if !fn(string(it.Key()[len(lo):]), bytes.Clone(val[1:])) {
			break
		}
	}
	if err := it.Close(); err != nil && derr == nil {
		derr = fmt.Errorf("mailstore: metadata: %w", err)
	}
	return derr
}

// SetMetadata sets owner's entries on the mailbox id in one synced write:
// a nil value removes the entry. With maxEntries > 0, a change that would
// leave owner more entries than that on the mailbox is refused whole
// with ErrTooManyEntries. For a mailbox, mailbox names it, and the
// change fails with ErrNotFound if it no longer exists.
func (s *Store) SetMetadata(mailbox string, id uint64, owner string, entries map[string][]byte, maxEntries int) error {
	return s.write(func(t *txn) error {
		if id != ServerMetadata {
			m, ok, err := s.getMailbox(mailbox)
			if err != nil {
				return err
			}
			if !ok || m.ID != id {
				return ErrNotFound
			}
		}
		prefix := metadataPrefix(id, owner)
		count := 0
		if maxEntries > 0 {
			it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
			if err != nil {
				return fmt.Errorf("mailstore: metadata: %w", err)
			}
			have := map[string]bool{}
			for ok := it.First(); ok; ok = it.Next() {
				have[string(it.Key()[len(prefix):])] = true
			}
			if err := it.Close(); err != nil {
				return fmt.Errorf("mailstore: metadata: %w", err)
			}
			count = len(have)
			for name, value := range entries {
				switch {
				case value == nil && have[name]:
					count--
				case value != nil && !have[name]:
					count++
				}
			}
		}
		for name, value := range entries {
			key := append(bytes.Clone(prefix), name...)
			if value == nil {
				t.del(key)
				continue
			}
			t.set(key, append([]byte{record.V1}, value...))
		}
		if maxEntries > 0 && count > maxEntries {
			return ErrTooManyEntries
		}
		return nil
	})
}

// metadataBounds spans every entry of the mailbox id.
func metadataBounds(id uint64) (lo, hi []byte) {
	lo = binary.BigEndian.AppendUint64([]byte{prefixMetadata}, id)
	return lo, prefixEnd(lo)
}

// prefixEnd is the first key after every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
