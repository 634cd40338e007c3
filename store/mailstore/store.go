// Package mailstore owns a backend's mail in Pebble: mailboxes (by their
// internal Cyrus names, e.g. "user.alice.sub"), messages by mailbox and
// UID with their flags, dates and modseqs, message bodies in chunks,
// subscriptions and storage quotas. It knows nothing of IMAP beyond those
// words: access rights are the callers' business.
//
// Writes are serialised by one mutex and made durable (synced) before any
// method returns, so a caller may acknowledge a write to its client as soon
// as the method succeeds; concurrent writers share their disk syncs. A
// write becomes visible to readers in commit order, possibly a moment
// before its sync completes; only its own caller is ever told it is done.
// Readers never block writers. Watch tells a caller (an IMAP session in
// IDLE) when a mailbox changed, whichever protocol changed it.
package mailstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/rookery/rookery/internal/record"
	"github.com/rookery/rookery/store/fault"
	"github.com/rookery/rookery/store/pebblelog"
)

// Errors returned by the store; test with errors.Is.
var (
	ErrNotFound  = errors.New("mailstore: mailbox does not exist")
	ErrExists    = errors.New("mailstore: mailbox already exists")
	ErrOverQuota = errors.New("mailstore: over quota")
	ErrTooBig    = errors.New("mailstore: message too big")
	ErrClosed    = errors.New("mailstore: closed")
	// ErrFailed and ErrNoSpace come from the disk; see package fault.
	ErrFailed  = fault.ErrFailed
	ErrNoSpace = fault.ErrNoSpace
)

// memTableSize is Pebble's largest memtable here; twice that is kept free
// (see fault.Config.Reserve) so a flush and a WAL rotation always fit.
const memTableSize = 32 << 20

// closeWait bounds Close: Pebble's own waits for a flush a broken disk
// may never finish.
const closeWait = 5 * time.Second

// Options configures Open.
type Options struct {
	Logger *slog.Logger // nil discards
	// Summarize computes the protocol summary stored with each new body
	// (the IMAP server's ENVELOPE and BODYSTRUCTURE, see the imap
	// listener's Summarize); nil stores none. An error stores none too,
	// and is logged: a message is never refused for its summary.
	Summarize func(body io.Reader) ([]byte, error)
	// CacheSize is Pebble's block cache; 0 means 64 MiB.
	CacheSize int64
	// OnFault is told when the store fails or its disk fills or frees up
	// (see package fault); it must not block.
	OnFault func(fault.State, error)
}

// Mailbox is a mailbox's record.
type Mailbox struct {
	Name          string // internal name, e.g. "user.alice.Sent"
	ID            uint64 // stable across RENAME, never reused
	UIDValidity   uint32
	UIDNext       uint32
	HighestModSeq uint64
	ACL           string // Cyrus form "id\trights\t..."
	SpecialUse    string // e.g. `\Sent`; empty if none
	Exists        uint32 // number of messages
	Size          int64  // bytes of all messages
	Keywords      []string
}

// Message is a message's record.
type Message struct {
	UID          uint32
	ModSeq       uint64
	InternalDate time.Time
	Size         int64
	HeaderSize   int64    // bytes up to and including the empty line
	Flags        []string // as stored by the caller: system flags and keywords
	// SaveDate is when the message came into this mailbox (RFC 8514);
	// zero for messages stored before it was kept.
	SaveDate time.Time
	body     uint64
}

// BodyID is the id of the message's body: its copies share it, and no
// other body ever gets it.
func (m *Message) BodyID() uint64 { return m.body }

// Store is an open mail store.
type Store struct {
	pdb       *pebble.DB
	guard     *fault.Guard
	log       *slog.Logger
	summarize func(io.Reader) ([]byte, error)

	mu       sync.Mutex // serialises writes: read, compute, apply
	lastMBID uint64     // under mu
	lastUIDV uint64     // under mu
	lastBody atomic.Uint64
	closed   atomic.Bool

	watchMu       sync.Mutex
	watchers      map[uint64]map[chan struct{}]struct{}
	nameWatchers  map[uint64]func([]NameChange) // by WatchNames id
	lastNameWatch uint64

	uidMu    sync.Mutex
	uidCache map[uint64]uidCacheEntry

	pinMu sync.Mutex
	pins  map[uint64]map[*Pin]struct{} // by mailbox id
	held  map[uint64]int               // held records per mailbox id

	// heldLow is, per mailbox id, a UID no held record of it is below.
	// Reclaims start their scan there instead of walking the deletion
	// markers of every record reclaimed before (under steady expunges
	// that walk took a sixth of a busy backend's CPU). Lower than need
	// be is only slower, higher would strand records: it is lowered at
	// once by an expunge that holds, raised only when a reclaim commits;
	// both under the write lock, which guards it.
	heldLow map[uint64]uint32
}

