// Package slave is the mupdate-slave actor: it keeps the node's mailbox list
// a copy of a master's, Rookery or Cyrus. A connection goroutine talks to
// the master (dump, reconcile, stream, keep-alive, reconnect); the actor
// holds the replica's state and answers status requests.
package slave

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/actors/mailboxdb"
	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/store"
)

// Meta keys the slave keeps in the local store, written in the same batch
// as the changes they describe.
const (
	metaEpoch = "master_epoch" // the Rookery master's store epoch
	metaSeq   = "master_seq"   // the master's last change applied here
)

// GetStatus asks for the replica's state. Sent by the node; reply *Status.
type GetStatus struct{}

// Sync asks the replica to catch up with its master now: it sends a NOOP
// on its stream and answers once the master's OK arrives, when everything
// the master had is applied here (Cyrus frontends kick their slave the
// same way). Sent by frontends after a miss; reply *SyncReply.
type Sync struct{}

// SyncReply answers Sync.
type SyncReply struct{ Err error }

// SetMaster points the replica at another master (found by gossip); the
// current session ends and the replica syncs with the new one. Sent by the
// node; no reply.
type SetMaster struct{ Addr string }

// Status is the replica's state.
type Status struct {
	Master    string
	Connected bool // a session with the master is streaming
	TLS       bool // that session runs over TLS (STARTTLS)
	// Rookery is true when the master offers its change log, so the
	// replica can resume instead of reloading everything.
	Rookery bool
	// AppliedSeq is the master's seq of the last change applied here
	// (Rookery masters only).
	AppliedSeq uint64
	LastSync   time.Time // when the last full resync or resume finished
	LastChange time.Time // when the last streamed change was applied
	FullSyncs  uint64
	Resumes    uint64
	LastError  string
}

// Config is what the actor needs.
type Config struct {
	// Master is the master's host:port; "" waits for SetMaster.
	Master string
	Client mupdate.ClientConfig
	// DB is the mailbox-db actor; Store the list it writes, read here to
	// reconcile.
	DB    *actor.PID
	Store *store.DB
	// RetryDelay is the keep-alive interval; a NOOP unanswered for that
	// long means the master is gone (Cyrus's mupdate_retry_delay).
	RetryDelay time.Duration
	// MaxBackoff caps the wait between reconnection attempts.
	MaxBackoff time.Duration
	Logger     *slog.Logger
}

// Props makes the actor's props.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 20 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = cfg.RetryDelay
	}
	return actor.PropsFromProducer(func() actor.Actor { return &slave{cfg: cfg} })
}

// progress is sent by the connection goroutine to the actor.
type progress struct{ update func(*Status) }

type slave struct {
	cfg    Config
	target *mupdate.Target
	kicks  chan *actor.PID
	status Status
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (a *slave) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.status.Master = a.cfg.Master
		if s, ok, _ := a.cfg.Store.Meta(metaSeq); ok {
			a.status.AppliedSeq, _ = strconv.ParseUint(s, 10, 64)
		}
		c, cancel := context.WithCancel(context.Background())
		a.cancel = cancel
		a.target = mupdate.NewTarget(a.cfg.Master)
		a.kicks = make(chan *actor.PID, 64)
		l := &link{cfg: a.cfg, target: a.target, kicks: a.kicks, root: ctx.ActorSystem().Root, self: ctx.Self(), log: a.cfg.Logger}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			l.run(c)
		}()
	case *SetMaster:
		if m.Addr != a.target.Addr() {
			a.cfg.Logger.Info("replica switching master", "from", a.target.Addr(), "to", m.Addr)
			a.status.Master = m.Addr
			a.target.Set(m.Addr)
		}
	case *Sync:
		if !a.status.Connected {
			ctx.Respond(&SyncReply{Err: errors.New("slave: not connected to the master")})
			return
		}
		select {
		case a.kicks <- ctx.Sender():
		default:
			ctx.Respond(&SyncReply{Err: errors.New("slave: too many syncs waiting")})
		}
	case *progress:
		m.update(&a.status)
	case *GetStatus:
		s := a.status
		ctx.Respond(&s)
	case *actor.Stopping:
		a.cancel()
		a.wg.Wait()
	}
}

