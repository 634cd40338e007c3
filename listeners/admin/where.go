package admin

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/store"
)

// Locator answers /where from the master, this node's list and the
// backends' addresses. Its Where method is a Config.Where.
type Locator struct {
	// Master returns the master's MUPDATE address, "" when none is known.
	Master func() string
	// Client is how to log in to the master.
	Client mupdate.ClientConfig
	// Local looks a name up in this node's list (a *store.DB's Get); nil
	// on a node without one.
	Local func(name string) (store.Entry, bool, error)
	// BackendAddr is the address clients reach a backend's server name
	// at, "" when unknown.
	BackendAddr func(server string) string
	// DialTimeout bounds the check that the backend is up; default 1s.
	DialTimeout time.Duration
}

// Where looks mailbox up everywhere; failures to ask are reported in the
// answer, not as an error, so the operator sees whatever could be found.
func (l *Locator) Where(ctx context.Context, mailbox string) (*Where, error) {
	w := &Where{Mailbox: mailbox}
	if l.Master != nil {
		w.MasterAddr = l.Master()
	}
	if w.MasterAddr == "" {
		w.MasterError = "no master known"
	} else if rec, err := l.find(ctx, w.MasterAddr, mailbox); err != nil {
		w.MasterError = err.Error()
	} else if rec != nil {
		w.Master = &Entry{Kind: rec.Kind, Location: rec.Location, ACL: rec.ACL}
	}
	if l.Local != nil {
		e, ok, err := l.Local(mailbox)
		switch {
		case err != nil:
			w.LocalError = err.Error()
		case ok:
			w.Local = &Entry{Kind: kindName(e.Kind), Location: e.Location, ACL: e.ACL}
		}
	}
	// The master's word wins; the local copy may lag behind it.
	switch {
	case w.Master != nil:
		w.Backend = store.Entry{Location: w.Master.Location}.Server()
	case w.Local != nil:
		w.Backend = store.Entry{Location: w.Local.Location}.Server()
	}
	if w.Backend == "" {
		return w, nil
	}
	if l.BackendAddr != nil {
		w.BackendAddr = l.BackendAddr(w.Backend)
	}
	if w.BackendAddr == "" {
		w.BackendError = "address unknown"
		return w, nil
	}
	timeout := l.DialTimeout
	if timeout <= 0 {
		timeout = time.Second
	}
	d := net.Dialer{Timeout: timeout}
	if c, err := d.DialContext(ctx, "tcp", w.BackendAddr); err != nil {
		w.BackendError = err.Error()
	} else {
		w.BackendUp = true
		c.Close()
	}
	return w, nil
}

// findTimeout bounds a FIND when the request has no deadline.
const findTimeout = 10 * time.Second

// find asks the master with FIND on a connection of its own.
func (l *Locator) find(ctx context.Context, addr, mailbox string) (*mupdate.Record, error) {
	c, err := mupdate.Dial(ctx, addr, l.Client)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// Dial's timeout covers the handshake only.
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(findTimeout)
	}
	_ = c.SetDeadline(dl)
	rec, err := c.Find(mailbox)
	if err != nil {
		return nil, fmt.Errorf("admin: FIND at %s: %w", addr, err)
	}
	_ = c.Logout()
	return rec, nil
}

func kindName(k store.Kind) string {
	switch k {
	case store.Active:
		return "MAILBOX"
	case store.Reserved:
		return "RESERVE"
	}
	return k.String()
}
