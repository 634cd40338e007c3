// Package imapproxy is the frontend role's IMAP listener: it logs clients
// in against the node's users, finds each mailbox's backend in the node's
// mailbox list, and proxies commands to backends (Rookery or Cyrus) as the
// proxy user acting for the client, as a Cyrus Murder frontend does.
//
// # Sessions
//
// A session is one goroutine that reads a client command, decides where
// it goes and pipes it, then relays the backend's answer; byte pumping is
// done by that same goroutine with io.Copy-style loops, and IDLE adds a
// second goroutine for the client side while it lasts. Routing lookups
// and session events (login, selection, backend connections opened and
// closed) go through a frontend.Session: on a node that is the session's
// proxy-session actor (Config.NewSession), so the node knows every
// session's state; message bytes never go through it.
//
// # What is streamed
//
// Message bodies never sit whole in memory: client literals in proxied
// commands (APPEND) and literals in backend responses (FETCH) are copied
// with bounded buffers, and only the tag, the command name and mailbox
// arguments are parsed. Commands the proxy answers itself (LOGIN, LIST,
// ...) are parsed whole, their literals bounded by Limits.MaxLine.
//
// # When a backend breaks
//
// A backend that fails (hangs up, stalls past Limits.BackendTimeout,
// sends what is not IMAP) is dropped. The client's command gets NO
// [UNAVAILABLE] if the session can go on; if the backend held the
// selected mailbox, or part of a response had already been relayed (the
// client's stream cannot be repaired), the session ends with BYE. The
// cause is logged, never sent to the client.
package imapproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rookery/rookery/listeners/accept"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store"
)

// Limits bound what one client may cost. Zero values take the defaults.
type Limits struct {
	// MaxLine is the longest command line (without its literals), and
	// the largest literal in a command the proxy parses itself (LOGIN
	// arguments, mailbox names). Default 64 KiB.
	MaxLine int
	// MaxLiteral is the largest literal in a proxied command, that is a
	// message in APPEND; advertised as APPENDLIMIT. Default 256 MiB.
	MaxLiteral int64
	// MaxConns caps concurrent client connections; further ones get
	// "* BYE" at once. Default 10000.
	MaxConns int
	// MaxConnsPerUser caps the logged-in sessions of one user
	// ("maxlogins_per_user"); one more login gets NO [LIMIT]. Zero: no
	// cap.
	MaxConnsPerUser int
	// MaxConnsPerHost caps the connections from one IP address
	// ("maxconns_per_host"); one more gets "* BYE [UNAVAILABLE]" instead
	// of the greeting. Zero: no cap.
	MaxConnsPerHost int
	// LoginTimeout ends a session that has not logged in this long after
	// connecting. Default 1 minute. Sessions not logged in may hold at
	// most half of MaxConns.
	LoginTimeout time.Duration
	// IdleTimeout ends a session whose client sends nothing for this long
	// (RFC 3501 asks for at least 30 minutes, also during IDLE).
	// Default 30 minutes.
	IdleTimeout time.Duration
	// ConnectTimeout bounds connecting and logging in to a backend
	// (Cyrus's client_timeout). Default 10 s.
	ConnectTimeout time.Duration
	// BackendTimeout drops a backend that stays silent this long in the
	// middle of a command or a response, counted from its last byte (a
	// slow answer that keeps moving is not cut). Default 5 minutes; a
	// Cyrus frontend has no such bound once logged in to a backend.
	BackendTimeout time.Duration
	// WriteTimeout drops a client that stops reading for this long.
	// Default 2 minutes.
	WriteTimeout time.Duration
	// FailedLoginPause delays the answer to a failed login
	// ("failedloginpause"). Zero means no pause.
	FailedLoginPause time.Duration
	// Throttle refuses logins after repeated failures; nil: none.
	Throttle *auth.Throttle
	// NotifyPoll is how often a NOTIFY client's mailboxes are asked for
	// their STATUS, after its commands and while it IDLEs; while it
	// IDLEs, the list's changes are looked at as often. Default 10 s.
	NotifyPoll time.Duration
}

func (l *Limits) setDefaults() {
	if l.MaxLine <= 0 {
		l.MaxLine = 64 << 10
	}
	if l.MaxLiteral <= 0 {
		l.MaxLiteral = 256 << 20
	}
	if l.MaxConns <= 0 {
		l.MaxConns = 10000
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 30 * time.Minute
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = 10 * time.Second
	}
	if l.BackendTimeout <= 0 {
		l.BackendTimeout = 5 * time.Minute
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 2 * time.Minute
	}
	if l.NotifyPoll <= 0 {
		l.NotifyPoll = 10 * time.Second
	}
}