// Open opens or creates the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cache := opts.CacheSize
	if cache <= 0 {
		cache = 64 << 20
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("mailstore: open %s: %w", dir, err)
	}
	guard, err := fault.New(fault.Config{Name: "mailstore", Dir: dir, Logger: log, Reserve: 2 * memTableSize, OnChange: opts.OnFault})
	if err != nil {
		return nil, err
	}
	po := &pebble.Options{
		CacheSize:          cache,
		MemTableSize:       memTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebblelog.Logger{Log: log, Fatal: func(err error) { _ = guard.Fail(err) }},
		FS:                 guard.FS(vfs.Default),
		EventListener:      &pebble.EventListener{},
	}
	guard.Listen(po.EventListener)
	// Pebble watches its disk operations (DiskSlow) only on this.
	po.WithFSDefaults()
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	pdb, err := pebble.Open(dir, po)
	if err != nil {
		guard.Close()
		return nil, fmt.Errorf("mailstore: open %s: %w", dir, err)
	}
	s := &Store{pdb: pdb, guard: guard, log: log, summarize: opts.Summarize, watchers: make(map[uint64]map[chan struct{}]struct{}),
		nameWatchers: make(map[uint64]func([]NameChange)), uidCache: make(map[uint64]uidCacheEntry),
		pins: make(map[uint64]map[*Pin]struct{}), held: make(map[uint64]int), heldLow: make(map[uint64]uint32)}
	if err := s.load(); err != nil {
		guard.Close()
		return nil, errors.Join(err, pdb.Close())
	}
	return s, nil
}

func (s *Store) load() error {
	format, ok, err := s.getUvarint(sysFormat)
	if err != nil {
		return err
	}
	if !ok {
		if err := s.pdb.Set(sysFormat, record.Uvarint(nil, storeFormat), pebble.Sync); err != nil {
			return fmt.Errorf("mailstore: create: %w", err)
		}
	} else if format == 1 {
		if err := s.upgradeFrom1(); err != nil {
			return err
		}
	} else if format != storeFormat {
		return fmt.Errorf("mailstore: unsupported store format %d", format)
	}
	if s.lastMBID, _, err = s.getUvarint(sysMBID); err != nil {
		return err
	}
	if s.lastUIDV, _, err = s.getUvarint(sysUIDV); err != nil {
		return err
	}
	last, _, err := s.getUvarint(sysBody)
	if err != nil {
		return err
	}
	s.lastBody.Store(last)
	if err := s.dropPending(); err != nil {
		return err
	}
	return s.reclaimAll()
}

// dropPending removes bodies whose staging never finished (a crash between
// staging and commit): their chunks and their markers.
func (s *Store) dropPending() error {
	it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixPending}, UpperBound: []byte{prefixPending + 1}})
	if err != nil {
		return fmt.Errorf("mailstore: scan pending: %w", err)
	}
	b := s.pdb.NewBatch()
	defer b.Close()
	var maxID uint64
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != 9 {
			continue
		}
		id := beUint64(k[1:])
		maxID = max(maxID, id)
		lo, hi := chunkBounds(id)
		_ = b.DeleteRange(lo, hi, nil)
		_ = b.Delete(k, nil)
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("mailstore: scan pending: %w", err)
	}
	if b.Empty() {
		return nil
	}
	// Never hand out a dropped body's id again.
	if maxID > s.lastBody.Load() {
		s.lastBody.Store(maxID)
		_ = b.Set(sysBody, record.Uvarint(nil, maxID), nil)
	}
	s.log.Warn("mailstore: removed unfinished bodies left by a crash", "count", b.Count()/2)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("mailstore: drop pending: %w", err)
	}
	return nil
}

