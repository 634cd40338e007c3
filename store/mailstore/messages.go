package mailstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/rookery/rookery/internal/record"
)

// Staged is a body written to the store but not yet part of a message.
// Append takes it; otherwise Discard must be called.
type Staged struct {
	s          *Store
	id         uint64
	size       int64
	headerSize int64
	small      []byte // the whole body when it fits one chunk; else nil
	summary    []byte
	pending    bool // chunks and a 'p' marker are in the store
	used       bool
}

// Size is the body's length in bytes.
func (st *Staged) Size() int64 { return st.size }

// Stage reads a body to its end and writes it to the store in chunks,
// without waiting for the disk (Append's sync covers it). Over limit
// bytes (limit > 0) it stops with ErrTooBig having read limit+1 bytes;
// the caller drains the rest if it must.
func (s *Store) Stage(ctx context.Context, r io.Reader, limit int64) (st *Staged, err error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := s.guard.Writable(); err != nil {
		return nil, err
	}
	defer s.guard.Recover(&err)
	st = &Staged{s: s, id: s.lastBody.Add(1)}
	hs := headerScan{atLineStart: true}
	buf := make([]byte, chunkSize)
	var batch *pebble.Batch
	defer func() {
		if batch != nil {
			batch.Close()
		}
	}()
	var chunk uint32
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			hs.scan(buf[:n], st.size)
			st.size += int64(n)
			if limit > 0 && st.size > limit {
				return nil, errors.Join(fmt.Errorf("%w: over %d bytes", ErrTooBig, limit), st.Discard())
			}
		}
		last := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !last {
			return nil, errors.Join(fmt.Errorf("mailstore: read body: %w", err), st.Discard())
		}
		if last && chunk == 0 {
			st.small = slices.Clone(buf[:n])
			break
		}
		if n > 0 {
			if batch == nil {
				batch = s.pdb.NewBatch()
				if !st.pending {
					_ = batch.Set(pendingKey(st.id), nil, nil)
					st.pending = true
				}
			}
			_ = batch.Set(chunkKey(st.id, chunk), buf[:n], nil)
			chunk++
		}
		if batch != nil && (last || batch.Len() >= stageBatch) {
			// A large body may fill the disk on its way in.
			if err := s.guard.Writable(); err != nil {
				return nil, errors.Join(err, st.Discard())
			}
			if err := s.guard.Done(batch.Commit(pebble.NoSync)); err != nil {
				return nil, errors.Join(fmt.Errorf("mailstore: stage body: %w", err), st.Discard())
			}
			batch.Close()
			batch = nil
		}
		if last {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, errors.Join(err, st.Discard())
		}
	}
	st.headerSize = hs.end
	if !hs.found {
		st.headerSize = st.size
	}
	if s.summarize != nil {
		sum, err := s.summarizeSafely(st)
		if err != nil {
			s.log.Warn("mailstore: no summary for a new message", "err", err)
		} else {
			st.summary = sum
		}
	}
	return st, nil
}

// summarizeSafely runs the summarizer on a staged body; a message is never
// refused for its summary, not even when the parser panics on it.
func (s *Store) summarizeSafely(st *Staged) (sum []byte, err error) {
	r := st.reader()
	defer func() {
		if b, ok := r.(*Body); ok {
			b.Close()
		}
		if v := recover(); v != nil {
			sum, err = nil, fmt.Errorf("mailstore: summarizer panicked: %v", v)
		}
	}()
	return s.summarize(r)
}

func (st *Staged) reader() io.Reader {
	if !st.pending {
		return bytes.NewReader(st.small)
	}
	return &Body{r: st.s.pdb, id: st.id, size: st.size}
}

// Discard removes a staged body that will not be appended; it is a no-op
// after a successful Append.
func (st *Staged) Discard() (err error) {
	if st.used || !st.pending {
		return nil
	}
	st.used = true
	// Left in the store, the body is dropped at the next open.
	if err := st.s.guard.Writable(); err != nil {
		return err
	}
	defer st.s.guard.Recover(&err)
	b := st.s.pdb.NewBatch()
	defer b.Close()
	lo, hi := chunkBounds(st.id)
	_ = b.DeleteRange(lo, hi, nil)
	_ = b.Delete(pendingKey(st.id), nil)
	if err := st.s.guard.Done(b.Commit(pebble.NoSync)); err != nil {
		return fmt.Errorf("mailstore: discard body: %w", err)
	}
	return nil
}

