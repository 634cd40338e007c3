package mupdate

import (
	"io"
	"sync"
)

// Target is the master a long-lived client (a replica, a backend's pusher)
// talks to. Gossip may point it elsewhere at any time; Set then closes the
// connection made to the old address, so the client's loop reconnects to
// the new one. Safe for concurrent use.
type Target struct {
	mu      sync.Mutex
	addr    string
	cur     io.Closer
	changed chan struct{}
}

// NewTarget returns a target at addr ("" means not known yet).
func NewTarget(addr string) *Target {
	return &Target{addr: addr, changed: make(chan struct{}, 1)}
}

// Addr is the current address.
func (t *Target) Addr() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addr
}

// Set points the target at addr; a change drops the current connection.
func (t *Target) Set(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if addr == t.addr {
		return
	}
	t.addr = addr
	if t.cur != nil {
		t.cur.Close()
	}
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// Changed is signalled after each Set that changed the address.
func (t *Target) Changed() <-chan struct{} { return t.changed }

// Attach registers the connection made to addr, to be closed if the target
// moves; it reports false (and closes c) if the target already moved away
// from addr. The returned function detaches c once it is done with.
func (t *Target) Attach(addr string, c io.Closer) (detach func(), ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if addr != t.addr {
		c.Close()
		return func() {}, false
	}
	t.cur = c
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.cur == c {
			t.cur = nil
		}
	}, true
}
