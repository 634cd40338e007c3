package frontend

import (
	"context"
	"sync"

	"github.com/rookery/rookery/store"
)

// Session is what a proxy session (one client connection) asks and tells
// about its routing: lookups in the node's mailbox list, and the events
// the node keeps per session (login, selection, backend connections).
// Message bytes never go through it. A node implements it with a
// proxy-session actor; without a node, Table.Session is used.
type Session interface {
	// Lookup is Table.Lookup (with the replica kick on a miss).
	Lookup(ctx context.Context, name string) (store.Entry, error)
	// LookupNoKick is Table.LookupNoKick.
	LookupNoKick(name string) (store.Entry, error)
	// LoggedIn records the session's user.
	LoggedIn(user string)
	// Selected records the mailbox selected last and its server; ""
	// when a selection failed.
	Selected(mailbox, server string)
	// Opened and Closed record a connection to a backend server opening
	// and closing; they feed the proxied-sessions count.
	Opened(server string)
	Closed(server string)
	// End is called once when the connection is gone; backends still
	// recorded as open are counted as closed.
	End()
}

// Session returns a Session that reads t directly and passes backend
// connections to proxying (+1 on open, -1 on close); what the listeners
// use when no node provides sessions.
func (t *Table) Session(proxying func(server string, delta int)) Session {
	return &directSession{t: t, proxying: proxying}
}

type directSession struct {
	t        *Table
	proxying func(server string, delta int)
	mu       sync.Mutex
	open     map[string]int // backend connections by server
}

func (d *directSession) Lookup(ctx context.Context, name string) (store.Entry, error) {
	return d.t.Lookup(ctx, name)
}

func (d *directSession) LookupNoKick(name string) (store.Entry, error) {
	return d.t.LookupNoKick(name)
}

func (d *directSession) LoggedIn(string)         {}
func (d *directSession) Selected(string, string) {}

func (d *directSession) Opened(server string) {
	d.mu.Lock()
	if d.open == nil {
		d.open = map[string]int{}
	}
	d.open[server]++
	d.mu.Unlock()
	d.proxying(server, 1)
}

func (d *directSession) Closed(server string) {
	d.mu.Lock()
	n := d.open[server]
	if n > 0 {
		d.open[server] = n - 1
	}
	d.mu.Unlock()
	if n > 0 {
		d.proxying(server, -1)
	}
}

func (d *directSession) End() {
	d.mu.Lock()
	open := d.open
	d.open = nil
	d.mu.Unlock()
	for server, n := range open {
		if n > 0 {
			d.proxying(server, -n)
		}
	}
}