func beUint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func (s *Store) getUvarint(key []byte) (uint64, bool, error) {
	v, c, err := s.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("mailstore: read %s: %w", key[1:], err)
	}
	defer c.Close()
	d := record.NewDecoder(v, false)
	n := d.Uvarint()
	return n, true, d.Err("mailstore", key)
}

// Close closes the store. Open Body readers must be closed first.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	s.guard.Close()
	if err := fault.CloseWithin(closeWait, s.pdb.Close); err != nil {
		return fmt.Errorf("mailstore: close: %w", err)
	}
	return nil
}

// Health is the store's state and, when it failed, why.
func (s *Store) Health() (fault.State, error) { return s.guard.State(), s.guard.Err() }

// txn collects one write: its batch and the mailboxes to notify.
type txn struct {
	s      *Store
	b      *pebble.Batch
	notify []uint64
	names  []NameChange           // for WatchNames
	bodies map[uint64]*bodyRecord // body records read and changed in this txn
	// held counts the held records this txn adds (or, negative, removes)
	// per mailbox, applied to Store.held once committed.
	held map[uint64]int
	// heldLow holds Store.heldLow values to set once committed (0: drop
	// the entry).
	heldLow map[uint64]uint32

	// Set by expunge for commitMailbox.
	usageDelta   int64
	bodiesToDrop []Message
	usage        map[string]*quotaRecord // quota roots changed in this txn
}

// write runs fn under the write lock and, if it succeeds, applies its batch
// and waits for the disk outside the lock (so writers share syncs). fn
// must do all its checks before its first write to the batch, or return no
// error: a failed fn's batch is dropped whole.
func (s *Store) write(fn func(t *txn) error) error {
	return s.writeWith(fn, true)
}

// writeLazy is write without waiting for the disk: for changes whose loss
// in a crash is harmless (open redoes reclaims; a lost recent UID shows a
// message as \Recent again). A later synced write makes it durable too.
func (s *Store) writeLazy(fn func(t *txn) error) error {
	return s.writeWith(fn, false)
}

func (s *Store) writeWith(fn func(t *txn) error, sync bool) (err error) {
	if s.closed.Load() {
		return ErrClosed
	}
	// Before the lock: a failed store's writes must not queue behind a
	// writer stuck in Pebble.
	if err := s.guard.Writable(); err != nil {
		return err
	}
	defer s.guard.Recover(&err)
	t := &txn{s: s, b: s.pdb.NewBatch()}
	defer t.b.Close()
	applied, err := s.apply(t, fn, sync)
	if err != nil || !applied {
		return err
	}
	if sync {
		err = t.b.SyncWait()
	}
	if err := s.guard.Done(err); err != nil {
		return fmt.Errorf("mailstore: commit: %w", err)
	}
	for _, id := range t.notify {
		s.wake(id)
	}
	s.tellNames(t.names)
	return nil
}

// apply runs fn and applies its batch under the write lock, which a panic
// in Pebble releases too; applied is false when fn wrote nothing.
func (s *Store) apply(t *txn, fn func(t *txn) error, sync bool) (applied bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fn(t); err != nil {
		return false, err
	}
	if t.b.Empty() {
		t.settleHeldLow()
		return false, nil
	}
	if sync {
		err = s.pdb.ApplyNoSyncWait(t.b, pebble.Sync)
	} else {
		err = s.pdb.Apply(t.b, pebble.NoSync)
	}
	if err != nil {
		return false, fmt.Errorf("mailstore: commit: %w", s.guard.Done(err))
	}
	if len(t.held) > 0 {
		s.pinMu.Lock()
		for id, n := range t.held {
			if s.held[id] += n; s.held[id] <= 0 {
				delete(s.held, id)
			}
		}
		s.pinMu.Unlock()
	}
	t.settleHeldLow()
	return true, nil
}

func (t *txn) set(key, value []byte) { _ = t.b.Set(key, value, nil) }
func (t *txn) del(key []byte)        { _ = t.b.Delete(key, nil) }

// Mailbox returns the mailbox named name.
func (s *Store) Mailbox(name string) (Mailbox, bool, error) {
	return s.getMailbox(name)
}

func (s *Store) getMailbox(name string) (Mailbox, bool, error) {
	return getMailbox(s.pdb, name)
}

