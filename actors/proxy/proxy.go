// Package proxy is the frontend's proxy-session actor: one per client
// connection (IMAP, POP3, LMTP). It decides where the session's mailboxes
// live, reading the node's mailbox list and kicking the replica when a
// name is missing, and keeps the session's state: its user, its selected
// mailbox and the backends it holds connections to, which it counts in
// the proxied-sessions metric. The session's goroutines still pump the
// bytes; only routing questions and session events reach the actor.
package proxy

import (
	"context"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store"
)

// Route asks where a mailbox (a Cyrus internal name) lives. Sent by the
// session's goroutine; reply *RouteReply. With Kick, a missing name makes
// the replica catch up once, until Deadline (zero: 30 s from now), before
// the answer.
type Route struct {
	Mailbox  string
	Kick     bool
	Deadline time.Time
}

// RouteReply answers Route: the active entry, or frontend.ErrNoMailbox,
// frontend.ErrReserved or a store error.
type RouteReply struct {
	Entry store.Entry
	Err   error
}

// LoggedIn records the session's user. Sent by the session's goroutine;
// no reply.
type LoggedIn struct{ User string }

// Selected records the mailbox the client selected last and its backend
// server (both "" after a failed selection). Sent by the session's
// goroutine; no reply.
type Selected struct{ Mailbox, Server string }

// BackendOpened records a new connection to a backend server. Sent by the
// session's goroutine; no reply.
type BackendOpened struct{ Server string }

// BackendClosed records a backend connection closing. Sent by the
// session's goroutine; no reply.
type BackendClosed struct{ Server string }

// GetSession asks for the session's state; reply *SessionInfo.
type GetSession struct{}

// SessionInfo is a session's state.
type SessionInfo struct {
	Protocol, User string
	// Mailbox and Server are the last selection.
	Mailbox, Server string
	// Backends counts open backend connections by server.
	Backends map[string]int
}

// Config is what the actor needs.
type Config struct {
	// Protocol is "imap", "pop3" or "lmtp".
	Protocol string
	// Table is the node's mailbox list, with the replica kick.
	Table *frontend.Table
	// Proxying, if set, counts backend connections: +1 when one opens,
	// -1 when it closes or the actor stops with it still open.
	Proxying func(server string, delta int)
}

// defaultDeadline bounds a kick when the Route has no deadline.
const defaultDeadline = 30 * time.Second

// Props makes the actor's props.
func Props(cfg Config) *actor.Props {
	if cfg.Proxying == nil {
		cfg.Proxying = func(string, int) {}
	}
	return actor.PropsFromProducer(func() actor.Actor { return &session{cfg: &cfg, info: SessionInfo{Protocol: cfg.Protocol}} })
}

// kicked is sent by a kick goroutine when the replica has caught up (or
// failed to); reply is the Route's sender, still waiting.
type kicked struct {
	name  string
	reply *actor.PID
	err   error
}

type session struct {
	cfg  *Config
	info SessionInfo
	// stop cancels kicks in flight when the actor stops; made with the
	// first kick, as most sessions never kick.
	stop   context.Context
	cancel context.CancelFunc
}

func (a *session) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Route:
		e, err := a.cfg.Table.LookupNoKick(m.Mailbox)
		if m.Kick && errors.Is(err, frontend.ErrNoMailbox) && a.cfg.Table.Kick != nil {
			a.kick(ctx, m)
			return
		}
		ctx.Respond(&RouteReply{Entry: e, Err: err})
	case *kicked:
		// As Table.Lookup: a failed kick leaves the name missing.
		var e store.Entry
		err := error(frontend.ErrNoMailbox)
		if m.err == nil {
			e, err = a.cfg.Table.LookupNoKick(m.name)
		}
		ctx.Send(m.reply, &RouteReply{Entry: e, Err: err})
	case *LoggedIn:
		a.info.User = m.User
	case *Selected:
		a.info.Mailbox, a.info.Server = m.Mailbox, m.Server
	case *BackendOpened:
		if a.info.Backends == nil {
			a.info.Backends = map[string]int{}
		}
		a.info.Backends[m.Server]++
		a.cfg.Proxying(m.Server, 1)
	case *BackendClosed:
		if a.info.Backends[m.Server] > 0 {
			a.info.Backends[m.Server]--
			if a.info.Backends[m.Server] == 0 {
				delete(a.info.Backends, m.Server)
			}
			a.cfg.Proxying(m.Server, -1)
		}
	case *GetSession:
		info := a.info
		info.Backends = make(map[string]int, len(a.info.Backends))
		for s, n := range a.info.Backends {
			info.Backends[s] = n
		}
		ctx.Respond(&info)
	case *actor.Stopping:
		if a.cancel != nil {
			a.cancel()
		}
	case *actor.Stopped:
		// A session that ended without closing its backends (it
		// crashed, or the node is stopping) still leaves the count.
		for s, n := range a.info.Backends {
			a.cfg.Proxying(s, -n)
		}
		a.info.Backends = nil
	}
}

// kick makes the replica catch up in a goroutine, which reports back with
// kicked; the Route's sender gets its answer then.
func (a *session) kick(ctx actor.Context, m *Route) {
	if a.stop == nil {
		a.stop, a.cancel = context.WithCancel(context.Background())
	}
	deadline := m.Deadline
	if deadline.IsZero() {
		deadline = time.Now().Add(defaultDeadline)
	}
	root, self, kick, stop := ctx.ActorSystem().Root, ctx.Self(), a.cfg.Table.Kick, a.stop
	done := &kicked{name: m.Mailbox, reply: ctx.Sender()}
	go func() {
		kctx, cancel := context.WithDeadline(stop, deadline)
		defer cancel()
		done.err = kick(kctx)
		root.Send(self, done)
	}()
}
