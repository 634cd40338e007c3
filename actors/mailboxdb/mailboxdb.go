// Package mailboxdb is the mailbox-db actor: the single writer of a node's
// mailbox list. It applies changes in group commits (one synced Pebble
// batch for every request that arrived while the previous batch was being
// written) and tells watchers when new changes are durable.
package mailboxdb

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/store"
)

// Update asks mailbox-db to change one entry atomically with respect to all
// other updates. Sent by mupdate-master (and mupdate-slave); the reply is
// *UpdateReply, sent once the change is durable or refused.
type Update struct {
	Name string
	// Decide computes the new state of Name from its current state (nil
	// when there is none, including changes not yet durable). It returns
	// the new entry, nil to delete, or an error to refuse the change. It
	// runs inside the actor: it must be quick and must not block.
	Decide func(cur *store.Entry) (*store.Entry, error)
}

// UpdateReply answers Update.
type UpdateReply struct {
	// Seq is the change's sequence number in the store's log.
	Seq uint64
	// Err is Decide's refusal or a storage failure.
	Err error
}

// Apply writes changes as they are, with Meta, in one durable batch: each
// change's New is stored (nil deletes) whatever the current state. Sent by
// mupdate-slave, which copies a master's decisions instead of making its
// own; the reply is *UpdateReply with the seq of the last change.
type Apply struct {
	Changes []store.Change
	Meta    map[string]string
}

// Watch registers a function that is called, from the actor, every time a
// batch of changes becomes durable. Notify must not block (a watcher
// typically does a non-blocking send on a channel of size 1). Sent by
// listeners serving UPDATE streams; the reply is *WatchReply.
type Watch struct {
	Notify func(lastSeq uint64)
}

// WatchReply answers Watch with the handle to pass to Unwatch.
type WatchReply struct {
	ID uint64
}

// Unwatch removes a watcher registered with Watch. No reply.
type Unwatch struct {
	ID uint64
}

// Config is what the actor needs.
type Config struct {
	Store  *store.DB
	Logger *slog.Logger
}

// Props makes the actor's props.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &db{
			cfg:      cfg,
			overlay:  make(map[string]overlayEntry),
			watchers: make(map[uint64]func(uint64)),
		}
	})
}

// committed is sent by the committer goroutine back to the actor.
type committed struct {
	reqs []pending
	gen  uint64
	seq  uint64
	err  error
}

// pending is one request's share of a batch.
type pending struct {
	changes []store.Change
	meta    map[string]string
	reply   *actor.PID
}

// overlayEntry is a decided but not yet durable state of a name; gen says
// which commit generation wrote it, so a later commit's entries survive the
// clean-up of an earlier one.
type overlayEntry struct {
	entry *store.Entry
	gen   uint64
}

type db struct {
	cfg      Config
	overlay  map[string]overlayEntry
	queue    []pending
	gen      uint64 // generation of the batch being filled
	inflight bool
	wg       sync.WaitGroup
	watchers map[uint64]func(uint64)
	nextID   uint64
}

func (a *db) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Update:
		a.update(ctx, m)
	case *Apply:
		a.apply(ctx, m)
	case *committed:
		a.committed(ctx, m)
	case *Watch:
		a.nextID++
		a.watchers[a.nextID] = m.Notify
		ctx.Respond(&WatchReply{ID: a.nextID})
	case *Unwatch:
		delete(a.watchers, m.ID)
	case *actor.Stopping:
		// The store must not be closed under a running commit.
		a.wg.Wait()
	}
}

