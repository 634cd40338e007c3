package auth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ErrThrottled refuses a login without checking its password: too many
// recent failures from its address or for its user. Listeners answer it
// as any failed login (after the pause, with NO), so a guesser learns
// nothing from it.
var ErrThrottled = errors.New("auth: too many failed logins, try later")

// Throttle counts failed logins per client address and per user, across
// every listener it is given to. Once either reaches Failures within
// Window, logins from that address or for that user are refused unchecked
// until Window has passed since the failure that tripped it. A nil
// *Throttle lets everything through.
//
// A user's block does not apply at the addresses she logged in from
// lately (knownFor): otherwise anyone who knows her name could lock her
// out by failing on purpose. Guessing from new addresses stays blocked,
// and the guesser's own address is blocked by its own count. Exempt
// addresses are shared (a webmail), so they never become known.
type Throttle struct {
	failures int
	window   time.Duration
	exempt   []netip.Prefix
	log      *slog.Logger
	now      func() time.Time
	tripped  atomic.Uint64

	mu      sync.Mutex
	entries map[string]*throttleEntry
	known   map[string][]knownAddr // by user, newest last
}

// knownAddr is an address a user logged in from, and when she last did.
type knownAddr struct {
	host string
	at   time.Time
}

// A user's logins from an address keep it known for knownFor; she keeps
// at most maxKnown of them.
const (
	knownFor = 30 * 24 * time.Hour
	maxKnown = 8
)

type throttleEntry struct {
	start   time.Time // of the counting window
	count   int
	blocked time.Time // refused until then
}

// maxThrottleEntries bounds the memory a flood of distinct addresses or
// names can take; past it, expired entries are swept.
const maxThrottleEntries = 100000

// NewThrottle returns a throttle that trips after failures failed logins
// within window; failures <= 0 returns nil (no throttling). Addresses in
// exempt (a webmail, the frontends in front of a backend) are neither
// counted nor blocked by address; their users still are.
func NewThrottle(failures int, window time.Duration, exempt []netip.Prefix, log *slog.Logger) *Throttle {
	if failures <= 0 || window <= 0 {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Throttle{failures: failures, window: window, exempt: exempt, log: log, now: time.Now, entries: make(map[string]*throttleEntry), known: make(map[string][]knownAddr)}
}

// Tripped counts how often an address or a user was blocked, for metrics.
func (t *Throttle) Tripped() uint64 {
	if t == nil {
		return 0
	}
	return t.tripped.Load()
}

// Check runs verify for a login by user from remote (the client's
// address, "host:port"), unless either is
// blocked, and counts its failure if it was a wrong password (a source
// that could not be asked, or a refused authorization, is no guess). A
// right password clears the user's count (not a block on it), not the
// address's: one account of its own must not let a guesser reset its
// address.
func (t *Throttle) Check(remote, user string, verify func() error) error {
	if t == nil {
		return verify()
	}
	host := hostOf(remote)
	ipKey, userKey := "ip "+host, "user "+user
	exempt := t.exempted(remote)
	if exempt {
		ipKey = ""
	}
	now := t.now()
	t.mu.Lock()
	blocked := t.blockedLocked(ipKey, now) ||
		t.blockedLocked(userKey, now) && (exempt || !t.knownLocked(user, host, now))
	t.mu.Unlock()
	if blocked {
		return fmt.Errorf("%w (%s)", ErrThrottled, host)
	}
	err := verify()
	switch {
	case err == nil:
		t.mu.Lock()
		// Her login at a known address leaves a block on her name
		// standing for everyone else.
		if !t.blockedLocked(userKey, now) {
			delete(t.entries, userKey)
		}
		if !exempt {
			t.rememberLocked(user, host, now)
		}
		t.mu.Unlock()
	case errors.Is(err, ErrBadCredentials):
		t.mu.Lock()
		if ipKey != "" {
			t.failLocked(ipKey, now, "remote", hostOf(remote))
		}
		t.failLocked(userKey, now, "user", user)
		t.mu.Unlock()
	}
	return err
}

// knownLocked reports whether user logged in from host within knownFor.
func (t *Throttle) knownLocked(user, host string, now time.Time) bool {
	for _, k := range t.known[user] {
		if k.host == host && now.Sub(k.at) < knownFor {
			return true
		}
	}
	return false
}

// rememberLocked records a login of user from host, dropping her oldest
// address past maxKnown.
func (t *Throttle) rememberLocked(user, host string, now time.Time) {
	ks := t.known[user]
	for i, k := range ks {
		if k.host == host {
			ks = append(ks[:i], ks[i+1:]...)
			break
		}
	}
	if len(ks) >= maxKnown {
		ks = ks[1:]
	}
	if _, ok := t.known[user]; !ok && len(t.known) >= maxThrottleEntries {
		t.sweepKnownLocked(now)
	}
	t.known[user] = append(ks, knownAddr{host: host, at: now})
}

// sweepKnownLocked forgets users whose newest login is past knownFor,
// and, if that frees nothing, any users: a forgotten address is only
// subject to its user's block again.
func (t *Throttle) sweepKnownLocked(now time.Time) {
	for u, ks := range t.known {
		if now.Sub(ks[len(ks)-1].at) >= knownFor {
			delete(t.known, u)
		}
	}
	for u := range t.known {
		if len(t.known) < maxThrottleEntries {
			break
		}
		delete(t.known, u)
	}
}

func (t *Throttle) exempted(remote string) bool {
	ip, err := netip.ParseAddr(hostOf(remote))
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range t.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (t *Throttle) blockedLocked(key string, now time.Time) bool {
	e := t.entries[key]
	return e != nil && now.Before(e.blocked)
}

func (t *Throttle) failLocked(key string, now time.Time, attr, value string) {
	e := t.entries[key]
	if e == nil {
		if len(t.entries) >= maxThrottleEntries {
			t.sweepLocked(now)
		}
		e = &throttleEntry{start: now}
		t.entries[key] = e
	}
	if now.Sub(e.start) > t.window {
		e.start, e.count = now, 0
	}
	e.count++
	if e.count >= t.failures && !now.Before(e.blocked) {
		e.blocked = now.Add(t.window)
		e.start, e.count = now, 0
		t.tripped.Add(1)
		t.log.Warn("auth: failed-login throttle tripped: logins refused unchecked", attr, value,
			"failures", t.failures, "window", t.window, "until", e.blocked.Format(time.RFC3339))
	}
}

// sweepLocked drops entries with no block and no count in the window;
// if a flood leaves none to drop, the oldest windows go, as counts lost
// are better than memory without bound.
func (t *Throttle) sweepLocked(now time.Time) {
	for k, e := range t.entries {
		if !now.Before(e.blocked) && now.Sub(e.start) > t.window {
			delete(t.entries, k)
		}
	}
	for k, e := range t.entries {
		if len(t.entries) < maxThrottleEntries {
			break
		}
		if !now.Before(e.blocked) {
			delete(t.entries, k)
		}
	}
}

// Verify is Check for a Checker's Verify.
func (t *Throttle) Verify(remote string, c Checker, name, password string) error {
	return t.Check(remote, name, func() error { return c.Verify(name, password) })
}

// hostOf is an address ("host:port") without its port: a client's next
// connection comes from another port.
func hostOf(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