// headerScan finds the end of the header: the first empty line.
type headerScan struct {
	atLineStart bool
	cr          bool // a CR at a line start was just seen
	found       bool
	end         int64
}

func (h *headerScan) scan(p []byte, base int64) {
	for i := 0; i < len(p) && !h.found; i++ {
		c := p[i]
		switch {
		case c == '\n' && (h.atLineStart || h.cr):
			h.found, h.end = true, base+int64(i)+1
		case c == '\r' && h.atLineStart:
			h.cr, h.atLineStart = true, false
		default:
			h.cr = false
			h.atLineStart = c == '\n'
		}
	}
}

// NewMessage is one message for Append.
type NewMessage struct {
	Flags        []string
	InternalDate time.Time
	Body         *Staged
}

// AppendResult says where Append put the messages.
type AppendResult struct {
	MailboxID   uint64
	UIDValidity uint32
	UIDs        []uint32 // in the order of the messages given
}

// Append adds messages to the end of a mailbox in one atomic, durable
// write (MULTIAPPEND is all or nothing). On error the staged bodies are
// left to the caller to Discard.
func (s *Store) Append(mailbox string, msgs []NewMessage) (AppendResult, error) {
	var res AppendResult
	for _, nm := range msgs {
		if nm.Body == nil || nm.Body.used {
			return res, errors.New("mailstore: append of a body that is not staged")
		}
	}
	err := s.write(func(t *txn) error {
		m, err := s.mustMailbox(mailbox)
		if err != nil {
			return err
		}
		var total int64
		for _, nm := range msgs {
			total += nm.Body.size
		}
		if err := t.checkQuota(mailbox, total); err != nil {
			return err
		}
		if uint64(m.UIDNext)+uint64(len(msgs)) > uint64(^uint32(0)) {
			return fmt.Errorf("mailstore: %q has run out of UIDs", mailbox)
		}
		if err := t.addUsage(mailbox, total); err != nil {
			return err
		}
		m.HighestModSeq++
		now := time.Now().UTC().Truncate(time.Second)
		res = AppendResult{MailboxID: m.ID, UIDValidity: m.UIDValidity, UIDs: make([]uint32, len(msgs))}
		for i, nm := range msgs {
			st := nm.Body
			msg := Message{
				UID: m.UIDNext, ModSeq: m.HighestModSeq, InternalDate: nm.InternalDate,
				Size: st.size, HeaderSize: st.headerSize, Flags: nm.Flags, body: st.id, SaveDate: now,
			}
			if msg.InternalDate.IsZero() {
				msg.InternalDate = time.Now()
			}
			res.UIDs[i] = m.UIDNext
			m.UIDNext++
			m.Exists++
			m.Size += st.size
			m.Keywords = mergeKeywords(m.Keywords, nm.Flags)
			t.set(bodyKey(st.id), encodeBody(&bodyRecord{refs: 1, size: st.size, headerSize: st.headerSize, summary: st.summary}))
			if st.pending {
				t.del(pendingKey(st.id))
			} else {
				t.set(chunkKey(st.id, 0), st.small)
			}
			t.set(messageKey(m.ID, msg.UID), encodeMessage(&msg))
			t.setChange(m.ID, &msg)
		}
		t.set(sysBody, record.Uvarint(nil, s.lastBody.Load()))
		t.set(mailboxKey(mailbox), encodeMailbox(&m))
		t.notify = append(t.notify, m.ID)
		return nil
	})
	if err == nil {
		for _, nm := range msgs {
			nm.Body.used = true
		}
	}
	return res, err
}

// FlagOp says how SetFlags combines the given flags with a message's.
type FlagOp int

