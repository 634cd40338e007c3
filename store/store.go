// Package store owns the node's Pebble database: the MUPDATE mailbox list,
// kept in Cyrus's LIST order, and a change log numbered by sequence that lets
// UPDATE streams and replicas resume where they stopped. One goroutine writes
// (Commit); any number read.
package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/rookery/rookery/internal/record"
	"github.com/rookery/rookery/store/fault"
	"github.com/rookery/rookery/store/pebblelog"
)

// Kind is the type of a mailbox list entry.
type Kind uint8

// Entry kinds; their values are stored on disk.
const (
	Active   Kind = 1 // MUPDATE "MAILBOX"
	Reserved Kind = 2 // MUPDATE "RESERVE"
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case Active:
		return "active"
	case Reserved:
		return "reserved"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Entry is one mailbox in the list.
type Entry struct {
	Name     string // Cyrus internal name, e.g. "user.bob", "example.com!user.eve"
	Kind     Kind
	Location string // "server!partition" exactly as received (may be "be1", "be1!", "a!b!c")
	ACL      string // Cyrus ACL "id\trights\t..."; empty for Reserved
}

// Server returns the location up to the first '!', or the whole location;
// it is what partial UPDATE filters on.
func (e Entry) Server() string {
	s, _, _ := strings.Cut(e.Location, "!")
	return s
}

// Change is one committed change to the list.
type Change struct {
	Seq  uint64 // assigned by Commit
	Name string
	Old  *Entry // state before (nil: did not exist)
	New  *Entry // state after (nil: deleted)
}

// Batch is what one Commit writes atomically.
type Batch struct {
	Changes []Change
	// Meta holds small key/values written in the same batch (replica
	// bookkeeping); an empty value deletes the key.
	Meta map[string]string
}

// Options configures Open.
type Options struct {
	Logger *slog.Logger // nil discards
	// LogRetain is how many change-log records to keep at least;
	// 0 means 1_000_000.
	LogRetain uint64
	// OnFault is told when the store fails or its disk fills or frees up
	// (see package fault); it must not block.
	OnFault func(fault.State, error)
}

// Errors of a store whose disk failed, shared with the mail store; see
// package fault.
var (
	ErrFailed  = fault.ErrFailed
	ErrNoSpace = fault.ErrNoSpace
)

// memTableSize is Pebble's largest memtable here; twice that is kept free
// (see fault.Config.Reserve) so a flush and a WAL rotation always fit.
const memTableSize = 16 << 20

// closeWait bounds Close: Pebble's own waits for a flush a broken disk
// may never finish.
const closeWait = 5 * time.Second

// ErrTrimmed is returned by ChangesSince when the log no longer reaches back
// to the requested seq; the reader must start over from a full scan.
var ErrTrimmed = errors.New("store: change log trimmed")

// DB is the mailbox list store. Close any Snapshot before closing the DB.
type DB struct {
	pdb    *pebble.DB
	guard  *fault.Guard
	retain uint64
	epoch  string

	// Mirrors of committed state, only stored to by Commit after its batch
	// is durable, so a reader never sees a seq whose log record is missing.
	lastSeq atomic.Uint64
	oldest  atomic.Uint64
	count   atomic.Uint64
	// reserved counts the entries of kind Reserved.
	reserved atomic.Uint64
	// servers counts the entries of each server; replaced, never changed.
	servers atomic.Pointer[map[string]uint64]
	closed  atomic.Bool

	// Commit's scratch buffers; safe because there is one writer.
	kbuf, vbuf []byte
}

// Open opens or creates the store in dir.
func Open(dir string, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	retain := opts.LogRetain
	if retain == 0 {
		retain = 1_000_000
	}

	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	guard, err := fault.New(fault.Config{Name: "store", Dir: dir, Logger: log, Reserve: 2 * memTableSize, OnChange: opts.OnFault})
	if err != nil {
		return nil, err
	}
	po := &pebble.Options{
		// Pebble reserves cache room for its memtables (up to two of
		// MemTableSize here); with the cache no larger than that, no block
		// ever stays cached and every Get of a flushed key reads the file.
		CacheSize: 64 << 20,
		// A dump of a million entries writes ~150 MB (entries and log);
		// larger memtables mean fewer flushes. Pebble starts small and
		// grows up to this.
		MemTableSize:       memTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebblelog.Logger{Log: log, Fatal: func(err error) { _ = guard.Fail(err) }},
		FS:                 guard.FS(vfs.Default),
		// Every Commit syncs, so a slow disk stalls the whole master: the
		// guard logs it, and fails the store on a stalled one.
		EventListener: &pebble.EventListener{},
	}
	guard.Listen(po.EventListener)
	// Pebble watches its disk operations (DiskSlow) only on this.
	po.WithFSDefaults()
	// Point lookups of absent names (RESERVE of a new mailbox) are common;
	// bloom filters let them skip most tables.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	pdb, err := pebble.Open(dir, po)
	if err != nil {
		guard.Close()
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	db := &DB{pdb: pdb, retain: retain, guard: guard}
	if err := db.load(log); err != nil {
		guard.Close()
		return nil, errors.Join(err, pdb.Close())
	}
	return db, nil
}

// load initialises a new store or reads the mirrors of an existing one.
func (db *DB) load(log *slog.Logger) error {
	format, ok, err := db.getUvarint(sysFormat)
	if err != nil {
		return err
	}
	if !ok {
		return db.create()
	}
	if format == 1 {
		if err := db.addIndexes(log); err != nil {
			return err
		}
		format = storeFormat
	}
	if format != storeFormat {
		return fmt.Errorf("store: unsupported store format %d", format)
	}
	v, closer, err := db.pdb.Get(sysEpoch)
	if err != nil {
		return fmt.Errorf("store: read epoch: %w", err)
	}
	if len(v) == 17 && v[0] == record.V1 {
		db.epoch = hex.EncodeToString(v[1:])
	}
	closer.Close()
	if db.epoch == "" {
		return fmt.Errorf("store: corrupt value for key %q", sysEpoch)
	}
	last, _, err := db.getUvarint(sysLastSeq)
	if err != nil {
		return err
	}
	count, _, err := db.getUvarint(sysCount)
	if err != nil {
		return err
	}
	reserved, ok, err := db.getUvarint(sysReserved)
	if err != nil {
		return err
	}
	if !ok && count > 0 {
		// A store from before the key was kept: count once, and keep it.
		if reserved, err = db.countReserved(); err != nil {
			return err
		}
		if err := db.pdb.Set(sysReserved, record.Uvarint(nil, reserved), pebble.Sync); err != nil {
			return fmt.Errorf("store: write reserved count: %w", err)
		}
	}
	oldest, err := db.firstLogSeq(last)
	if err != nil {
		return err
	}
	servers, err := db.readServers()
	if err != nil {
		return err
	}
	db.servers.Store(&servers)
	db.lastSeq.Store(last)
	db.count.Store(count)
	db.reserved.Store(reserved)
	db.oldest.Store(oldest)
	return nil
}

// addIndexes brings a format 1 store up to format 2 by writing the grant
// keys of every entry and the server counts. It writes in batches, so a
// large list is never held in one, and the counts and the new format
// last: an upgrade cut short is done again from the start at the next
// Open.
func (db *DB) addIndexes(log *slog.Logger) error {
	start := time.Now()
	snap := db.Snapshot()
	defer snap.Close()
	pb := db.pdb.NewBatch()
	defer func() { pb.Close() }()
	var n int
	servers := map[string]int64{}
	err := snap.Scan(func(e Entry) error {
		db.regrant(pb, e.Name, nil, &e)
		servers[e.Server()]++
		if n++; pb.Len() < 4<<20 {
			return nil
		}
		if err := pb.Commit(pebble.NoSync); err != nil {
			return err
		}
		pb.Close()
		pb = db.pdb.NewBatch()
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: upgrade to format %d: %w", storeFormat, err)
	}
	db.recount(pb, map[string]uint64{}, servers)
	_ = pb.Set(sysFormat, record.Uvarint(nil, storeFormat), nil)
	if err := pb.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: upgrade to format %d: %w", storeFormat, err)
	}
	log.Info("store: upgraded to format 2: the mailbox list is indexed by ACL identifier and server",
		"entries", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// countReserved scans the list for entries of kind Reserved.
func (db *DB) countReserved() (uint64, error) {
	snap := db.Snapshot()
	defer snap.Close()
	var n uint64
	err := snap.Scan(func(e Entry) error {
		if e.Kind == Reserved {
			n++
		}
		return nil
	})
	return n, err
}

func (db *DB) create() error {
	var epoch [16]byte
	if _, err := rand.Read(epoch[:]); err != nil {
		return fmt.Errorf("store: make epoch: %w", err)
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	_ = b.Set(sysFormat, record.Uvarint(nil, storeFormat), nil)
	_ = b.Set(sysEpoch, append([]byte{record.V1}, epoch[:]...), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("store: create: %w", err)
	}
	db.epoch = hex.EncodeToString(epoch[:])
	db.oldest.Store(1)
	db.servers.Store(&map[string]uint64{})
	return nil
}

// readServers reads the server keys.
func (db *DB) readServers() (map[string]uint64, error) {
	lo, hi := familyBounds(prefixServer)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("store: read server counts: %w", err)
	}
	servers := map[string]uint64{}
	for ok := it.First(); ok && err == nil; ok = it.Next() {
		var n uint64
		if n, err = decodeUvarint(it.Key(), it.Value()); err == nil {
			servers[string(it.Key()[1:])] = n
		}
	}
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: read server counts: %w", cerr)
	}
	return servers, err
}

// firstLogSeq returns the oldest logged seq, or last+1 if the log is empty.
func (db *DB) firstLogSeq(last uint64) (uint64, error) {
	lo, hi := familyBounds(prefixLog)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, fmt.Errorf("store: read log: %w", err)
	}
	oldest := last + 1
	if it.First() && len(it.Key()) == 9 {
		oldest = binary.BigEndian.Uint64(it.Key()[1:])
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("store: read log: %w", err)
	}
	return oldest, nil
}

func (db *DB) getUvarint(key []byte) (uint64, bool, error) {
	v, closer, err := db.pdb.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("store: read %s: %w", key[1:], err)
	}
	defer closer.Close()
	n, err := decodeUvarint(key, v)
	return n, err == nil, err
}

// Close closes the store; every Snapshot must be closed first.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return errors.New("store: already closed")
	}
	// Flushing the memtables now makes the next Open quick: otherwise it
	// replays the write-ahead log first (0.6 s after loading a million
	// entries), which is what a restarted replica waits on. Not on a
	// faulty disk: the flush would wait for ever.
	var flushErr error
	if db.guard.Writable() == nil {
		flushErr = fault.CloseWithin(closeWait, db.pdb.Flush)
	}
	db.guard.Close()
	if err := fault.CloseWithin(closeWait, db.pdb.Close); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	if flushErr != nil {
		return fmt.Errorf("store: flush at close: %w", flushErr)
	}
	return nil
}

