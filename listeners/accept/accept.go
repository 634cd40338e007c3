// Package accept runs the accept loop that every Rookery listener shares:
// the MUPDATE master's and replica's, the backend's IMAP, POP3 and LMTP
// servers, and the frontend's proxies. It caps open connections, rides out
// accept errors such as running out of file descriptors, turns a panic in
// a connection's handler into an error log and the end of that connection
// only, and on Close stops accepting and waits for every connection's
// handler to return.
package accept

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
}

// New returns a loop that is not yet accepting.
func New(cfg Config) *Loop {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Loop{cfg: cfg, ctx: ctx, stop: stop,
		listeners: make(map[net.Listener]struct{}),
		open:      make(map[net.Conn]struct{})}
}

// Context is cancelled by Close; handlers end their sessions when it is.
func (l *Loop) Context() context.Context { return l.ctx }

// Serve accepts on ln until Close and runs handle for each connection in
// its own goroutine; handle need not close the connection. It returns nil
// once Close has been called, net.ErrClosed if it already had, and an
// error only if ln is closed by someone else: any other accept error is
// waited out, so that a listener does not die of a passing shortage.
func (l *Loop) Serve(ln net.Listener, handle func(net.Conn)) error {
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
		if l.conns.Add(1) > int64(l.cfg.MaxConns) {
			l.conns.Add(-1)
			l.cfg.Logger.Warn(l.cfg.Name+": connection refused: limit reached", "remote", c.RemoteAddr().String(), "limit", l.cfg.MaxConns)
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write([]byte(l.cfg.Busy))
			_ = c.Close()
			continue
		}
		l.mu.Lock()
		if l.ctx.Err() != nil {
			l.mu.Unlock()
			_ = c.Close()
			l.conns.Add(-1)
			return nil
		}
		l.open[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.run(c, handle)
	}
}

func (l *Loop) run(c net.Conn, handle func(net.Conn)) {
	defer func() {
		l.mu.Lock()
		delete(l.open, c)
		l.mu.Unlock()
		// Counted out before the close, so that a peer seeing the
		// connection end sees it gone from Conns too.
		l.conns.Add(-1)
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
	handle(c)
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