// link is the connection goroutine's state.
type link struct {
	cfg    Config
	target *mupdate.Target
	kicks  chan *actor.PID
	root   *actor.RootContext
	self   *actor.PID
	log    *slog.Logger
}

func (l *link) report(f func(*Status)) { l.root.Send(l.self, &progress{update: f}) }

// run keeps a session with the master going until ctx ends, reconnecting
// with capped exponential backoff and jitter.
func (l *link) run(ctx context.Context) {
	const minBackoff = 100 * time.Millisecond
	backoff := minBackoff
	for ctx.Err() == nil {
		addr := l.target.Addr()
		if addr == "" {
			select {
			case <-l.target.Changed():
				continue
			case <-ctx.Done():
				return
			}
		}
		streamed, err := l.session(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		if addr != l.target.Addr() {
			backoff = minBackoff
			continue
		}
		msg := "master connection lost"
		if !streamed {
			msg = "master connection failed"
		}
		l.log.Warn(msg, "master", addr, "err", err)
		l.report(func(s *Status) { s.Connected, s.LastError = false, err.Error() })
		if streamed {
			backoff = minBackoff
		}
		// Jitter spreads the reconnects of many replicas after a master
		// restart.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-time.After(wait):
		case <-l.target.Changed():
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, l.cfg.MaxBackoff)
	}
}

