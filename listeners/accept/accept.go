// Package accept runs the accept loop that every Rookery listener shares:
// the MUPDATE master's and replica's, the backend's IMAP, POP3 and LMTP
// servers, and the frontend's proxies. It caps open connections, rides out
// accept errors such as running out of file descriptors, turns a panic in
// a connection's handler into an error log and the end of that connection
// only, and on Close stops accepting and waits for every connection's
// handler to return.
//
// It also keeps connections fair to one another. A connection that has
// not authenticated holds a pre-authentication slot (Preauth) until its
// session says it has: such connections may fill only a share of the
// cap, and get a login deadline, so that strangers opening connections
// and sending nothing can never take the slots logged-in users and
// murder peers hold. When the share is full, a newcomer pushes out the
// oldest connection that has still not authenticated (as Dovecot's
// login processes do) rather than being refused, so that idle strangers
// cannot keep a user from logging in either. Connections from one IP
// address and logins of one user may be capped too.
package accept

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Config says how a Loop treats its connections.
type Config struct {
	// Name prefixes logs and errors, e.g. "imap".
	Name string
	// MaxConns caps open connections; one over the cap is sent Busy and
	// closed without reaching its handler.
	MaxConns int
	// Busy is written to a refused connection: a whole line, CRLF included.
	Busy string
	// MaxUnauthenticated caps the connections that have not
	// authenticated (Preauth.Authenticated); one over it cuts the oldest
	// of them short: its login deadline becomes now. Zero: half of
	// MaxConns, at least one; MaxConns or more: no share.
	MaxUnauthenticated int
	// LoginTimeout is how long a connection may stay unauthenticated
	// after it is accepted; Preauth.Deadline never lies past it. It runs
	// from the accept, not from the last command, so a stranger cannot
	// keep its slot by chatting. Zero: one minute.
	LoginTimeout time.Duration
	// MaxPerHost caps the connections from one IP address, authenticated
	// or not; one over it is sent HostBusy and closed. Zero: no cap.
	MaxPerHost int
	// HostBusy is written to a connection refused by MaxPerHost: a whole
	// line, CRLF included.
	HostBusy string
	// MaxPerUser caps the authenticated connections of one user
	// (Preauth.Authenticated refuses one more). Zero: no cap.
	MaxPerUser int
	// Refused, if set, counts a connection or login refused, by reason:
	// "limit" (MaxConns), "unauthenticated" (pushed out by
	// MaxUnauthenticated), "host" (MaxPerHost) or "user" (MaxPerUser).
	// It must not block.
	Refused func(reason string)
	// CloseConns makes Close close live connections as well, for handlers
	// that end only when their connection fails rather than on Context.
	CloseConns bool
	// Logger takes refusals, accept errors and handler panics; nil
	// discards them.
	Logger *slog.Logger
}

// Loop accepts connections on any number of listeners.
type Loop struct {
	cfg   Config
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	conns atomic.Int64

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	open      map[net.Conn]struct{}
	waiting   *list.List         // *Preauth of connections in the unauthenticated share, oldest first
	hosts     map[netip.Addr]int // open connections by remote IP, with MaxPerHost
	users     map[string]int     // authenticated connections by user, with MaxPerUser
}