// Health is the store's state and, when it failed, why.
func (db *DB) Health() (fault.State, error) { return db.guard.State(), db.guard.Err() }

// Epoch returns the random id (32 hex digits) made when the store was
// created. A reader that resumes by seq checks it to know the seqs are
// from the same history.
func (db *DB) Epoch() string { return db.epoch }

// LastSeq returns the seq of the last committed change (0 if none).
func (db *DB) LastSeq() uint64 { return db.lastSeq.Load() }

// OldestSeq returns the oldest seq still in the log (LastSeq()+1 when the log
// is empty).
func (db *DB) OldestSeq() uint64 { return db.oldest.Load() }

// Count returns the number of entries in the list.
func (db *DB) Count() uint64 { return db.count.Load() }

// Reserved returns the number of entries of kind Reserved in the list.
func (db *DB) Reserved() uint64 { return db.reserved.Load() }

// Get returns the entry named name.
func (db *DB) Get(name string) (Entry, bool, error) {
	return getEntry(db.pdb, name)
}

// getter is what getEntry needs: a *pebble.DB or a *pebble.Snapshot.
type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func getEntry(r getter, name string) (Entry, bool, error) {
	key := entryKey(nil, name)
	v, c, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("store: get %q: %w", name, err)
	}
	defer c.Close()
	e, err := decodeEntry(key, v)
	if err != nil {
		return Entry{}, false, err
	}
	// Another name with the same dbname (see checkName) is not this one.
	if e.Name != name {
		return Entry{}, false, nil
	}
	return e, true, nil
}