func getMailbox(r pebble.Reader, name string) (Mailbox, bool, error) {
	key := mailboxKey(name)
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Mailbox{}, false, nil
	}
	if err != nil {
		return Mailbox{}, false, fmt.Errorf("mailstore: get %q: %w", name, err)
	}
	defer c.Close()
	m, err := decodeMailbox(key, v)
	if err != nil {
		return Mailbox{}, false, err
	}
	return m, true, nil
}

// MailboxByID returns the mailbox with id, under its current name.
func (s *Store) MailboxByID(id uint64) (Mailbox, bool, error) {
	return mailboxByID(s.pdb, id)
}

func mailboxByID(r pebble.Reader, id uint64) (Mailbox, bool, error) {
	v, c, err := r.Get(idKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return Mailbox{}, false, nil
	}
	if err != nil {
		return Mailbox{}, false, fmt.Errorf("mailstore: get mailbox %d: %w", id, err)
	}
	d := record.NewDecoder(v, false)
	name := d.String()
	err = d.Err("mailstore", idKey(id))
	c.Close()
	if err != nil {
		return Mailbox{}, false, err
	}
	return getMailbox(r, name)
}

// mustMailbox is getMailbox with absence as ErrNotFound.
func (s *Store) mustMailbox(name string) (Mailbox, error) {
	m, ok, err := s.getMailbox(name)
	if err == nil && !ok {
		err = fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return m, err
}

func (s *Store) mustMailboxByID(id uint64) (Mailbox, error) {
	m, ok, err := s.MailboxByID(id)
	if err == nil && !ok {
		err = fmt.Errorf("%w: id %d", ErrNotFound, id)
	}
	return m, err
}

// Mailboxes calls fn for each mailbox in Cyrus order: all of them when
// under is empty, else under itself (if it exists) and its descendants.
// fn returning false stops the walk.
func (s *Store) Mailboxes(under string, fn func(Mailbox) bool) error {
	lo, hi := []byte{prefixMailbox}, []byte{prefixMailbox + 1}
	if under != "" {
		m, ok, err := s.getMailbox(under)
		if err != nil {
			return err
		}
		if ok && !fn(m) {
			return nil
		}
		lo = append(mailboxKey(under), 0x1F)
		hi = append(mailboxKey(under), 0x20)
	}
	it, err := s.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("mailstore: list: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("mailstore: list: %w", err)
		}
		m, err := decodeMailbox(it.Key(), v)
		if err != nil {
			_ = it.Close()
			return err
		}
		if !fn(m) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("mailstore: list: %w", err)
	}
	return nil
}

// CreateMailbox creates a mailbox with a fresh UIDVALIDITY.
func (s *Store) CreateMailbox(name, acl, specialUse string) (Mailbox, error) {
	if err := checkName(name); err != nil {
		return Mailbox{}, err
	}
	var m Mailbox
	err := s.write(func(t *txn) error {
		_, ok, err := s.getMailbox(name)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%w: %q", ErrExists, name)
		}
		s.lastMBID++
		s.lastUIDV = max(s.lastUIDV+1, uint64(time.Now().Unix()))
		if s.lastUIDV > uint64(^uint32(0)) {
			s.lastUIDV = 1
		}
		m = Mailbox{
			Name: name, ID: s.lastMBID, UIDValidity: uint32(s.lastUIDV), UIDNext: 1,
			HighestModSeq: 1, ACL: acl, SpecialUse: specialUse,
		}
		t.set(sysMBID, record.Uvarint(nil, s.lastMBID))
		t.set(sysUIDV, record.Uvarint(nil, s.lastUIDV))
		t.set(mailboxKey(name), encodeMailbox(&m))
		t.set(idKey(m.ID), record.AppendString([]byte{record.V1}, name))
		t.names = append(t.names, NameChange{Event: MailboxCreated, Name: name, ACL: acl, OldACL: acl})
		return nil
	})
	return m, err
}

// SetACL replaces a mailbox's ACL.
func (s *Store) SetACL(name, acl string) error {
	return s.write(func(t *txn) error {
		m, err := s.mustMailbox(name)
		if err != nil {
			return err
		}
		if m.ACL != acl {
			t.names = append(t.names, NameChange{Event: ACLChanged, Name: name, ACL: acl, OldACL: m.ACL})
		}
		m.ACL = acl
		t.set(mailboxKey(name), encodeMailbox(&m))
		return nil
	})
}