// RookeryPassthrough are the extensions Rookery backends offer beyond
// DefaultPassthrough that pass through the proxy unchanged: a frontend
// whose backends are all Rookery may announce them too.
var RookeryPassthrough = []string{"SEARCHRES", "CONTEXT=SEARCH", "CONTEXT=SORT"}

// DefaultPassthrough are the extensions a frontend advertises on top of
// its own because backends implement them and the proxy only pipes them:
// those both Rookery and Cyrus 3.6 backends offer. SEARCHRES is left out
// although Rookery backends have it: Cyrus 3.6 does not. A murder of
// Cyrus backends only may add theirs; a backend lacking an advertised
// one is logged.
var DefaultPassthrough = []string{
	"ACL", "CONDSTORE", "MOVE", "MULTIAPPEND", "QRESYNC", "QUOTA", "RIGHTS=kxten",
	"UIDPLUS", "UNSELECT",
	"SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "ESEARCH", "ESORT", "WITHIN",
	"STATUS=SIZE", "BINARY", "METADATA", "OBJECTID", "CREATE-SPECIAL-USE", "CATENATE",
	"SAVEDATE",
}

// Config is what an IMAP frontend needs.
type Config struct {
	// ServerName is the node's name, shown in the greeting.
	ServerName string
	// DB is the node's mailbox list, the only routing source.
	DB *store.DB
	// Kick, if set, makes the node's replica catch up with its master;
	// the proxy calls it when a mailbox is missing and after a command
	// that changed the mailbox list, as Cyrus frontends kick their slave.
	Kick func(context.Context) error
	// Resolve maps a server name to its addresses; nil means
	// frontend.CyrusResolve.
	Resolve frontend.Resolver
	// Users checks client logins: the users file, and optionally the
	// user's INBOX backend (INBOXCheck).
	Users auth.Checker
	// Admins are users with every right in LIST filtering ("admins").
	Admins []string
	// Proxy is how the frontend logs in to backends.
	Proxy auth.ProxyCredentials
	// ServerList are the backends a new top-level mailbox may go to
	// ("serverlist"); the one holding the fewest mailboxes is chosen.
	// Empty means every server that holds mailboxes.
	ServerList []string
	// Backends, if set and ServerList is empty, names more candidates
	// for new top-level mailboxes: backends known to be up (by gossip)
	// that may hold no mailbox yet.
	Backends func() []string
	// Separator is the hierarchy separator clients see: '.' (the
	// default) or '/' (Cyrus's unixhierarchysep), as the backends have.
	Separator byte
	// Passthrough are the backend extensions advertised to clients; nil
	// means DefaultPassthrough.
	Passthrough []string
	// TLS enables STARTTLS; with it, and on listeners that already
	// speak TLS (implicit TLS, port 993), plaintext logins are allowed
	// only over TLS unless AllowPlaintext is set.
	TLS *tls.Config
	// AllowPlaintext allows LOGIN and AUTHENTICATE PLAIN without TLS
	// ("allowplaintext").
	AllowPlaintext bool
	// BackendTLS is how the proxy takes up a backend's STARTTLS: when
	// the backend's server name asks for it ("host:port/tls") or when the
	// backend offers no plaintext login before TLS. Nil: never; such
	// backends are then unavailable.
	BackendTLS *tls.Config
	Limits     Limits
	// Metrics counts commands and backend connections; nil counts
	// nothing.
	Metrics Metrics
	// NewSession, if set, gives each client connection its routing
	// session (the node's proxy-session actor), called with "imap"; it
	// then counts backend connections instead of Metrics. Nil reads DB
	// directly.
	NewSession func(protocol string) frontend.Session
	Logger     *slog.Logger // nil discards
}

// Metrics receives the proxy's counts.
type Metrics interface {
	// Command counts a command received, by its upper-case name ("UID
	// FETCH" for UID commands), or "OTHER" for a name the proxy does not
	// know (so that clients cannot make up label values); done is called
	// once its reply is written, to time it.
	Command(name string) (done func())
	// LoginFailed counts a failed LOGIN or AUTHENTICATE.
	LoginFailed()
	// Proxying counts a session's connection to backend: +1 when it
	// opens, -1 when it closes (without Config.NewSession).
	Proxying(backend string, delta int)
	// Refused counts a connection or login refused by a cap, by
	// accept.Config.Refused's reason.
	Refused(reason string)
}

