// Package pusher is the backend-pusher actor: a backend's single path to
// the MUPDATE master. Every mailbox create, delete, rename and ACL change
// on the backend goes through it (reserve → create locally → activate, as
// a Cyrus 3.6 backend does), and on every new connection to the master it
// does what `ctl_mboxlist -m` does at a Cyrus backend's start: it makes
// the master's entries for this server match the local mailboxes.
//
// The actor keeps the state and the queue; one goroutine owns the
// connection to the master, so operations reach it one at a time and in
// order, and a slow master never blocks the actor.
package pusher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/listeners/mupdate"
)

// Errors in Reply.Err.
var (
	// ErrUnavailable means the master could not be reached; nothing was
	// changed on it.
	ErrUnavailable = errors.New("pusher: mupdate master unreachable")
	// ErrRefused means the master refused a reservation: the name is held
	// elsewhere in the murder.
	ErrRefused = errors.New("pusher: mupdate master refused the reservation")
)

// Reserve claims a name for this server before the backend creates it.
// Sent by the backend's IMAP sessions; reply *Reply. Deadline is when the
// sender stops waiting (zero: Config.OpTimeout from now).
type Reserve struct {
	Name     string
	Deadline time.Time
}

// Activate publishes a mailbox that exists here, with its ACL. Sent by the
// backend's IMAP sessions; reply *Reply.
type Activate struct {
	Name, ACL string
	Deadline  time.Time
}

// Delete withdraws a mailbox of this server from the master. Sent by the
// backend's IMAP sessions; reply *Reply.
type Delete struct {
	Name     string
	Deadline time.Time
}

// Reply answers Reserve, Activate and Delete.
type Reply struct{ Err error }

// Compare asks how the master's list differs from this backend's
// mailboxes (Cyrus: ctl_mboxlist -mw) and, with Repair, makes the master
// match them (ctl_mboxlist -m, what every start does). Sent by the node
// for an operator; reply *CompareReply.
type Compare struct {
	Repair   bool
	Deadline time.Time
}

// CompareReply answers Compare. Names are internal mailbox names.
type CompareReply struct {
	// Missing are mailboxes here that the master lacks or has with
	// another location or ACL.
	Missing []string
	// Stale are mailboxes the master places here that this backend does
	// not have.
	Stale []string
	// Conflicts are mailboxes here that the master places on another
	// server; they are never taken over.
	Conflicts []string
	// Repaired tells that Missing and Stale were fixed on the master.
	Repaired bool
	Err      error
}

// GetStatus asks for the pusher's state; reply *Status.
type GetStatus struct{}

// SetMaster points the pusher at another master (found by gossip); it
// reconnects there and does a full push. Sent by the node; no reply.
type SetMaster struct{ Addr string }

// Status is the pusher's state.
type Status struct {
	Master    string
	Connected bool
	// LastPush is when the last full push (what ctl_mboxlist -m does)
	// finished.
	LastPush time.Time
	// Conflicts are local mailboxes the master places on another server,
	// as of the last push.
	Conflicts []string
	LastError string
}

// Mailbox is one local mailbox, as the full push sees it.
type Mailbox struct{ Name, ACL string }

// Config is what the actor needs.
type Config struct {
	// Master is the MUPDATE master's host:port; "" waits for SetMaster
	// (operations are refused meanwhile).
	Master string
	Client mupdate.ClientConfig
	// ServerName and Partition make this backend's locations,
	// "servername!partition".
	ServerName, Partition string
	// Local lists this backend's mailboxes for the full push.
	Local func(fn func(Mailbox) error) error
	// KeepAlive is how often an idle connection is checked with NOOP, and
	// the longest wait between reconnection attempts.
	KeepAlive time.Duration
	// OpTimeout bounds one exchange with the master (an operation, a
	// NOOP, the full push); a master that does not answer in time is
	// dropped. Default 30 s.
	OpTimeout time.Duration
	Logger    *slog.Logger
}

// Props makes the actor's props.
func Props(cfg Config) *actor.Props {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Partition == "" {
		cfg.Partition = "default"
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = 30 * time.Second
	}
	return actor.PropsFromProducer(func() actor.Actor { return &pusher{cfg: cfg} })
}