// SetSpecialUse sets a mailbox's special use (RFC 6154), empty for none.
func (s *Store) SetSpecialUse(name, use string) error {
	return s.write(func(t *txn) error {
		m, err := s.mustMailbox(name)
		if err != nil {
			return err
		}
		m.SpecialUse = use
		t.set(mailboxKey(name), encodeMailbox(&m))
		return nil
	})
}

// DeleteMailbox removes a mailbox, its messages and its metadata.
func (s *Store) DeleteMailbox(name string) error {
	return s.write(func(t *txn) error {
		m, err := s.mustMailbox(name)
		if err != nil {
			return err
		}
		var msgs []Message
		if err := s.Messages(m.ID, 1, ^uint32(0), func(msg *Message) bool {
			msgs = append(msgs, *msg)
			return true
		}); err != nil {
			return err
		}
		if err := t.loadBodies(msgs); err != nil {
			return err
		}
		if err := t.addUsage(name, -m.Size); err != nil {
			return err
		}
		held, _, err := heldMessages(s.pdb, m.ID, 0, ^uint64(0))
		if err != nil {
			return err
		}
		if err := t.loadBodies(held); err != nil {
			return err
		}
		for i := range msgs {
			t.unref(msgs[i].body)
		}
		for i := range held {
			t.unref(held[i].body)
		}
		t.addHeld(m.ID, -len(held))
		t.setHeldLow(m.ID, 0)
		lo, hi := messageBounds(m.ID, 0, ^uint32(0))
		_ = t.b.DeleteRange(lo, hi, nil)
		lo, hi = heldBounds(m.ID)
		_ = t.b.DeleteRange(lo, hi, nil)
		_, hi = changeBounds(m.ID, 0)
		_ = t.b.DeleteRange(changeKey(m.ID, 0, 0), hi, nil)
		t.del(recentKey(m.ID))
		lo, hi = metadataBounds(m.ID)
		_ = t.b.DeleteRange(lo, hi, nil)
		t.del(mailboxKey(name))
		t.del(idKey(m.ID))
		t.notify = append(t.notify, m.ID)
		t.names = append(t.names, NameChange{Event: MailboxDeleted, Name: name, ACL: m.ACL, OldACL: m.ACL})
		return nil
	})
}

// RenameMailbox gives a mailbox a new name; its id, UIDVALIDITY and
// messages stay. Descendants are not renamed: callers rename each.
func (s *Store) RenameMailbox(oldName, newName string) error {
	if err := checkName(newName); err != nil {
		return err
	}
	return s.write(func(t *txn) error {
		m, err := s.mustMailbox(oldName)
		if err != nil {
			return err
		}
		_, ok, err := s.getMailbox(newName)
		if err != nil {
			return err
		}
		if ok {
			return fmt.Errorf("%w: %q", ErrExists, newName)
		}
		oldRoot, err := s.quotaRoot(oldName)
		if err != nil {
			return err
		}
		newRoot, err := s.quotaRoot(newName)
		if err != nil {
			return err
		}
		if oldRoot.root != newRoot.root {
			if oldRoot.root != "" {
				oldRoot.used -= m.Size
				t.set(quotaKey(oldRoot.root), encodeQuota(&oldRoot))
			}
			if newRoot.root != "" {
				newRoot.used += m.Size
				t.set(quotaKey(newRoot.root), encodeQuota(&newRoot))
			}
		}
		m.Name = newName
		t.del(mailboxKey(oldName))
		t.set(mailboxKey(newName), encodeMailbox(&m))
		t.set(idKey(m.ID), record.AppendString([]byte{record.V1}, newName))
		t.notify = append(t.notify, m.ID)
		t.names = append(t.names, NameChange{Event: MailboxRenamed, Name: newName, OldName: oldName, ACL: m.ACL, OldACL: m.ACL})
		return nil
	})
}

// Messages calls fn for each message of mailbox id with from <= uid <= to,
// in UID order, until fn returns false. The Message is reused between
// calls; copy what must outlive the call.
func (s *Store) Messages(id uint64, from, to uint32, fn func(*Message) bool) error {
	// The live store is at or past every state a floor was read from.
	return messages(s.pdb, id, max(from, s.floorAt(id, math.MaxUint64)), to, fn)
}