// Meta returns the meta value stored under key.
func (db *DB) Meta(key string) (string, bool, error) {
	k := metaKey(nil, key)
	v, c, err := db.pdb.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("store: get meta %q: %w", key, err)
	}
	defer c.Close()
	if len(v) == 0 || v[0] != record.V1 {
		return "", false, fmt.Errorf("store: corrupt value for key %q", k)
	}
	return string(v[1:]), true, nil
}

// Commit writes b atomically and durably (pebble.Sync) and returns the seq
// of its last change (LastSeq() if it has none). It numbers b.Changes in
// place with consecutive seqs from LastSeq()+1, and sets each Old to the
// state actually stored before that change (earlier changes of the same
// batch included), so the log, Count and Reserved never rest on the
// caller's view. Each change's New is written, or its entry deleted when New
// is nil; New.Name must equal the change's Name. On error nothing is written
// and the seqs and Olds set in b mean nothing.
//
// Commit must not be called concurrently with itself (one writer); readers
// may run at any time and see either none or all of the batch.
func (db *DB) Commit(b *Batch) (seq uint64, err error) {
	last := db.lastSeq.Load()
	if len(b.Changes) == 0 && len(b.Meta) == 0 {
		return last, nil
	}
	if err := db.guard.Writable(); err != nil {
		return last, err
	}
	defer db.guard.Recover(&err)
	for i := range b.Changes {
		c := &b.Changes[i]
		if err := checkName(c.Name); err != nil {
			return last, err
		}
		if n := c.New; n != nil && (n.Name != c.Name || (n.Kind != Active && n.Kind != Reserved)) {
			return last, fmt.Errorf("store: change of %q: bad new entry %q of kind %v", c.Name, n.Name, n.Kind)
		}
	}

	// Batch writes fail only in an indexed batch's index; this one has
	// none, so their errors are ignored below.
	pb := db.pdb.NewBatch()
	defer pb.Close()
	count, reserved := db.count.Load(), db.reserved.Load()
	seq = last
	// State of names already changed in this batch, which db.Get cannot see.
	var pending map[string]*Entry
	if len(b.Changes) > 1 {
		pending = make(map[string]*Entry, len(b.Changes))
	}
	var perServer map[string]int64
	for i := range b.Changes {
		c := &b.Changes[i]
		old, ok := pending[c.Name]
		if !ok {
			e, found, err := db.Get(c.Name)
			if err != nil {
				return last, err
			}
			if found {
				old = &e
			}
		}
		seq++
		c.Seq, c.Old = seq, old
		db.kbuf = entryKey(db.kbuf[:0], c.Name)
		switch {
		case c.New != nil:
			db.vbuf = encodeEntry(db.vbuf[:0], c.New)
			_ = pb.Set(db.kbuf, db.vbuf, nil)
			if old == nil {
				count++
			}
		case old != nil:
			_ = pb.Delete(db.kbuf, nil)
			count--
		}
		db.regrant(pb, c.Name, old, c.New)
		if old != nil || c.New != nil {
			if perServer == nil {
				perServer = map[string]int64{}
			}
			if old != nil {
				perServer[old.Server()]--
			}
			if c.New != nil {
				perServer[c.New.Server()]++
			}
		}
		if old != nil && old.Kind == Reserved {
			reserved--
		}
		if c.New != nil && c.New.Kind == Reserved {
			reserved++
		}
		if pending != nil {
			pending[c.Name] = c.New
		}
		db.kbuf = logKey(db.kbuf[:0], seq)
		db.vbuf = encodeChange(db.vbuf[:0], c)
		_ = pb.Set(db.kbuf, db.vbuf, nil)
	}
	for k, v := range b.Meta {
		db.kbuf = metaKey(db.kbuf[:0], k)
		if v == "" {
			_ = pb.Delete(db.kbuf, nil)
			continue
		}
		db.vbuf = append(append(db.vbuf[:0], record.V1), v...)
		_ = pb.Set(db.kbuf, db.vbuf, nil)
	}

	servers := db.servers.Load()
	if perServer != nil {
		servers = db.recount(pb, *servers, perServer)
	}

	oldest := db.oldest.Load()
	if seq > last {
		_ = pb.Set(sysLastSeq, record.Uvarint(db.vbuf[:0], seq), nil)
		if count != db.count.Load() {
			_ = pb.Set(sysCount, record.Uvarint(db.vbuf[:0], count), nil)
		}
		if reserved != db.reserved.Load() {
			_ = pb.Set(sysReserved, record.Uvarint(db.vbuf[:0], reserved), nil)
		}
		// Trim in rare large steps: one range tombstone per LogRetain/4
		// commits rather than one per commit.
		if seq-oldest+1 > db.retain+db.retain/4 {
			keep := seq - db.retain + 1
			_ = pb.DeleteRange(logKey(nil, oldest), logKey(nil, keep), nil)
			oldest = keep
		}
	}
	if err := db.guard.Done(pb.Commit(pebble.Sync)); err != nil {
		return last, fmt.Errorf("store: commit: %w", err)
	}
	db.count.Store(count)
	db.reserved.Store(reserved)
	db.servers.Store(servers)
	db.oldest.Store(oldest)
	db.lastSeq.Store(seq)
	return seq, nil
}