func (a *db) update(ctx actor.Context, m *Update) {
	var cur *store.Entry
	if o, ok := a.overlay[m.Name]; ok {
		cur = o.entry
	} else {
		e, found, err := a.cfg.Store.Get(m.Name)
		if err != nil {
			ctx.Respond(&UpdateReply{Err: err})
			return
		}
		if found {
			cur = &e
		}
	}
	next, err := m.Decide(cur)
	if err != nil {
		ctx.Respond(&UpdateReply{Err: err})
		return
	}
	if err := store.CheckName(m.Name); err != nil {
		ctx.Respond(&UpdateReply{Err: err})
		return
	}
	if next != nil {
		// A copy: Decide may hand back the current entry, which a commit
		// in flight may still be reading.
		c := *next
		c.Name = m.Name
		next = &c
	}
	a.enqueue(ctx, pending{
		changes: []store.Change{{Name: m.Name, Old: cur, New: next}},
		reply:   ctx.Sender(),
	})
}

func (a *db) apply(ctx actor.Context, m *Apply) {
	changes := make([]store.Change, 0, len(m.Changes))
	for _, c := range m.Changes {
		// One name the list cannot hold must not fail the whole batch
		// (and with it everyone else's writes sharing the commit).
		if err := store.CheckName(c.Name); err != nil {
			a.cfg.Logger.Warn("skipping a mailbox the list cannot hold", "mailbox", c.Name, "err", err)
			continue
		}
		if c.New != nil {
			e := *c.New
			e.Name = c.Name
			c.New = &e
		}
		changes = append(changes, c)
	}
	a.enqueue(ctx, pending{changes: changes, meta: m.Meta, reply: ctx.Sender()})
}

func (a *db) enqueue(ctx actor.Context, p pending) {
	for _, c := range p.changes {
		a.overlay[c.Name] = overlayEntry{entry: c.New, gen: a.gen}
	}
	a.queue = append(a.queue, p)
	if !a.inflight {
		a.flush(ctx)
	}
}

// flush hands everything queued to a committer goroutine; requests that
// arrive meanwhile form the next batch.
func (a *db) flush(ctx actor.Context) {
	reqs := a.queue
	a.queue = nil
	gen := a.gen
	a.gen++
	a.inflight = true
	self := ctx.Self()
	root := ctx.ActorSystem().Root
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		b := &store.Batch{}
		for _, r := range reqs {
			b.Changes = append(b.Changes, r.changes...)
			for k, v := range r.meta {
				if b.Meta == nil {
					b.Meta = make(map[string]string)
				}
				b.Meta[k] = v
			}
		}
		seq, err := a.cfg.Store.Commit(b)
		root.Send(self, &committed{reqs: reqs, gen: gen, seq: seq, err: err})
	}()
}

func (a *db) committed(ctx actor.Context, c *committed) {
	a.inflight = false
	total := 0
	for _, r := range c.reqs {
		total += len(r.changes)
	}
	seq := c.seq - uint64(total) // seq of the change before this batch
	for _, r := range c.reqs {
		for _, ch := range r.changes {
			if o, ok := a.overlay[ch.Name]; ok && o.gen == c.gen {
				delete(a.overlay, ch.Name)
			}
		}
		seq += uint64(len(r.changes))
		if r.reply == nil {
			continue
		}
		if c.err != nil {
			ctx.Send(r.reply, &UpdateReply{Err: c.err})
		} else {
			ctx.Send(r.reply, &UpdateReply{Seq: seq})
		}
	}
	if c.err != nil {
		// Everything queued since was decided against states that never
		// became durable: refuse it too rather than build on them. A disk
		// fault was logged once by the store, and is not again for each
		// commit it refuses.
		if !errors.Is(c.err, store.ErrFailed) && !errors.Is(c.err, store.ErrNoSpace) {
			a.cfg.Logger.Error("mailbox list commit failed", "err", c.err, "changes", total)
		}
		for _, r := range a.queue {
			if r.reply != nil {
				ctx.Send(r.reply, &UpdateReply{Err: c.err})
			}
		}
		a.queue = nil
		clear(a.overlay)
		return
	}
	for _, notify := range a.watchers {
		notify(c.seq)
	}
	if len(a.queue) > 0 {
		a.flush(ctx)
	}
}