type noMetrics struct{}

func (noMetrics) Command(string) func() { return func() {} }
func (noMetrics) LoginFailed()          {}
func (noMetrics) Proxying(string, int)  {}
func (noMetrics) Refused(string)        {}

// Server is an IMAP frontend. Serve may be called for several listeners.
type Server struct {
	cfg    Config
	log    *slog.Logger
	acc    *accept.Loop
	ctx    context.Context
	nextID atomic.Uint64
	names  nameHub // what sessions did that NOTIFY tells others (notifynames.go)
}

// NewServer checks cfg and returns a server that has not started
// listening.
func NewServer(cfg Config) (*Server, error) {
	if cfg.DB == nil || cfg.Users == nil {
		return nil, errors.New("imapproxy: config needs DB and Users")
	}
	if cfg.Resolve == nil {
		cfg.Resolve = frontend.CyrusResolve
	}
	switch cfg.Separator {
	case 0:
		cfg.Separator = '.'
	case '.', '/':
	default:
		return nil, errors.New("imapproxy: the separator must be '.' or '/'")
	}
	if cfg.Passthrough == nil {
		cfg.Passthrough = DefaultPassthrough
	}
	if cfg.Proxy.Authname == "" {
		cfg.Proxy.Authname = "proxy"
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "rookery"
	}
	cfg.Limits.setDefaults()
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.NewSession == nil {
		table := &frontend.Table{DB: cfg.DB, Kick: cfg.Kick}
		cfg.NewSession = func(string) frontend.Session { return table.Session(cfg.Metrics.Proxying) }
	}
	acc := accept.New(accept.Config{Name: "imapproxy", MaxConns: cfg.Limits.MaxConns, Busy: "* BYE Too many open connections\r\n",
		MaxPerHost: cfg.Limits.MaxConnsPerHost, HostBusy: "* BYE [UNAVAILABLE] Too many open connections from your address\r\n",
		MaxPerUser: cfg.Limits.MaxConnsPerUser, LoginTimeout: cfg.Limits.LoginTimeout,
		Refused: cfg.Metrics.Refused, Logger: log})
	return &Server{cfg: cfg, log: log, acc: acc, ctx: acc.Context()}, nil
}

// Serve accepts clients on ln until Close; connections from a
// tls.Listener are implicit-TLS sessions.
func (s *Server) Serve(ln net.Listener) error {
	return s.acc.Serve(ln, func(c net.Conn, p *accept.Preauth) {
		ss := newSession(s, c, p)
		stop := context.AfterFunc(s.ctx, ss.shutdown)
		defer stop()
		ss.serve()
	})
}

// Close stops every listener and ends every session, and returns once
// they are gone.
func (s *Server) Close() error {
	s.acc.Close()
	return nil
}

// Conns is the number of open client connections.
func (s *Server) Conns() int { return s.acc.Conns() }

// capabilities lists what the frontend offers; full is the list after
// login (and for the CAPABILITY command, as Cyrus answers it). Once authed,
// STARTTLS and the login mechanisms are gone: neither may be used then.
func (s *Server) capabilities(full, tlsActive, authed bool) string {
	caps := []string{"IMAP4rev1", "LITERAL+", "ID", "ENABLE"}
	if full {
		caps = append(caps, "IDLE", "NAMESPACE", "CHILDREN", "SPECIAL-USE")
		// Answered here from the mailbox list and each backend (listext.go).
		caps = append(caps, "LIST-EXTENDED", "LIST-STATUS", "XLIST", "NOTIFY")
		caps = append(caps, s.cfg.Passthrough...)
		caps = append(caps, "APPENDLIMIT="+strconv.FormatInt(s.cfg.Limits.MaxLiteral, 10))
	}
	if authed {
		return strings.Join(caps, " ")
	}
	if s.cfg.TLS != nil && !tlsActive {
		caps = append(caps, "STARTTLS")
	}
	if s.plaintextOK(tlsActive) {
		caps = append(caps, "AUTH=PLAIN", "SASL-IR")
	} else {
		caps = append(caps, "LOGINDISABLED")
	}
	return strings.Join(caps, " ")
}

// plaintextOK reports whether LOGIN and AUTHENTICATE PLAIN are allowed.
func (s *Server) plaintextOK(tlsActive bool) bool {
	return tlsActive || s.cfg.AllowPlaintext
}