// recount writes the server counts cur changed by delta to pb and
// returns them, a new map; a count that reaches 0 is deleted.
func (db *DB) recount(pb *pebble.Batch, cur map[string]uint64, delta map[string]int64) *map[string]uint64 {
	next := maps.Clone(cur)
	for sv, d := range delta {
		if d == 0 {
			continue
		}
		n := uint64(int64(next[sv]) + d)
		db.kbuf = serverKey(db.kbuf[:0], sv)
		if n == 0 {
			delete(next, sv)
			_ = pb.Delete(db.kbuf, nil)
			continue
		}
		next[sv] = n
		_ = pb.Set(db.kbuf, record.Uvarint(db.vbuf[:0], n), nil)
	}
	return &next
}

// ServerCounts returns how many entries name each server (a location up
// to its '!'), as of the last commit; the map is the caller's.
func (db *DB) ServerCounts() map[string]uint64 {
	return maps.Clone(*db.servers.Load())
}

// regrant replaces the grant keys of name's old entry with its new one's;
// the deletes come first, so an identifier in both keeps its key.
func (db *DB) regrant(pb *pebble.Batch, name string, old, new *Entry) {
	if old != nil && new != nil && old.ACL == new.ACL {
		return
	}
	if old != nil {
		grantees(old.ACL, func(id string) {
			db.kbuf = grantKey(db.kbuf[:0], id, name)
			_ = pb.Delete(db.kbuf, nil)
		})
	}
	if new != nil {
		grantees(new.ACL, func(id string) {
			db.kbuf = grantKey(db.kbuf[:0], id, name)
			_ = pb.Set(db.kbuf, nil, nil)
		})
	}
}