// job is one operation for the connection goroutine.
type job struct {
	run   func(c *mupdate.Client) error
	reply *actor.PID
	// expires is when the requester stops waiting; a job still queued
	// then is dropped, so a change the client was told failed never
	// happens later behind its back.
	expires time.Time
	// answer makes the reply from the job's error; nil: a *Reply.
	answer func(error) any
}

// replyFor is the job's reply for err.
func (j job) replyFor(err error) any {
	if j.answer != nil {
		return j.answer(err)
	}
	return &Reply{Err: err}
}

// progress is sent by the connection goroutine to the actor.
type progress struct{ update func(*Status) }

type pusher struct {
	cfg    Config
	target *mupdate.Target
	status Status
	jobs   chan job
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (a *pusher) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.status.Master = a.cfg.Master
		a.jobs = make(chan job, 1024)
		c, cancel := context.WithCancel(context.Background())
		a.cancel = cancel
		a.target = mupdate.NewTarget(a.cfg.Master)
		w := &worker{cfg: a.cfg, target: a.target, root: ctx.ActorSystem().Root, self: ctx.Self(), jobs: a.jobs}
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			w.run(c)
		}()
	case *Reserve:
		loc := a.location()
		a.submit(ctx, m.Deadline, func(c *mupdate.Client) error {
			err := c.Reserve(m.Name, loc)
			var se *mupdate.ServerError
			if errors.As(err, &se) {
				held := ""
				if rec, ferr := c.Find(m.Name); ferr == nil && rec != nil {
					held = rec.Location
				}
				a.cfg.Logger.Warn("mailbox conflict: the master holds this name for another server",
					"mailbox", m.Name, "held_by", held, "wanted_by", loc)
				return fmt.Errorf("%w: %s", ErrRefused, se.Text)
			}
			return err
		})
	case *Activate:
		loc := a.location()
		a.submit(ctx, m.Deadline, func(c *mupdate.Client) error { return c.Activate(m.Name, loc, m.ACL) })
	case *Delete:
		a.submit(ctx, m.Deadline, func(c *mupdate.Client) error { return a.withdraw(c, m.Name) })
	case *Compare:
		res := &CompareReply{}
		a.submitFor(ctx, m.Deadline, func(c *mupdate.Client) error {
			w := &worker{cfg: a.cfg, c: c}
			p, err := w.compare()
			if err != nil {
				return err
			}
			res.Missing, res.Stale, res.Conflicts = p.missing(), p.stale, p.conflicts
			if m.Repair {
				if err := w.apply(p); err != nil {
					return err
				}
				res.Repaired = true
			}
			return nil
		}, func(err error) any { res.Err = err; return res })
	case *SetMaster:
		if m.Addr != a.target.Addr() {
			a.cfg.Logger.Info("backend switching master", "from", a.target.Addr(), "to", m.Addr)
			a.status.Master = m.Addr
			a.target.Set(m.Addr)
		}
	case *progress:
		m.update(&a.status)
	case *GetStatus:
		s := a.status
		s.Conflicts = append([]string(nil), s.Conflicts...)
		ctx.Respond(&s)
	case *actor.Stopping:
		a.cancel()
		a.wg.Wait()
	}
}

func (a *pusher) location() string { return a.cfg.ServerName + "!" + a.cfg.Partition }

func (a *pusher) submit(ctx actor.Context, deadline time.Time, run func(*mupdate.Client) error) {
	a.submitFor(ctx, deadline, run, nil)
}

// submitFor is submit whose reply answer makes from the job's error (nil:
// a *Reply).
func (a *pusher) submitFor(ctx actor.Context, deadline time.Time, run func(*mupdate.Client) error, answer func(error) any) {
	if deadline.IsZero() {
		deadline = time.Now().Add(a.cfg.OpTimeout)
	}
	j := job{run: run, reply: ctx.Sender(), expires: deadline, answer: answer}
	select {
	case a.jobs <- j:
	default:
		ctx.Respond(j.replyFor(fmt.Errorf("%w: too many operations queued", ErrUnavailable)))
	}
}