func messages(r pebble.Reader, id uint64, from, to uint32, fn func(*Message) bool) error {
	if from > to {
		return nil
	}
	lo, hi := messageBounds(id, from, to)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("mailstore: messages: %w", err)
	}
	var derr error
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			derr = fmt.Errorf("mailstore: messages: %w", err)
			break
		}
		m, err := decodeMessage(it.Key(), v)
		if err != nil {
			derr = err
			break
		}
		if !fn(&m) {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("mailstore: messages: %w", err)
	}
	return derr
}

// UIDList is what SELECT needs of a mailbox: every UID in order and the
// sequence number of the first message without \Seen (0: none).
type UIDList struct {
	UIDs        []uint32
	FirstUnseen uint32
}

// uidCacheSize bounds how many mailboxes' UID lists are kept.
const uidCacheSize = 512

type uidCacheEntry struct {
	modseq uint64
	list   UIDList
	// floor is a UID below which the mailbox holds no message at modseq,
	// nor at any later one: UIDs only grow (messages come in at UIDNEXT).
	// Scans start there rather than walk the deletion markers the
	// expunged messages below it leave in Pebble until compaction (under
	// steady expunges that walk was a fifth of a busy backend's CPU).
	floor uint32
}

// floorAt returns a UID below which mailbox id holds no message in any
// state at or after modseq (0 when none is known).
func (s *Store) floorAt(id, modseq uint64) uint32 {
	s.uidMu.Lock()
	defer s.uidMu.Unlock()
	if e, ok := s.uidCache[id]; ok && e.modseq <= modseq {
		return e.floor
	}
	return 0
}

// uids returns mailbox m's UID list, m read through the view r is. Every
// change to a mailbox raises its HIGHESTMODSEQ, so a list read at a given
// modseq stays right until the next change: it is kept and handed out
// again (read-only) meanwhile, which makes re-selecting a large unchanged
// mailbox cheap.
func (s *Store) uids(r pebble.Reader, m Mailbox) (UIDList, error) {
	from := uint32(1)
	var prev *uidCacheEntry
	s.uidMu.Lock()
	if e, ok := s.uidCache[m.ID]; ok {
		if e.modseq == m.HighestModSeq {
			s.uidMu.Unlock()
			return e.list, nil
		}
		if e.modseq < m.HighestModSeq { // as floorAt
			from = max(from, e.floor)
			prev = &e
		}
	}
	s.uidMu.Unlock()

	if prev != nil {
		list, ok, err := advanceUIDs(r, m, prev)
		if err != nil {
			return UIDList{}, err
		}
		if ok {
			s.keepUIDs(m, list)
			return list, nil
		}
	}
	list := UIDList{UIDs: make([]uint32, 0, m.Exists)}
	if err := scanSeen(r, m.ID, from, ^uint32(0), func(uid uint32, seen bool) bool {
		list.UIDs = append(list.UIDs, uid)
		if !seen && list.FirstUnseen == 0 {
			list.FirstUnseen = uint32(len(list.UIDs))
		}
		return true
	}); err != nil {
		return UIDList{}, err
	}
	s.keepUIDs(m, list)
	return list, nil
}

// keepUIDs caches list as mailbox m's at its HIGHESTMODSEQ.
func (s *Store) keepUIDs(m Mailbox, list UIDList) {
	s.uidMu.Lock()
	defer s.uidMu.Unlock()
	if len(s.uidCache) >= uidCacheSize {
		for id := range s.uidCache { // evict one, any
			delete(s.uidCache, id)
			break
		}
	}
	floor := m.UIDNext
	if len(list.UIDs) > 0 {
		floor = list.UIDs[0]
	}
	if e, ok := s.uidCache[m.ID]; !ok || e.modseq < m.HighestModSeq {
		s.uidCache[m.ID] = uidCacheEntry{modseq: m.HighestModSeq, list: list, floor: floor}
	}
}