// ChangesSince calls fn for each logged change with Seq > after, in order, at
// most limit of them (limit <= 0: no limit), and returns the last seq delivered
// (after if none). If the log no longer holds after+1 it returns ErrTrimmed
// without calling fn. An error from fn stops the walk and is returned as is.
// The changes come from one consistent view of the log.
func (db *DB) ChangesSince(after uint64, limit int, fn func(Change) error) (uint64, error) {
	if after == math.MaxUint64 {
		return after, nil
	}
	_, hi := familyBounds(prefixLog)
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: logKey(nil, after+1), UpperBound: hi})
	if err != nil {
		return after, fmt.Errorf("store: read log: %w", err)
	}
	last, err := walkLog(it, after, limit, fn)
	if cerr := it.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: read log: %w", cerr)
	}
	return last, err
}

func walkLog(it *pebble.Iterator, after uint64, limit int, fn func(Change) error) (uint64, error) {
	last := after
	for ok := it.First(); ok && (limit <= 0 || last-after < uint64(limit)); ok = it.Next() {
		key := it.Key()
		if len(key) != 9 {
			return last, fmt.Errorf("store: corrupt log key %q", key)
		}
		seq := binary.BigEndian.Uint64(key[1:])
		if seq != last+1 {
			if last == after {
				return last, ErrTrimmed
			}
			return last, fmt.Errorf("store: change log gap between %d and %d", last, seq)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return last, fmt.Errorf("store: read log: %w", err)
		}
		c, err := decodeChange(seq, key, v)
		if err != nil {
			return last, err
		}
		if err := fn(c); err != nil {
			return last, err
		}
		last = seq
	}
	return last, nil
}