// withdraw deletes name from the master if the master holds it for this
// server. A Cyrus master crashes on a DELETE of a name it does not have,
// and a name held by another server is not ours to remove.
func (a *pusher) withdraw(c *mupdate.Client, name string) error {
	rec, err := c.Find(name)
	if err != nil {
		return err
	}
	if rec == nil {
		return nil
	}
	if server(rec.Location) != a.cfg.ServerName {
		a.cfg.Logger.Warn("not withdrawing a mailbox the master places on another server",
			"mailbox", name, "held_by", rec.Location)
		return nil
	}
	return c.Delete(name)
}

func server(location string) string {
	s, _, _ := strings.Cut(location, "!")
	return s
}

// worker owns the connection to the master.
type worker struct {
	cfg    Config
	target *mupdate.Target
	detach func()
	root   *actor.RootContext
	self   *actor.PID
	jobs   chan job
	c      *mupdate.Client
}

func (w *worker) report(f func(*Status)) { w.root.Send(w.self, &progress{update: f}) }

// run serves jobs and keeps a connection to the master: it reconnects
// with backoff while the master is away, so that a master that comes back
// (or a new, empty one) is repopulated without waiting for a user.
func (w *worker) run(ctx context.Context) {
	defer w.drop(nil)
	const minBackoff = 200 * time.Millisecond
	backoff := minBackoff
	for {
		wait := w.cfg.KeepAlive
		if w.c == nil {
			if err := w.connect(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				wait = backoff/2 + rand.N(backoff/2+1)
				backoff = min(2*backoff, w.cfg.KeepAlive)
			} else {
				backoff = minBackoff
			}
		}
		select {
		case <-ctx.Done():
			w.fail()
			return
		case <-w.target.Changed():
			w.drop(nil)
			backoff = minBackoff
		case j := <-w.jobs:
			w.do(ctx, j)
		case <-time.After(wait):
			if w.c != nil {
				w.deadline(time.Time{})
				if err := w.c.Noop(); err != nil {
					w.drop(err)
				}
			}
		}
	}
}