// advanceUIDs brings a cached UID list from its modseq to m's with the
// change index, which costs what changed rather than the mailbox's size:
// a resync after a thousand changes to a hundred thousand messages reads
// a thousand entries, not a hundred thousand records. ok is false when
// so much changed that reading the whole list is as cheap.
func advanceUIDs(r pebble.Reader, m Mailbox, prev *uidCacheEntry) (list UIDList, ok bool, err error) {
	old := prev.list.UIDs
	limit := len(old)/4 + 1024
	lo, hi := changeBounds(m.ID, prev.modseq)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return UIDList{}, false, fmt.Errorf("mailstore: uids: %w", err)
	}
	var gone, changed []uint32
	for valid := it.First(); valid; valid = it.Next() {
		_, uid, kok := parseChangeKey(it.Key())
		v, verr := it.ValueAndErr()
		if verr != nil || !kok || len(v) != 1 {
			err = fmt.Errorf("mailstore: bad change entry %x: %v", it.Key(), verr)
			break
		}
		if v[0] == changeExpunged {
			gone = append(gone, uid)
		} else {
			changed = append(changed, uid)
		}
		if len(gone)+len(changed) > limit {
			break
		}
	}
	if cerr := it.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("mailstore: uids: %w", cerr)
	}
	if err != nil || len(gone)+len(changed) > limit {
		return UIDList{}, false, err
	}
	slices.Sort(gone)
	slices.Sort(changed)
	in := func(set []uint32, u uint32) bool { _, f := slices.BinarySearch(set, u); return f }

	uids := make([]uint32, 0, len(old)+len(changed))
	for _, u := range old {
		if !in(gone, u) {
			uids = append(uids, u)
		}
	}
	var last uint32
	if len(old) > 0 {
		last = old[len(old)-1]
	}
	for _, u := range changed {
		if u > last {
			uids = append(uids, u) // new since
		}
	}

	// The first unseen: the earliest unseen among the changed messages,
	// and the old first unseen if it is unchanged; if that one went away
	// or was seen, the unchanged messages after it are read up to the
	// earliest found so far.
	best := uint32(0)
	for _, u := range changed {
		msg, found, gerr := getMessage(r, m.ID, u)
		if gerr != nil {
			return UIDList{}, false, gerr
		}
		if found && !slices.Contains(msg.Flags, `\Seen`) {
			best = u
			break // changed is ascending
		}
	}
	if f := prev.list.FirstUnseen; f > 0 {
		fu := old[f-1]
		switch {
		case !in(gone, fu) && !in(changed, fu):
			if best == 0 || fu < best {
				best = fu
			}
		default:
			next, nerr := nextUnseen(r, m.ID, fu+1, best)
			if nerr != nil {
				return UIDList{}, false, nerr
			}
			if next != 0 {
				best = next
			}
		}
	}
	list = UIDList{UIDs: uids}
	if best != 0 {
		if i, found := slices.BinarySearch(uids, best); found {
			list.FirstUnseen = uint32(i + 1)
		}
	}
	return list, true, nil
}

// nextUnseen returns the first UID from from on, below before (0: no
// bound), of a message without \Seen in mailbox id, or 0.
func nextUnseen(r pebble.Reader, id uint64, from, before uint32) (uint32, error) {
	to := ^uint32(0)
	if before != 0 {
		if before <= from {
			return 0, nil
		}
		to = before - 1
	}
	var found uint32
	err := scanSeen(r, id, from, to, func(uid uint32, seen bool) bool {
		if !seen {
			found = uid
			return false
		}
		return true
	})
	return found, err
}

// scanSeen calls fn with the UID of each message of mailbox id from from
// to to and whether it has \Seen, reading only that much of each record,
// until fn returns false.
func scanSeen(r pebble.Reader, id uint64, from, to uint32, fn func(uid uint32, seen bool) bool) error {
	lo, hi := messageBounds(id, from, to)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("mailstore: uids: %w", err)
	}
	var derr error
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			derr = fmt.Errorf("mailstore: uids: %w", err)
			break
		}
		uid, seen, err := peekMessage(it.Key(), v)
		if err != nil {
			derr = err
			break
		}
		if !fn(uid, seen) {
			break
		}
	}
	if err := it.Close(); err != nil && derr == nil {
		derr = fmt.Errorf("mailstore: uids: %w", err)
	}
	return derr
}

// Message returns one message.
func (s *Store) Message(id uint64, uid uint32) (Message, bool, error) {
	return getMessage(s.pdb, id, uid)
}

func getMessage(r pebble.Reader, id uint64, uid uint32) (Message, bool, error) {
	key := messageKey(id, uid)
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Message{}, false, nil
	}
	if err != nil {
		return Message{}, false, fmt.Errorf("mailstore: get message: %w", err)
	}
	defer c.Close()
	m, err := decodeMessage(key, v)
	return m, err == nil, err
}

