package store

import (
	"errors"
	"fmt"

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
	err = scan(it, fn)
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: scan: %w", cerr)
	}
	return err
}

func scan(it *pebble.Iterator, fn func(Entry) error) error {
	for ok := it.First(); ok; ok = it.Next() {
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

// ScanUnder is Scan for the entries below name: its descendants, not
// name itself.
func (s *Snapshot) ScanUnder(name string, fn func(Entry) error) error {
	if s.err != nil {
		return s.err
	}
	key := entryKey(nil, name)
	lo := append(key[:len(key):len(key)], 0x1F)
	hi := append(key[:len(key):len(key)], 0x20)
	it, err := s.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("store: scan: %w", err)
	}
	err = scan(it, fn)
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: scan: %w", cerr)
	}
	return err
}
