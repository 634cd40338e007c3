package store

import (
	"bytes"
	"errors"
	"fmt"
	"iter"

	"github.com/cockroachdb/pebble/v2"
)

// Snapshot is a consistent read view of the list. It pins old data in Pebble,
// so close it soon; it must be closed before the DB.
type Snapshot struct {
	snap *pebble.Snapshot
	seq  uint64
	err  error // reading seq failed; every read returns it
}

// Snapshot returns a read view of the list as of now. Should reading its seq
// fail, Seq is 0 and every read of the snapshot returns that error.
func (db *DB) Snapshot() *Snapshot {
	s := &Snapshot{snap: db.pdb.NewSnapshot()}
	// Read from the view itself: LastSeq() may already be behind or ahead
	// of what the view holds while a Commit is finishing.
	v, c, err := s.snap.Get(sysLastSeq)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		s.err = fmt.Errorf("store: snapshot seq: %w", err)
	default:
		s.seq, s.err = decodeUvarint(sysLastSeq, v)
		c.Close()
	}
	return s
}

// Seq returns the seq of the last change visible in the snapshot.
func (s *Snapshot) Seq() uint64 { return s.seq }

// Get returns the entry named name as of the snapshot.
func (s *Snapshot) Get(name string) (Entry, bool, error) {
	if s.err != nil {
		return Entry{}, false, s.err
	}
	return getEntry(s.snap, name)
}

// Scan calls fn for every entry in Cyrus LIST order (byte order of DBName)
// and stops at the first error fn returns, returning it.
func (s *Snapshot) Scan(fn func(Entry) error) error {
	if s.err != nil {
		return s.err
	}
	lo, hi := familyBounds(prefixEntry)
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("store: scan: %w", err)
	}
	err = scan(it, nil, fn)
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: scan: %w", cerr)
	}
	return err
}

// All yields every entry in list order, as Scan calls fn, for a caller
// that walks the list alongside something else (iter.Pull2); a read
// error is yielded last.
func (s *Snapshot) All() iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		err := s.Scan(func(e Entry) error {
			if !yield(e, nil) {
				return errStopped
			}
			return nil
		})
		if err != nil && err != errStopped {
			yield(Entry{}, err)
		}
	}
}

// errStopped ends a Scan whose caller stopped asking.
var errStopped = errors.New("store: scan stopped")

// Subtree calls fn, in list order, for the entry named name and every
// entry below it (name + "." + ...): a user's own mailboxes, read
// without walking anyone else's.
func (s *Snapshot) Subtree(name string, fn func(Entry) error) error {
	if s.err != nil {
		return s.err
	}
	base := entryKey(nil, name)
	// Children follow base+0x1F; base+0x20 bounds them and the few
	// names that only share base as a prefix, which the filter drops.
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: base, UpperBound: append(bytes.Clone(base), 0x20)})
	if err != nil {
		return fmt.Errorf("store: scan %q: %w", name, err)
	}
	err = scan(it, func(k []byte) bool {
		return len(k) == len(base) || k[len(base)] == 0x1F
	}, fn)
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: scan %q: %w", name, cerr)
	}
	return err
}

// Granted calls fn, in list order, for every entry whose ACL grants id
// rights (a positive ACL entry; see the grant keys in schema.go).
func (s *Snapshot) Granted(id string, fn func(Entry) error) error {
	if s.err != nil {
		return s.err
	}
	lo := grantPrefix(nil, id)
	hi, ok := prefixEnd(lo)
	if !ok {
		return fmt.Errorf("store: grants of %q: no key bound", id)
	}
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("store: grants of %q: %w", id, err)
	}
	key := []byte{prefixEntry}
	for ok := it.First(); ok && err == nil; ok = it.Next() {
		key = append(key[:1], it.Key()[len(lo):]...)
		var e Entry
		if e, err = s.entryAt(key); err == nil {
			err = fn(e)
		}
	}
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: grants of %q: %w", id, cerr)
	}
	return err
}

// entryAt reads the entry under an entry key a grant key named; its
// absence means the index and the list disagree.
func (s *Snapshot) entryAt(key []byte) (Entry, error) {
	v, c, err := s.snap.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Entry{}, fmt.Errorf("store: grant key for missing entry %q", key)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("store: get %q: %w", key, err)
	}
	defer c.Close()
	return decodeEntry(key, v)
}

// prefixEnd returns the smallest key above every key starting with p.
func prefixEnd(p []byte) ([]byte, bool) {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xFF {
			end[i]++
			return end[:i+1], true
		}
	}
	return nil, false
}

// scan calls fn for each entry under it whose key keep accepts (nil:
// every one).
func scan(it *pebble.Iterator, keep func(key []byte) bool, fn func(Entry) error) error {
	for ok := it.First(); ok; ok = it.Next() {
		if keep != nil && !keep(it.Key()) {
			continue
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("store: scan: %w", err)
		}
		e, err := decodeEntry(it.Key(), v)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the snapshot.
func (s *Snapshot) Close() error {
	if err := s.snap.Close(); err != nil {
		return fmt.Errorf("store: close snapshot: %w", err)
	}
	return nil
}
