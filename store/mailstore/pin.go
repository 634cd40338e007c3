package mailstore

import (
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rookery/rookery/internal/record"
)

// Pin is a session's claim on the messages of its selected mailbox that
// it may still name: expunged messages stay readable (View.Find) until
// every pin of their mailbox has been advanced past their expunge, that
// is until every session has told its client (RFC 3501 7.4.1, RFC 2180
// 4.1). One session owns a Pin; its methods are not for concurrent use.
type Pin struct {
	s        *Store
	id       uint64
	modseq   uint64
	released bool
}

// Pin registers a pin on mailbox id that keeps every expunge until
// Advance. It is ordered with writes (it takes the write lock), so a View
// opened after it returns sees every expunge the pin does not keep as
// already done.
func (s *Store) Pin(id uint64) *Pin {
	p := &Pin{s: s, id: id}
	s.mu.Lock()
	s.pinMu.Lock()
	set := s.pins[id]
	if set == nil {
		set = make(map[*Pin]struct{})
		s.pins[id] = set
	}
	set[p] = struct{}{}
	s.pinMu.Unlock()
	s.mu.Unlock()
	return p
}

// Advance tells the store that the session has told its client of every
// expunge up to modseq; messages no other session still needs are
// reclaimed.
func (p *Pin) Advance(modseq uint64) error {
	if p.released || modseq <= p.modseq {
		return nil
	}
	p.s.pinMu.Lock()
	p.modseq = modseq
	held := p.s.held[p.id]
	p.s.pinMu.Unlock()
	if held == 0 {
		return nil
	}
	return p.s.reclaim(p.id)
}

// Release drops the pin (UNSELECT, SELECT of another mailbox, logout).
func (p *Pin) Release() error {
	if p.released {
		return nil
	}
	p.released = true
	p.s.pinMu.Lock()
	delete(p.s.pins[p.id], p)
	if len(p.s.pins[p.id]) == 0 {
		delete(p.s.pins, p.id)
	}
	held := p.s.held[p.id]
	p.s.pinMu.Unlock()
	if held == 0 {
		return nil
	}
	return p.s.reclaim(p.id)
}

// pinned reports whether a session has mailbox id selected; the caller
// holds the write lock.
func (s *Store) pinned(id uint64) bool {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	return len(s.pins[id]) > 0
}

// pinFloor returns the lowest modseq up to which every pin of mailbox id
// has been told (the highest possible when there are none).
func (s *Store) pinFloor(id uint64) uint64 {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	floor := ^uint64(0)
	for p := range s.pins[id] {
		floor = min(floor, p.modseq)
	}
	return floor
}

// reclaim drops the held records of mailbox id that no pin still needs,
// and their body references. On a disk that takes no writes it does
// nothing: the next open reclaims them.
func (s *Store) reclaim(id uint64) error {
	return refused(s.writeLazy(func(t *txn) error {
		msgs, next, err := heldMessages(s.pdb, id, s.heldLow[id], s.pinFloor(id))
		if err != nil {
			return err
		}
		t.setHeldLow(id, next)
		if len(msgs) == 0 {
			return nil
		}
		if err := t.loadBodies(msgs); err != nil {
			return err
		}
		for i := range msgs {
			t.unref(msgs[i].body)
			t.del(heldKey(id, msgs[i].UID))
		}
		t.addHeld(id, -len(msgs))
		return nil
	}))
}

// refused drops the error of a lazy write the disk did not take.
func refused(err error) error {
	if errors.Is(err, ErrFailed) || errors.Is(err, ErrNoSpace) {
		return nil
	}
	return err
}

// heldMessages reads the held records of mailbox id from UID from on and
// returns those expunged at or below floor, and where the held records
// left once they are gone start: the lowest UID of the others, else past
// the last one read.
func heldMessages(r pebble.Reader, id uint64, from uint32, floor uint64) (out []Message, next uint32, err error) {
	_, hi := heldBounds(id)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: heldKey(id, from), UpperBound: hi})
	if err != nil {
		return nil, 0, fmt.Errorf("mailstore: held: %w", err)
	}
	var derr error
	var kept uint32
	next = from
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			derr = fmt.Errorf("mailstore: held: %w", err)
			break
		}
		x, m, err := decodeHeld(it.Key(), v)
		if err != nil {
			derr = err
			break
		}
		switch {
		case x <= floor:
			out = append(out, m)
		case kept == 0:
			kept = m.UID
		}
		if m.UID < math.MaxUint32 {
			next = m.UID + 1
		}
	}
	if kept != 0 {
		next = kept
	}
	if err := it.Close(); err != nil && derr == nil {
		derr = fmt.Errorf("mailstore: held: %w", err)
	}
	return out, next, derr
}

// reclaimAll drops every held record: at open no session exists.
func (s *Store) reclaimAll() error {
	it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixHeld}, UpperBound: []byte{prefixHeld + 1}})
	if err != nil {
		return fmt.Errorf("mailstore: held: %w", err)
	}
	ids := map[uint64]bool{}
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) == 13 {
			ids[beUint64(k[1:])] = true
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("mailstore: held: %w", err)
	}
	for id := range ids {
		if err := s.reclaim(id); err != nil {
			return err
		}
	}
	if len(ids) > 0 {
		s.log.Info("mailstore: released the bodies of messages expunged while selected", "mailboxes", len(ids))
	}
	return nil
}

// upgradeFrom1 builds the change index of a format 1 store, then marks
// it format 2, in batches so that no batch holds a whole large store.
func (s *Store) upgradeFrom1() error {
	it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixMessage}, UpperBound: []byte{prefixMessage + 1}})
	if err != nil {
		return fmt.Errorf("mailstore: upgrade: %w", err)
	}
	b := s.pdb.NewBatch()
	n := 0
	var derr error
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			derr = err
			break
		}
		m, err := decodeMessage(it.Key(), v)
		if err != nil {
			derr = err
			break
		}
		_ = b.Set(changeKey(beUint64(it.Key()[1:]), m.ModSeq, m.UID), []byte{changeLive}, nil)
		if n++; b.Len() > stageBatch {
			if derr = b.Commit(pebble.NoSync); derr != nil {
				break
			}
			b.Close()
			b = s.pdb.NewBatch()
		}
	}
	if err := it.Close(); err != nil && derr == nil {
		derr = err
	}
	if derr == nil {
		_ = b.Set(sysFormat, record.Uvarint(nil, storeFormat), nil)
		derr = b.Commit(pebble.Sync)
	}
	b.Close()
	if derr != nil {
		return fmt.Errorf("mailstore: upgrade to format %d: %w", storeFormat, derr)
	}
	s.log.Info("mailstore: upgraded the store", "format", storeFormat, "messages", n)
	return nil
}