// do runs one job, reconnecting once if the connection turns out dead,
// as Cyrus's XFER code does; every operation is safe to repeat.
func (w *worker) do(ctx context.Context, j job) {
	if time.Now().After(j.expires) {
		// The requester has already answered its client with a failure.
		w.cfg.Logger.Warn("dropped a mailbox change its requester gave up on")
		return
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if w.c == nil {
			if err = w.connect(ctx); err != nil {
				break
			}
		}
		w.deadline(j.expires)
		err = j.run(w.c)
		var se *mupdate.ServerError
		if err == nil || errors.Is(err, ErrRefused) || errors.As(err, &se) {
			break
		}
		w.drop(err)
		err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if j.reply != nil {
		w.root.Send(j.reply, j.replyFor(err))
	}
}

// fail answers what is still queued when the pusher stops.
func (w *worker) fail() {
	for {
		select {
		case j := <-w.jobs:
			if j.reply != nil {
				w.root.Send(j.reply, j.replyFor(ErrUnavailable))
			}
		default:
			return
		}
	}
}

func (w *worker) connect(ctx context.Context) error {
	addr := w.target.Addr()
	if addr == "" {
		return fmt.Errorf("%w: no master known yet", ErrUnavailable)
	}
	c, err := mupdate.Dial(ctx, addr, w.cfg.Client)
	if err != nil {
		w.report(func(s *Status) { s.Connected, s.LastError = false, err.Error() })
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	detach, ok := w.target.Attach(addr, c)
	if !ok {
		return fmt.Errorf("%w: master moved", ErrUnavailable)
	}
	// Stopping the pusher must not wait on a master that went quiet.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	w.c, w.detach = c, func() { stop(); detach() }
	// The full push may be long; it gets a deadline per exchange below.
	w.deadline(time.Time{})
	w.cfg.Logger.Info("connected to the mupdate master", "master", addr)
	w.report(func(s *Status) { s.Master, s.Connected, s.LastError = addr, true, "" })
	if err := w.push(); err != nil {
		w.cfg.Logger.Warn("full push to the mupdate master failed", "master", addr, "err", err)
		w.drop(err)
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// deadline bounds the next exchange with the master: until t, or
// OpTimeout from now when t is zero or later than that.
func (w *worker) deadline(t time.Time) {
	if w.c == nil {
		return
	}
	limit := time.Now().Add(w.cfg.OpTimeout)
	if t.IsZero() || t.After(limit) {
		t = limit
	}
	_ = w.c.SetDeadline(t)
}

func (w *worker) drop(err error) {
	if w.c == nil {
		return
	}
	w.c.Close()
	w.detach()
	w.c = nil
	if err != nil {
		w.cfg.Logger.Warn("lost the mupdate master", "master", w.target.Addr(), "err", err)
		w.report(func(s *Status) { s.Connected, s.LastError = false, err.Error() })
	}
}

// push makes the master's entries for this server match the local list,
// as ctl_mboxlist -m does: entries of this server that no longer exist
// here are deleted, local mailboxes the master lacks or has wrong are
// activated, and a local mailbox the master places on another server is
// reported, never taken over (Cyrus would delete the local copy; we leave
// that to an operator).
func (w *worker) push() error {
	start := time.Now()
	p, err := w.compare()
	if err != nil {
		return err
	}
	if err := w.apply(p); err != nil {
		return err
	}
	w.cfg.Logger.Info("pushed the mailbox list to the mupdate master", "master", w.target.Addr(),
		"mailboxes", p.local, "activated", len(p.activate), "deleted", len(p.stale), "conflicts", len(p.conflicts),
		"took", time.Since(start).Round(time.Millisecond))
	w.report(func(s *Status) { s.LastPush, s.Conflicts = time.Now(), p.conflicts })
	return nil
}

// plan is what a full push changes on the master.
type plan struct {
	local     int
	activate  []Mailbox // here, and missing or different on the master
	stale     []string  // on the master for this server, not here
	conflicts []string  // here, placed on another server by the master
}

func (p *plan) missing() []string {
	names := make([]string, len(p.activate))
	for i, m := range p.activate {
		names[i] = m.Name
	}
	return names
}

// compare lists the master's entries for this server and this backend's
// mailboxes, and says what differs.
func (w *worker) compare() (*plan, error) {
	prefix := w.cfg.ServerName + "!"
	held := make(map[string]mupdate.Record)
	if err := w.c.List(prefix, func(r mupdate.Record) error {
		held[r.Name] = r
		return nil
	}); err != nil {
		return nil, err
	}
	loc := w.cfg.ServerName + "!" + w.cfg.Partition
	p := &plan{}
	local := make(map[string]bool)
	err := w.cfg.Local(func(m Mailbox) error {
		local[m.Name] = true
		p.local++
		w.deadline(time.Time{})
		if r, ok := held[m.Name]; ok {
			if r.Kind == "MAILBOX" && r.Location == loc && r.ACL == m.ACL {
				return nil
			}
		} else {
			rec, err := w.c.Find(m.Name)
			if err != nil {
				return err
			}
			if rec != nil && server(rec.Location) != w.cfg.ServerName {
				p.conflicts = append(p.conflicts, m.Name)
				w.cfg.Logger.Warn("mailbox conflict: a local mailbox is placed on another server by the master; not taking it over",
					"mailbox", m.Name, "held_by", rec.Location)
				return nil
			}
		}
		p.activate = append(p.activate, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for name := range held {
		if !local[name] {
			p.stale = append(p.stale, name)
		}
	}
	slices.Sort(p.stale)
	return p, nil
}

// apply makes the master match p.
func (w *worker) apply(p *plan) error {
	loc := w.cfg.ServerName + "!" + w.cfg.Partition
	for _, m := range p.activate {
		w.deadline(time.Time{})
		if err := w.c.Activate(m.Name, loc, m.ACL); err != nil {
			return err
		}
	}
	for _, name := range p.stale {
		w.deadline(time.Time{})
		if err := w.c.Delete(name); err != nil {
			return err
		}
	}
	return nil
}
