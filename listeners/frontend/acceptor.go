package frontend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Acceptor runs a protocol's listeners: it accepts connections, caps how
// many are open, and on Close stops accepting and waits for every
// connection's handler to return.
type Acceptor struct {
	name string
	max  int
	busy string
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	wg        sync.WaitGroup
	conns     atomic.Int64
}

// NewAcceptor returns an acceptor for protocol name (used in logs and
// errors) that admits at most max connections at once; a connection over
// the limit is sent busy (a whole line, CRLF included) and closed.
func NewAcceptor(name string, max int, busy string, log *slog.Logger) *Acceptor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Acceptor{name: name, max: max, busy: busy, log: log, ctx: ctx, stop: stop,
		listeners: map[net.Listener]struct{}{}}
}

// Context is cancelled by Close; handlers end their sessions when it is.
func (a *Acceptor) Context() context.Context { return a.ctx }

// Serve accepts on ln until Close and runs handle for each connection in
// its own goroutine; handle need not close the connection. Temporary
// accept errors are retried with a growing pause.
func (a *Acceptor) Serve(ln net.Listener, handle func(net.Conn)) error {
	a.mu.Lock()
	if a.ctx.Err() != nil {
		a.mu.Unlock()
		return net.ErrClosed
	}
	a.listeners[ln] = struct{}{}
	a.mu.Unlock()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if a.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				a.log.Warn(a.name+": accept failed, backing off", "err", err, "wait", backoff)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("%s: accept: %w", a.name, err)
		}
		backoff = 0
		a.wg.Add(1)
		go a.run(c, handle)
	}
}

func (a *Acceptor) run(c net.Conn, handle func(net.Conn)) {
	defer a.wg.Done()
	defer c.Close()
	if a.conns.Add(1) > int64(a.max) {
		a.conns.Add(-1)
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write([]byte(a.busy))
		return
	}
	defer a.conns.Add(-1)
	if a.ctx.Err() != nil {
		return
	}
	handle(c)
}

// Close stops every listener, cancels Context, and waits for every
// handler to return.
func (a *Acceptor) Close() {
	a.mu.Lock()
	a.stop()
	for ln := range a.listeners {
		_ = ln.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// Conns is the number of open connections.
func (a *Acceptor) Conns() int { return int(a.conns.Load()) }