// session is one connection's life: sync, then stream until it breaks.
// streamed says whether it got as far as streaming.
func (l *link) session(ctx context.Context, addr string) (streamed bool, err error) {
	c, err := mupdate.Dial(ctx, addr, l.cfg.Client)
	if err != nil {
		return false, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	defer c.Close()
	detach, ok := l.target.Attach(addr, c)
	defer detach()
	if !ok {
		return false, errors.New("slave: master moved")
	}

	g := c.Greeting()
	_, rookery := g.Capabilities[mupdate.CapLog]
	start := time.Now()
	var seq uint64
	var mode string
	if rookery {
		seq, mode, err = l.syncRookery(c)
	} else {
		mode = "full"
		err = l.syncCyrus(c)
	}
	if err != nil {
		return false, err
	}
	l.log.Info("replica synchronised with master", "master", addr, "mode", mode,
		"seq", seq, "mailboxes", l.cfg.Store.Count(), "took", time.Since(start).Round(time.Millisecond))
	l.report(func(s *Status) {
		s.Master, s.Connected, s.Rookery, s.AppliedSeq, s.LastSync, s.LastError = addr, true, rookery, seq, time.Now(), ""
		s.TLS = c.TLS()
		if mode == "resume" {
			s.Resumes++
		} else {
			s.FullSyncs++
		}
	})
	return true, l.stream(c, rookery)
}

// syncCyrus loads a Cyrus master's dump (no change log to resume from).
func (l *link) syncCyrus(c *mupdate.Client) error {
	r := l.newReconciler()
	defer r.close()
	// A Cyrus master has no seq: forget any a Rookery master left here.
	if err := l.apply(nil, map[string]string{metaEpoch: "", metaSeq: ""}); err != nil {
		return err
	}
	if err := c.Update(nil, r.add); err != nil {
		return err
	}
	return r.finish(nil)
}

// syncRookery resumes from the master's change log when it still reaches
// back to what was applied here, else reloads the whole list.
func (l *link) syncRookery(c *mupdate.Client) (uint64, string, error) {
	epoch, _, err := l.cfg.Store.Meta(metaEpoch)
	if err != nil {
		return 0, "", err
	}
	var seq uint64
	if s, ok, _ := l.cfg.Store.Meta(metaSeq); ok && epoch != "" {
		seq, _ = strconv.ParseUint(s, 10, 64)
	}
	full, masterEpoch, err := c.XUpdate(epoch, seq)
	if err != nil {
		return 0, "", err
	}
	if full {
		if err := l.apply(nil, map[string]string{metaEpoch: "", metaSeq: ""}); err != nil {
			return 0, "", err
		}
		r := l.newReconciler()
		defer r.close()
		last, err := l.readUntilSeq(c, r.add)
		if err != nil {
			return 0, "", err
		}
		return last, "full", r.finish(seqMeta(masterEpoch, last))
	}
	var changes []store.Change
	last, err := l.readUntilSeq(c, func(rec mupdate.Record) error {
		changes = append(changes, change(rec))
		return nil
	})
	if err != nil {
		return 0, "", err
	}
	return last, "resume", l.applyStream(changes, seqMeta(masterEpoch, last), last)
}

// readUntilSeq passes records to fn up to the master's XSEQ line, and
// then expects the OK that starts the stream.
func (l *link) readUntilSeq(c *mupdate.Client, fn func(mupdate.Record) error) (uint64, error) {
	for {
		rec, err := c.Next()
		if err != nil {
			return 0, err
		}
		switch rec.Kind {
		case "MAILBOX", "RESERVE", "DELETE":
			if err := fn(rec); err != nil {
				return 0, err
			}
		case mupdate.KindSeq:
			seq, err := strconv.ParseUint(rec.Name, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("slave: bad seq %q from master", rec.Name)
			}
			ok, err := c.Next()
			if err != nil {
				return 0, err
			}
			if ok.Kind != "OK" {
				return 0, fmt.Errorf("slave: master answered %s to XUPDATE", ok.Kind)
			}
			return seq, nil
		default:
			return 0, fmt.Errorf("slave: unexpected %s line during sync", rec.Kind)
		}
	}
}

func seqMeta(epoch string, seq uint64) map[string]string {
	return map[string]string{metaEpoch: epoch, metaSeq: strconv.FormatUint(seq, 10)}
}

// stream applies the master's changes as they come and keeps the link
// alive: a NOOP every RetryDelay, and a link whose NOOP is still
// unanswered at the next tick is dead.
func (l *link) stream(c *mupdate.Client, rookery bool) error {
	type next struct {
		rec mupdate.Record
		err error
	}
	recs := make(chan next, 256)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			rec, err := c.Next()
			select {
			case recs <- next{rec, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	tick := time.NewTicker(l.cfg.RetryDelay)
	defer tick.Stop()
	// NOOPs in flight, oldest first, each with the kicks it answers: a
	// kick is answered by the OK of a NOOP sent after it arrived.
	type noop struct {
		tag     string
		sent    time.Time
		waiters []*actor.PID
	}
	var noops []noop
	sendNoop := func(waiters []*actor.PID) error {
		tag, err := c.SendNoop()
		if err != nil {
			return err
		}
		noops = append(noops, noop{tag: tag, sent: time.Now(), waiters: waiters})
		return nil
	}
	var pending []store.Change
	defer func() {
		lost := &SyncReply{Err: errors.New("slave: master connection lost")}
		for _, n := range noops {
			for _, w := range n.waiters {
				l.root.Send(w, lost)
			}
		}
		for {
			select {
			case w := <-l.kicks:
				l.root.Send(w, lost)
			default:
				return
			}
		}
	}()
	for {
		select {
		case w := <-l.kicks:
			if err := sendNoop([]*actor.PID{w}); err != nil {
				return err
			}
		case n := <-recs:
			if n.err != nil {
				return n.err
			}
			switch n.rec.Kind {
			case "OK":
				// The master sent everything it had before this OK.
				if len(pending) > 0 {
					if err := l.applyStream(pending, nil, 0); err != nil {
						return err
					}
					pending = pending[:0]
				}
				// OKs come in order: this one answers every NOOP up to
				// its own tag.
				for len(noops) > 0 {
					done := noops[0]
					noops = noops[1:]
					for _, w := range done.waiters {
						l.root.Send(w, &SyncReply{})
					}
					if done.tag == n.rec.Tag {
						break
					}
				}
			case "MAILBOX", "RESERVE", "DELETE":
				pending = append(pending, change(n.rec))
			case mupdate.KindSeq:
				seq, err := strconv.ParseUint(n.rec.Name, 10, 64)
				if err != nil {
					return fmt.Errorf("slave: bad seq %q from master", n.rec.Name)
				}
				epoch, _, _ := l.cfg.Store.Meta(metaEpoch)
				if err := l.applyStream(pending, seqMeta(epoch, seq), seq); err != nil {
					return err
				}
				pending = pending[:0]
			default:
				return fmt.Errorf("slave: unexpected %s line while streaming", n.rec.Kind)
			}
			// A Cyrus master marks no batch ends: apply what has arrived
			// once nothing more is waiting.
			if !rookery && len(pending) > 0 && len(recs) == 0 {
				if err := l.applyStream(pending, nil, 0); err != nil {
					return err
				}
				pending = pending[:0]
			}
		case <-tick.C:
			if len(noops) > 0 && time.Since(noops[0].sent) >= l.cfg.RetryDelay {
				return errors.New("slave: master did not answer NOOP in time")
			}
			if len(noops) == 0 {
				if err := sendNoop(nil); err != nil {
					return err
				}
			}
		}
	}
}

func (l *link) applyStream(changes []store.Change, meta map[string]string, seq uint64) error {
	// Deletes of names never seen here are normal (Cyrus streams them for
	// short-lived names); drop them rather than log a change.
	kept := changes[:0]
	set := make(map[string]bool) // names this batch creates before deleting
	for _, ch := range changes {
		if ch.New == nil && !set[ch.Name] {
			if _, found, err := l.cfg.Store.Get(ch.Name); err == nil && !found {
				continue
			}
		}
		set[ch.Name] = ch.New != nil
		kept = append(kept, ch)
	}
	if len(kept) == 0 && meta == nil {
		return nil
	}
	if err := l.apply(kept, meta); err != nil {
		return err
	}
	l.report(func(s *Status) {
		s.LastChange = time.Now()
		if seq > 0 {
			s.AppliedSeq = seq
		}
	})
	return nil
}

// apply writes changes through mailbox-db and waits until they are durable.
func (l *link) apply(changes []store.Change, meta map[string]string) error {
	return applyResult(l.root.RequestFuture(l.cfg.DB, &mailboxdb.Apply{Changes: changes, Meta: meta}, time.Minute).Result())
}

func applyResult(res any, err error) error {
	if err != nil {
		return fmt.Errorf("slave: mailbox-db: %w", err)
	}
	if r, ok := res.(*mailboxdb.UpdateReply); ok && r.Err != nil {
		return r.Err
	} else if !ok {
		return fmt.Errorf("slave: mailbox-db: unexpected reply %T", res)
	}
	return nil
}

func change(rec mupdate.Record) store.Change {
	switch rec.Kind {
	case "MAILBOX":
		return store.Change{Name: rec.Name, New: &store.Entry{Name: rec.Name, Kind: store.Active, Location: rec.Location, ACL: rec.ACL}}
	case "RESERVE":
		return store.Change{Name: rec.Name, New: &store.Entry{Name: rec.Name, Kind: store.Reserved, Location: rec.Location}}
	default:
		return store.Change{Name: rec.Name}
	}
}

// reconciler turns a master's full dump into the changes that make the
// local list equal to it. Masters, Rookery and Cyrus alike, dump in list
// order (dbname order, see store.DBName), so it walks the local list
// alongside the dump, holding one entry rather than a set of every name.
// It compares keys the way the list sorts them: Cyrus's own slave merges
// with strcmp over lists in dbname order and so deletes entries it has
// just inserted. The walk never goes back: a record out of order is
// written as it is, after any delete the walk sent for it, so a dump in
// any order still ends in the master's list.
type reconciler struct {
	l       *link
	batch   []store.Change
	changed int
	// empty: the local list was empty at the start, so nothing needs
	// comparing (a fresh replica's first load).
	empty bool
	// inflight is the previous batch's write, awaited before the next one
	// is sent, so reading the dump and writing it overlap.
	inflight *actor.Future

	// The local list as it was when the dump began: next yields its
	// entries in list order; cur is the first not yet passed by the dump.
	snap     *store.Snapshot
	next     func() (store.Entry, error, bool)
	stop     func()
	started  bool
	cur      *store.Entry
	curKey   []byte
	last     []byte // the previous record's key
	disorder int    // records that came out of list order
}

// batchSize bounds one Apply during a resync.
const batchSize = 4096

func (l *link) newReconciler() *reconciler {
	r := &reconciler{l: l, empty: l.cfg.Store.Count() == 0}
	if !r.empty {
		r.snap = l.cfg.Store.Snapshot()
		r.next, r.stop = iter.Pull2(r.snap.All())
	}
	return r
}

// close releases the walk of the local list; finish or not.
func (r *reconciler) close() {
	if r.snap != nil {
		r.stop()
		r.snap.Close()
		r.snap = nil
	}
}

// start reads the first local entry, once.
func (r *reconciler) start() error {
	if r.started {
		return nil
	}
	r.started = true
	return r.advance()
}

// advance moves cur to the next local entry (nil at the end).
func (r *reconciler) advance() error {
	e, err, ok := r.next()
	switch {
	case !ok:
		r.cur = nil
	case err != nil:
		return err
	default:
		r.cur, r.curKey = &e, store.DBName(e.Name)
	}
	return nil
}

func (r *reconciler) add(rec mupdate.Record) error {
	if rec.Kind != "MAILBOX" && rec.Kind != "RESERVE" {
		return fmt.Errorf("slave: unexpected %s line in a dump", rec.Kind)
	}
	want := change(rec)
	if r.empty {
		return r.push(want)
	}
	if err := r.start(); err != nil {
		return err
	}
	k := store.DBName(rec.Name)
	if r.last != nil && bytes.Compare(k, r.last) <= 0 {
		// The walk has passed k and may have sent its delete: the put
		// comes after it and wins.
		r.disorder++
		return r.push(want)
	}
	r.last = k
	// What the local list holds before k, the dump has not got.
	for r.cur != nil && bytes.Compare(r.curKey, k) < 0 {
		if err := r.push(store.Change{Name: r.cur.Name}); err != nil {
			return err
		}
		if err := r.advance(); err != nil {
			return err
		}
	}
	if r.cur != nil && bytes.Equal(r.curKey, k) {
		same := *r.cur == *want.New
		if err := r.advance(); err != nil {
			return err
		}
		if same {
			return nil
		}
	}
	return r.push(want)
}

func (r *reconciler) push(c store.Change) error {
	r.batch = append(r.batch, c)
	r.changed++
	if len(r.batch) < batchSize {
		return nil
	}
	if err := r.wait(); err != nil {
		return err
	}
	r.inflight = r.l.root.RequestFuture(r.l.cfg.DB, &mailboxdb.Apply{Changes: r.batch}, time.Minute)
	r.batch = make([]store.Change, 0, batchSize)
	return nil
}

// wait waits for the batch in flight.
func (r *reconciler) wait() error {
	if r.inflight == nil {
		return nil
	}
	f := r.inflight
	r.inflight = nil
	return applyResult(f.Result())
}

// finish deletes what the master no longer has and writes meta with the
// last batch.
func (r *reconciler) finish(meta map[string]string) error {
	if !r.empty {
		if err := r.start(); err != nil {
			return err
		}
		for r.cur != nil {
			if err := r.push(store.Change{Name: r.cur.Name}); err != nil {
				return err
			}
			if err := r.advance(); err != nil {
				return err
			}
		}
	}
	if err := r.wait(); err != nil {
		return err
	}
	if err := r.l.apply(r.batch, meta); err != nil {
		return err
	}
	if r.disorder > 0 {
		r.l.log.Warn("replica: the master's dump was not in list order; entries out of order were rewritten", "entries", r.disorder)
	}
	r.l.log.Debug("replica reconciled", "changed", r.changed)
	return nil
}