// Flag operations, as STORE's FLAGS, +FLAGS and -FLAGS.
const (
	FlagsReplace FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// FlagsResult is SetFlags's outcome.
type FlagsResult struct {
	// Messages holds every message found, with its flags after the change
	// (changed or not), in the order of the uids given.
	Messages []Message
	// Failed holds messages left alone because their modseq was above
	// unchangedSince (CONDSTORE's MODIFIED).
	Failed []uint32
	// Changed is true if any message was written.
	Changed bool
	// ModSeq is the mailbox's modseq after the change (when Changed).
	ModSeq uint64
}

// SetFlags changes the flags of messages of mailbox id. Flags are compared
// exactly; callers canonicalise case. unchangedSince > 0 skips messages
// whose modseq is above it. UIDs that do not exist are ignored.
func (s *Store) SetFlags(id uint64, uids []uint32, op FlagOp, flags []string, unchangedSince uint64) (FlagsResult, error) {
	var res FlagsResult
	err := s.write(func(t *txn) error {
		res = FlagsResult{}
		m, err := s.mustMailboxByID(id)
		if err != nil {
			return err
		}
		modseq := m.HighestModSeq + 1
		for _, uid := range uids {
			msg, ok, err := s.Message(id, uid)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if unchangedSince > 0 && msg.ModSeq > unchangedSince {
				res.Failed = append(res.Failed, uid)
				continue
			}
			nf := applyFlags(msg.Flags, op, flags)
			if !sameSet(nf, msg.Flags) {
				t.del(changeKey(id, msg.ModSeq, uid))
				msg.Flags = nf
				msg.ModSeq = modseq
				res.Changed = true
				t.set(messageKey(id, uid), encodeMessage(&msg))
				t.setChange(id, &msg)
			}
			res.Messages = append(res.Messages, msg)
		}
		if res.Changed {
			m.HighestModSeq = modseq
			res.ModSeq = modseq
			m.Keywords = mergeKeywords(m.Keywords, flags)
			t.set(mailboxKey(m.Name), encodeMailbox(&m))
			t.notify = append(t.notify, id)
		}
		return nil
	})
	return res, err
}

func applyFlags(have []string, op FlagOp, flags []string) []string {
	var out []string
	switch op {
	case FlagsReplace:
		for _, f := range flags {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	case FlagsAdd:
		out = slices.Clone(have)
		for _, f := range flags {
			if !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	case FlagsRemove:
		for _, f := range have {
			if !slices.Contains(flags, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, f := range a {
		if !slices.Contains(b, f) {
			return false
		}
	}
	return true
}

// Expunge removes messages of mailbox id and returns the UIDs removed, in
// ascending order; UIDs that do not exist are ignored.
func (s *Store) Expunge(id uint64, uids []uint32) ([]uint32, error) {
	var done []uint32
	err := s.write(func(t *txn) error {
		done = nil
		m, err := s.mustMailboxByID(id)
		if err != nil {
			return err
		}
		msgs, err := s.collect(id, uids)
		if err != nil || len(msgs) == 0 {
			return err
		}
		t.expunge(&m, msgs)
		for _, msg := range msgs {
			done = append(done, msg.UID)
		}
		return t.commitMailbox(&m)
	})
	return done, err
}

// collect reads the messages with the given uids, in UID order.
func (s *Store) collect(id uint64, uids []uint32) ([]Message, error) {
	sorted := slices.Clone(uids)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	var msgs []Message
	for _, uid := range sorted {
		msg, ok, err := s.Message(id, uid)
		if err != nil {
			return nil, err
		}
		if ok {
			msgs = append(msgs, msg)
		}
	}
	return msgs, nil
}

// expunge deletes msgs (of m, loaded) from m at a new modseq, adjusting
// m's counters; the caller writes m back with commitMailbox. While a
// session has m selected, each message leaves a held record that keeps
// its body (see Pin); else its body reference is dropped now.
func (t *txn) expunge(m *Mailbox, msgs []Message) {
	m.HighestModSeq++
	hold := t.s.pinned(m.ID)
	var size int64
	for i := range msgs {
		msg := &msgs[i]
		size += msg.Size
		t.del(messageKey(m.ID, msg.UID))
		t.del(changeKey(m.ID, msg.ModSeq, msg.UID))
		t.set(changeKey(m.ID, m.HighestModSeq, msg.UID), []byte{changeExpunged})
		if hold {
			t.set(heldKey(m.ID, msg.UID), encodeHeld(m.HighestModSeq, msg))
			if low, ok := t.s.heldLow[m.ID]; ok && msg.UID < low {
				t.s.heldLow[m.ID] = msg.UID // see Store.heldLow
			}
		} else {
			t.bodiesToDrop = append(t.bodiesToDrop, *msg)
		}
	}
	if hold {
		t.addHeld(m.ID, len(msgs))
	}
	m.Exists -= uint32(len(msgs))
	m.Size -= size
	t.usageDelta -= size
}

// setChange indexes msg at its modseq.
func (t *txn) setChange(id uint64, msg *Message) {
	t.set(changeKey(id, msg.ModSeq, msg.UID), []byte{changeLive})
}

// setHeldLow has Store.heldLow[id] set to uid (0: dropped) once t commits.
func (t *txn) setHeldLow(id uint64, uid uint32) {
	if t.heldLow == nil {
		t.heldLow = make(map[uint64]uint32)
	}
	t.heldLow[id] = uid
}

// settleHeldLow applies setHeldLow; the caller holds the write lock and
// t has committed.
func (t *txn) settleHeldLow() {
	for id, uid := range t.heldLow {
		if uid == 0 {
			delete(t.s.heldLow, id)
		} else {
			t.s.heldLow[id] = uid
		}
	}
}

func (t *txn) addHeld(id uint64, n int) {
	if n == 0 {
		return
	}
	if t.held == nil {
		t.held = make(map[uint64]int)
	}
	t.held[id] += n
}

// commitMailbox finishes a change to m: body references dropped, usage
// adjusted, record written, watchers woken.
func (t *txn) commitMailbox(m *Mailbox) error {
	if err := t.loadBodies(t.bodiesToDrop); err != nil {
		return err
	}
	if err := t.addUsage(m.Name, t.usageDelta); err != nil {
		return err
	}
	for _, msg := range t.bodiesToDrop {
		t.unref(msg.body)
	}
	t.set(mailboxKey(m.Name), encodeMailbox(m))
	t.notify = append(t.notify, m.ID)
	return nil
}

// CopyResult says where Copy or Move put the messages.
type CopyResult struct {
	Dest        Mailbox // the destination after the copy
	UIDValidity uint32
	SourceUIDs  []uint32 // ascending; only those that existed
	DestUIDs    []uint32 // DestUIDs[i] is the copy of SourceUIDs[i]
}

// Copy copies messages of mailbox id into mailbox dest, sharing bodies.
func (s *Store) Copy(id uint64, uids []uint32, dest string) (CopyResult, error) {
	return s.copyMove(id, uids, dest, false)
}

// Move moves messages of mailbox id into mailbox dest in one atomic write.
func (s *Store) Move(id uint64, uids []uint32, dest string) (CopyResult, error) {
	return s.copyMove(id, uids, dest, true)
}

func (s *Store) copyMove(id uint64, uids []uint32, dest string, move bool) (CopyResult, error) {
	var res CopyResult
	err := s.write(func(t *txn) error {
		res = CopyResult{}
		src, err := s.mustMailboxByID(id)
		if err != nil {
			return err
		}
		dst, err := s.mustMailbox(dest)
		if err != nil {
			return err
		}
		msgs, err := s.collect(id, uids)
		if err != nil || len(msgs) == 0 {
			res.Dest, res.UIDValidity = dst, dst.UIDValidity
			return err
		}
		var total int64
		for _, msg := range msgs {
			total += msg.Size
		}
		// A move within one quota root changes no usage.
		sameRoot := false
		if move {
			sr, err := s.quotaRoot(src.Name)
			if err != nil {
				return err
			}
			dr, err := s.quotaRoot(dest)
			if err != nil {
				return err
			}
			sameRoot = sr.root == dr.root
		}
		if !sameRoot {
			if err := t.checkQuota(dest, total); err != nil {
				return err
			}
		}
		if err := t.loadBodies(msgs); err != nil {
			return err
		}
		if err := t.addUsage(dest, total); err != nil {
			return err
		}
		dst.HighestModSeq++
		now := time.Now().UTC().Truncate(time.Second)
		for _, msg := range msgs {
			t.ref(msg.body)
			res.SourceUIDs = append(res.SourceUIDs, msg.UID)
			res.DestUIDs = append(res.DestUIDs, dst.UIDNext)
			c := msg
			c.UID, c.ModSeq, c.SaveDate = dst.UIDNext, dst.HighestModSeq, now
			dst.UIDNext++
			dst.Exists++
			dst.Size += c.Size
			dst.Keywords = mergeKeywords(dst.Keywords, c.Flags)
			t.set(messageKey(dst.ID, c.UID), encodeMessage(&c))
			t.setChange(dst.ID, &c)
		}
		t.set(mailboxKey(dst.Name), encodeMailbox(&dst))
		t.notify = append(t.notify, dst.ID)
		res.Dest, res.UIDValidity = dst, dst.UIDValidity
		if !move {
			return nil
		}
		if dst.ID == src.ID {
			// A move within one mailbox (new UIDs, as Cyrus and Dovecot
			// give): src is a stale copy of dst's record.
			t.expunge(&dst, msgs)
			err := t.commitMailbox(&dst)
			res.Dest = dst
			return err
		}
		t.expunge(&src, msgs)
		return t.commitMailbox(&src)
	})
	return res, err
}

// Body reads a message body from its chunks. It holds a consistent view
// of the store until Close.
type Body struct {
	r    pebble.Reader
	id   uint64
	size int64
	off  int64
	it   *pebble.Iterator
	cur  []byte // rest of the current chunk
	err  error
	// whole is a one-chunk body, read with one Get (most mail is
	// smaller than a chunk, and an iterator costs more than the read),
	// valid until closer is closed.
	whole  []byte
	closer io.Closer
}

// OpenBody returns a reader of m's body; Close it when done.
func (s *Store) OpenBody(m *Message) *Body {
	return &Body{r: s.pdb, id: m.body, size: m.Size}
}

// Size is the body's length.
func (b *Body) Size() int64 { return b.size }

// Seek moves to an absolute offset (whence io.SeekStart only).
func (b *Body) Seek(offset int64, whence int) (int64, error) {
	if whence != io.SeekStart || offset < 0 {
		return b.off, errors.New("mailstore: unsupported seek")
	}
	b.off = min(offset, b.size)
	b.cur = nil
	switch {
	case b.whole != nil:
		b.cur = b.whole[b.off:]
	case b.it != nil:
		b.err = b.position()
	}
	return b.off, b.err
}

// position puts the iterator on the chunk holding b.off.
func (b *Body) position() error {
	if b.off >= b.size {
		b.cur = nil
		return nil
	}
	n := uint32(b.off / chunkSize)
	if !b.it.SeekGE(chunkKey(b.id, n)) {
		return b.missing()
	}
	return b.load(int(b.off % chunkSize))
}

func (b *Body) load(skip int) error {
	v, err := b.it.ValueAndErr()
	if err != nil {
		return fmt.Errorf("mailstore: read body: %w", err)
	}
	if skip > len(v) {
		return b.missing()
	}
	b.cur = v[skip:]
	return nil
}

func (b *Body) missing() error {
	if err := b.it.Error(); err != nil {
		return fmt.Errorf("mailstore: read body: %w", err)
	}
	return fmt.Errorf("mailstore: body %d is shorter than its size %d", b.id, b.size)
}

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.off >= b.size {
		return 0, io.EOF
	}
	if b.it == nil && b.whole == nil && b.size <= chunkSize {
		v, c, err := b.r.Get(chunkKey(b.id, 0))
		switch {
		case errors.Is(err, pebble.ErrNotFound):
			b.err = fmt.Errorf("mailstore: body %d is missing", b.id)
			return 0, b.err
		case err != nil:
			b.err = fmt.Errorf("mailstore: read body: %w", err)
			return 0, b.err
		case int64(len(v)) < b.size:
			c.Close()
			b.err = fmt.Errorf("mailstore: body %d is shorter than its size %d", b.id, b.size)
			return 0, b.err
		}
		b.whole, b.closer = v[:b.size], c
		b.cur = b.whole[b.off:]
	}
	if b.it == nil && b.whole == nil {
		lo, hi := chunkBounds(b.id)
		it, err := b.r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			b.err = fmt.Errorf("mailstore: read body: %w", err)
			return 0, b.err
		}
		b.it = it
		if b.err = b.position(); b.err != nil {
			return 0, b.err
		}
	}
	if len(b.cur) == 0 && b.whole == nil {
		if !b.it.Next() {
			b.err = b.missing()
			return 0, b.err
		}
		if b.err = b.load(0); b.err != nil {
			return 0, b.err
		}
	}
	n := copy(p, b.cur)
	if rest := b.size - b.off; int64(n) > rest {
		n = int(rest)
	}
	b.cur = b.cur[n:]
	b.off += int64(n)
	return n, nil
}

// Close releases the reader's view of the store.
func (b *Body) Close() error {
	if b.closer != nil {
		err := b.closer.Close()
		b.closer, b.whole, b.cur = nil, nil, nil
		b.err = errors.New("mailstore: body closed")
		return err
	}
	if b.it == nil {
		return nil
	}
	err := b.it.Close()
	b.it = nil
	b.err = errors.New("mailstore: body closed")
	return err
}
