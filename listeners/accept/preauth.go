package accept

import (
	"container/list"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// Preauth is one connection's standing in its Loop: unauthenticated,
// with a login deadline and a place in the unauthenticated share, until
// its session calls Authenticated. Its methods may be called from any
// goroutine; on a nil Preauth they treat the connection as authenticated
// and uncapped (for sessions run outside a Loop, as fuzz targets do).
type Preauth struct {
	l        *Loop
	conn     net.Conn
	deadline atomic.Int64 // the login deadline, in Unix nanoseconds
	authed   atomic.Bool  // set under Loop.mu

	// Guarded by Loop.mu.
	elem  *list.Element // in Loop.waiting, while in the share
	host  netip.Addr    // counted in Loop.hosts, if valid
	user  string        // counted in Loop.users, if set
	ended bool          // counted out of the loop
}

// Authenticated tells the loop that the session logged in as user: the
// connection leaves the unauthenticated share and its login deadline,
// and counts as one of user's connections. It returns false, and leaves
// the connection as it was, when user already has Config.MaxPerUser
// connections: the session should then refuse the login. A second call
// (a session that authenticates twice) changes nothing.
func (p *Preauth) Authenticated(user string) bool {
	if p == nil {
		return true
	}
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if p.authed.Load() || p.ended {
		return true
	}
	if l.cfg.MaxPerUser > 0 {
		if l.users[user] >= l.cfg.MaxPerUser {
			l.cfg.Refused("user")
			return false
		}
		l.users[user]++
		p.user = user
	}
	p.authed.Store(true)
	if p.elem != nil {
		l.waiting.Remove(p.elem)
		p.elem = nil
	}
	return true
}

// Deadline is the read deadline for a read that may wait idle for up to
// idle: idle from now, but, while the connection has not authenticated,
// no later than its login deadline.
func (p *Preauth) Deadline(idle time.Duration) time.Time {
	d := time.Now().Add(idle)
	if p != nil && !p.authed.Load() {
		if login := time.Unix(0, p.deadline.Load()); login.Before(d) {
			return login
		}
	}
	return d
}

// LoginExpired reports whether the connection has not authenticated and
// its login deadline has passed: a read that timed out then timed out for
// that reason, not for being idle.
func (p *Preauth) LoginExpired() bool {
	return p != nil && !p.authed.Load() && time.Now().UnixNano() >= p.deadline.Load()
}
