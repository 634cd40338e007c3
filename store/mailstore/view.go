package mailstore

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rookery/rookery/internal/record"
)

// View is the store as it was at one moment (a Pebble snapshot): every
// read through it agrees with every other, whatever is written meanwhile,
// so a command that reads records, summaries and bodies through one View
// never finds a body gone under a record it has read. Close it (after the
// Body readers opened from it) when the command is done.
type View struct {
	s    *Store
	snap *pebble.Snapshot
}

// View opens a read view of the store as it is now.
func (s *Store) View() *View {
	return &View{s: s, snap: s.pdb.NewSnapshot()}
}

// Close releases the view.
func (v *View) Close() error {
	if err := v.snap.Close(); err != nil {
		return fmt.Errorf("mailstore: close view: %w", err)
	}
	return nil
}

// MailboxByID returns the mailbox with id, as the view sees it.
func (v *View) MailboxByID(id uint64) (Mailbox, bool, error) { return mailboxByID(v.snap, id) }

// UIDs returns mailbox m's UID list (m read through this view).
func (v *View) UIDs(m Mailbox) (UIDList, error) { return v.s.uids(v.snap, m) }

// Messages is Store.Messages through the view, for mailbox m read
// through it.
func (v *View) Messages(m Mailbox, from, to uint32, fn func(*Message) bool) error {
	return messages(v.snap, m.ID, max(from, v.s.floorAt(m.ID, m.HighestModSeq)), to, fn)
}

// Message returns one message of mailbox id as the view sees it.
func (v *View) Message(id uint64, uid uint32) (Message, bool, error) {
	return getMessage(v.snap, id, uid)
}

// Find calls fn, in UID order, for each of uids (ascending) that mailbox
// id holds or held when it was expunged while a Pin kept it: a session may
// read a message it has not yet been told is gone. UIDs found in neither
// are skipped. The Message is reused between calls.
func (v *View) Find(id uint64, uids []uint32, fn func(m *Message, expunged bool) bool) error {
	if len(uids) == 0 {
		return nil
	}
	i := 0
	var ferr error
	stop := false
	err := messages(v.snap, id, uids[0], uids[len(uids)-1], func(m *Message) bool {
		for i < len(uids) && uids[i] < m.UID {
			if stop, ferr = v.findHeld(id, uids[i], fn); stop || ferr != nil {
				return false
			}
			i++
		}
		if i < len(uids) && uids[i] == m.UID {
			i++
			if !fn(m, false) {
				stop = true
				return false
			}
		}
		return i < len(uids)
	})
	if err != nil || ferr != nil || stop {
		return firstErr(err, ferr)
	}
	for ; i < len(uids); i++ {
		if stop, err := v.findHeld(id, uids[i], fn); stop || err != nil {
			return err
		}
	}
	return nil
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (v *View) findHeld(id uint64, uid uint32, fn func(*Message, bool) bool) (stop bool, err error) {
	key := heldKey(id, uid)
	val, c, err := v.snap.Get(key)
	if err == pebble.ErrNotFound {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("mailstore: get held message: %w", err)
	}
	_, m, err := decodeHeld(key, val)
	c.Close()
	if err != nil {
		return true, err
	}
	return !fn(&m, true), nil
}

// Change is one entry of a mailbox's change index: the message uid now
// has modseq, or was expunged at modseq.
type Change struct {
	UID      uint32
	ModSeq   uint64
	Expunged bool
}

// Changes calls fn for each change to mailbox id with modseq above since,
// in modseq order: messages added or whose flags changed (at their current
// modseq only) and UIDs expunged. Its cost follows the number of changes,
// not the mailbox's size.
func (v *View) Changes(id, since uint64, fn func(Change) bool) error {
	lo, hi := changeBounds(id, since)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("mailstore: changes: %w", err)
	}
	var derr error
	for ok := it.First(); ok; ok = it.Next() {
		modseq, uid, ok := parseChangeKey(it.Key())
		val, err := it.ValueAndErr()
		if err != nil || !ok || len(val) != 1 {
			derr = fmt.Errorf("mailstore: bad change entry %x: %v", it.Key(), err)
			break
		}
		if !fn(Change{UID: uid, ModSeq: modseq, Expunged: val[0] == changeExpunged}) {
			break
		}
	}
	if err := it.Close(); err != nil && derr == nil {
		derr = fmt.Errorf("mailstore: changes: %w", err)
	}
	return derr
}

// Summary is Store.Summary through the view.
func (v *View) Summary(m *Message) ([]byte, error) { return summary(v.snap, m) }

// OpenBody returns a reader of m's body as the view sees it; close it
// before the view.
func (v *View) OpenBody(m *Message) *Body {
	return &Body{r: v.snap, id: m.body, size: m.Size}
}

// RecentUID returns the highest UID of mailbox id that a session has
// given \Recent (0: none).
func (v *View) RecentUID(id uint64) (uint32, error) { return recentUID(v.snap, id) }

func recentUID(r pebble.Reader, id uint64) (uint32, error) {
	key := recentKey(id)
	val, c, err := r.Get(key)
	if err == pebble.ErrNotFound {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("mailstore: get recent: %w", err)
	}
	defer c.Close()
	d := record.NewDecoder(val, false)
	n := d.Uint32()
	return n, d.Err("mailstore", key)
}

// ClaimRecent gives \Recent, for the calling session alone, to every
// message of mailbox id with a UID up to upto that no session was given
// it before (RFC 3501 2.3.2): it returns the highest UID claimed before,
// so the caller's recent messages are those above it. On a disk that
// takes no writes nothing is recent: reads go on without it.
func (s *Store) ClaimRecent(id uint64, upto uint32) (uint32, error) {
	var before uint32
	err := s.writeLazy(func(t *txn) error {
		var err error
		if before, err = recentUID(s.pdb, id); err != nil || upto <= before {
			return err
		}
		t.set(recentKey(id), record.Uvarint(nil, uint64(upto)))
		return nil
	})
	if err != nil && refused(err) == nil {
		return upto, nil
	}
	return before, err
}

// RecentUID is View.RecentUID on the store as it is now.
func (s *Store) RecentUID(id uint64) (uint32, error) { return recentUID(s.pdb, id) }

// Headers calls fn with each message's header (its first HeaderSize
// bytes) for those whose header lies in the body's first chunk, most
// mail; the others are left for OpenBody. The bodies are visited in the
// order they were stored, with one iterator, which costs a fraction of
// reading each on its own (SORT's first look at a large mailbox reads
// every header). The bytes are valid only during the call.
func (v *View) Headers(msgs []*Message, fn func(i int, header []byte) error) error {
	if len(msgs) == 0 {
		return nil
	}
	order := make([]int, len(msgs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(msgs[a].body, msgs[b].body) })
	lo := chunkKey(msgs[order[0]].body, 0)
	_, hi := chunkBounds(msgs[order[len(order)-1]].body)
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("mailstore: headers: %w", err)
	}
	var ferr error
	for _, i := range order {
		m := msgs[i]
		key := chunkKey(m.body, 0)
		if !it.SeekGE(key) || !bytes.Equal(it.Key(), key) {
			continue
		}
		val, err := it.ValueAndErr()
		if err != nil {
			ferr = fmt.Errorf("mailstore: headers: %w", err)
			break
		}
		if int64(len(val)) < m.HeaderSize {
			continue
		}
		if ferr = fn(i, val[:m.HeaderSize]); ferr != nil {
			break
		}
	}
	if err := it.Close(); err != nil && ferr == nil {
		ferr = fmt.Errorf("mailstore: headers: %w", err)
	}
	return ferr
}