// Summary returns the summary stored with a message's body (nil if none).
func (s *Store) Summary(m *Message) ([]byte, error) {
	return summary(s.pdb, m)
}

func summary(r pebble.Reader, m *Message) ([]byte, error) {
	b, ok, err := getBody(r, m.body)
	if err != nil || !ok {
		return nil, err
	}
	return b.summary, nil
}

func (s *Store) getBody(id uint64) (bodyRecord, bool, error) { return getBody(s.pdb, id) }

func getBody(r pebble.Reader, id uint64) (bodyRecord, bool, error) {
	key := bodyKey(id)
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return bodyRecord{}, false, nil
	}
	if err != nil {
		return bodyRecord{}, false, fmt.Errorf("mailstore: get body: %w", err)
	}
	defer c.Close()
	b, err := decodeBody(key, v)
	return b, err == nil, err
}

// loadBodies reads the body records of msgs into the txn.
func (t *txn) loadBodies(msgs []Message) error {
	if t.bodies == nil {
		t.bodies = make(map[uint64]*bodyRecord)
	}
	for i := range msgs {
		id := msgs[i].body
		if _, ok := t.bodies[id]; ok {
			continue
		}
		r, ok, err := t.s.getBody(id)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("mailstore: message %d: body %d missing", msgs[i].UID, id)
		}
		t.bodies[id] = &r
	}
	return nil
}

// unref drops one reference to a loaded body, removing it at zero.
func (t *txn) unref(id uint64) {
	r := t.bodies[id]
	r.refs--
	if r.refs > 0 {
		t.set(bodyKey(id), encodeBody(r))
		return
	}
	t.del(bodyKey(id))
	lo, hi := chunkBounds(id)
	_ = t.b.DeleteRange(lo, hi, nil)
}

// ref adds one reference to a loaded body.
func (t *txn) ref(id uint64) {
	r := t.bodies[id]
	r.refs++
	t.set(bodyKey(id), encodeBody(r))
}

// Watch returns a channel that receives a value (never blocking the
// writer; one pending value at most) after each durable change to mailbox
// id, and a cancel function that must be called when done.
func (s *Store) Watch(id uint64) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	return ch, s.WatchWith(id, ch)
}

// WatchWith is Watch with the caller's channel, which may watch several
// mailboxes at once; a signal it cannot take at once is dropped, as one
// already waits. It returns the function that stops the watch.
func (s *Store) WatchWith(id uint64, ch chan struct{}) func() {
	s.watchMu.Lock()
	set := s.watchers[id]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		s.watchers[id] = set
	}
	set[ch] = struct{}{}
	s.watchMu.Unlock()
	return func() {
		s.watchMu.Lock()
		delete(s.watchers[id], ch)
		if len(s.watchers[id]) == 0 {
			delete(s.watchers, id)
		}
		s.watchMu.Unlock()
	}
}

func (s *Store) wake(id uint64) {
	s.watchMu.Lock()
	for ch := range s.watchers[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.watchMu.Unlock()
}

// Deliver stores one message at the end of mailbox and returns its UID;
// when it returns, the message is on disk and watchers of the mailbox
// have been told. It is what LMTP and APPEND use. limit caps the
// message's size (0: none), giving ErrTooBig.
func (s *Store) Deliver(ctx context.Context, mailbox string, flags []string, date time.Time, body io.Reader, limit int64) (uint32, error) {
	st, err := s.Stage(ctx, body, limit)
	if err != nil {
		return 0, err
	}
	res, err := s.Append(mailbox, []NewMessage{{Flags: flags, InternalDate: date, Body: st}})
	if err != nil {
		return 0, errors.Join(err, st.Discard())
	}
	return res.UIDs[0], nil
}

// mergeKeywords returns have plus the keywords among flags it lacks; the
// result is a new slice when anything is added.
func mergeKeywords(have []string, flags []string) []string {
	changed := false
	for _, f := range flags {
		if len(f) > 0 && f[0] == '\\' {
			continue
		}
		if !slices.Contains(have, f) {
			if !changed {
				have = slices.Clone(have)
				changed = true
			}
			have = append(have, f)
		}
	}
	return have
}