// New returns a loop that is not yet accepting.
func New(cfg Config) *Loop {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxUnauthenticated <= 0 {
		cfg.MaxUnauthenticated = max(cfg.MaxConns/2, 1)
	}
	if cfg.LoginTimeout <= 0 {
		cfg.LoginTimeout = time.Minute
	}
	if cfg.Refused == nil {
		cfg.Refused = func(string) {}
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Loop{cfg: cfg, ctx: ctx, stop: stop,
		listeners: make(map[net.Listener]struct{}),
		open:      make(map[net.Conn]struct{}),
		waiting:   list.New(),
		hosts:     make(map[netip.Addr]int),
		users:     make(map[string]int)}
}

// Context is cancelled by Close; handlers end their sessions when it is.
func (l *Loop) Context() context.Context { return l.ctx }

// Serve accepts on ln until Close and runs handle for each connection in
// its own goroutine; handle need not close the connection, bounds its
// reads with p.Deadline and tells p when the session authenticates. It
// returns nil once Close has been called, net.ErrClosed if it already
// had, and an error only if ln is closed by someone else: any other
// accept error is waited out, so that a listener does not die of a
// passing shortage.
func (l *Loop) Serve(ln net.Listener, handle func(c net.Conn, p *Preauth)) error {
	l.mu.Lock()
	if l.ctx.Err() != nil {
		l.mu.Unlock()
		return net.ErrClosed
	}
	l.listeners[ln] = struct{}{}
	l.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("%s: accept: %w", l.cfg.Name, err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.cfg.Logger.Warn(l.cfg.Name+": accept failed, backing off", "err", err, "wait", backoff)
			select {
			case <-time.After(backoff):
			case <-l.ctx.Done():
				return nil
			}
			continue
		}
		backoff = 0
		p, ok := l.admit(c)
		if !ok {
			continue
		}
		l.mu.Lock()
		if l.ctx.Err() != nil {
			l.mu.Unlock()
			_ = c.Close()
			l.release(p)
			return nil
		}
		l.open[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.run(c, p, handle)
	}
}

// admit counts c in, unauthenticated, or refuses it (and closes it) when
// that would pass a cap.
func (l *Loop) admit(c net.Conn) (*Preauth, bool) {
	p := &Preauth{l: l, conn: c}
	p.deadline.Store(time.Now().Add(l.cfg.LoginTimeout).UnixNano())
	if l.conns.Add(1) > int64(l.cfg.MaxConns) {
		l.conns.Add(-1)
		l.refuse(c, "limit", l.cfg.Busy, "limit", l.cfg.MaxConns)
		return nil, false
	}
	var host netip.Addr
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok && l.cfg.MaxPerHost > 0 {
		host = a.AddrPort().Addr().Unmap()
	}
	l.mu.Lock()
	if host.IsValid() {
		if l.hosts[host] >= l.cfg.MaxPerHost {
			l.mu.Unlock()
			l.conns.Add(-1)
			l.refuse(c, "host", l.cfg.HostBusy, "limit", l.cfg.MaxPerHost)
			return nil, false
		}
		l.hosts[host]++
		p.host = host
	}
	var out *Preauth
	if l.waiting.Len() >= l.cfg.MaxUnauthenticated {
		out = l.waiting.Front().Value.(*Preauth)
		l.pushOut(out)
	}
	p.elem = l.waiting.PushBack(p)
	l.mu.Unlock()
	if out != nil {
		l.cfg.Refused("unauthenticated")
		l.cfg.Logger.Info(l.cfg.Name+": share of unauthenticated connections full, cutting the oldest short",
			"remote", out.conn.RemoteAddr().String(), "limit", l.cfg.MaxUnauthenticated)
	}
	return p, true
}

// pushOut takes p out of the unauthenticated share and ends its login
// time now: its session's read fails as on a login timeout, unless it
// authenticates first. (A read armed at this very moment may keep its
// deadline, which is never past the old login deadline.) Called with mu
// held.
func (l *Loop) pushOut(p *Preauth) {
	l.waiting.Remove(p.elem)
	p.elem = nil
	p.deadline.Store(time.Now().UnixNano())
	_ = p.conn.SetReadDeadline(time.Now())
}

// refuse tells c why it is turned away and closes it.
func (l *Loop) refuse(c net.Conn, reason, line string, attrs ...any) {
	l.cfg.Refused(reason)
	l.cfg.Logger.Warn(l.cfg.Name+": connection refused", append([]any{"reason", reason, "remote", c.RemoteAddr().String()}, attrs...)...)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(line))
	_ = c.Close()
}

// release counts p's connection out of every count it is in.
func (l *Loop) release(p *Preauth) {
	l.mu.Lock()
	p.ended = true
	if p.elem != nil {
		l.waiting.Remove(p.elem)
		p.elem = nil
	}
	if p.host.IsValid() {
		if l.hosts[p.host]--; l.hosts[p.host] <= 0 {
			delete(l.hosts, p.host)
		}
	}
	if p.user != "" {
		if l.users[p.user]--; l.users[p.user] <= 0 {
			delete(l.users, p.user)
		}
		p.user = ""
	}
	l.mu.Unlock()
	l.conns.Add(-1)
}

func (l *Loop) run(c net.Conn, p *Preauth, handle func(net.Conn, *Preauth)) {
	defer func() {
		l.mu.Lock()
		delete(l.open, c)
		l.mu.Unlock()
		// Counted out before the close, so that a peer seeing the
		// connection end sees it gone from Conns too.
		l.release(p)
		_ = c.Close()
		l.wg.Done()
	}()
	// A panic is a bug, but one a peer's bytes may trigger: it costs that
	// connection, not every session of the process.
	defer func() {
		if p := recover(); p != nil {
			l.cfg.Logger.Error(l.cfg.Name+": connection handler panicked", "remote", c.RemoteAddr().String(),
				"panic", p, "stack", string(debug.Stack()))
		}
	}()
	handle(c, p)
}

// Close stops every listener, cancels Context, closes live connections if
// the Config says so, and waits for every handler to return.
func (l *Loop) Close() {
	l.mu.Lock()
	l.stop()
	for ln := range l.listeners {
		_ = ln.Close()
	}
	if l.cfg.CloseConns {
		for c := range l.open {
			_ = c.Close()
		}
	}
	l.mu.Unlock()
	l.wg.Wait()
}

// Conns is the number of open connections.
func (l *Loop) Conns() int { return int(l.conns.Load()) }
