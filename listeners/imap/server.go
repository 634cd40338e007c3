package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rookery/rookery/listeners/accept"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/store/mailstore"
)

// Config is what a backend IMAP listener needs from its node. Zero values
// take the defaults given.
type Config struct {
	ServerName string // in the greeting
	Version    string // in the greeting and ID
	Store      *mailstore.Store
	// Login checks credentials (authzid empty for LOGIN) and says who the
	// session acts as; auth.MailPolicy.Login fits.
	Login func(authzid, authcid, password string) (auth.Identity, error)
	// Registry is told of every mailbox list change; nil is NopRegistry.
	Registry MailboxRegistry
	// Separator is the hierarchy separator clients see: '.' (default) or
	// '/' (Cyrus's unixhierarchysep: yes).
	Separator byte
	// DefaultACL is the ACL of a new top-level mailbox that is not a user's
	// (Cyrus's defaultacl); default "anyone\tlrs\t".
	DefaultACL string
	// AllowAllSubscribe lets users subscribe to mailboxes that do not exist
	// here (Cyrus's allowallsubscribe). A backend with a Registry always
	// does: in a murder the mailbox may live on another backend.
	AllowAllSubscribe bool

	// MaxMessageSize caps APPEND messages; default 100 MiB.
	MaxMessageSize int64
	// MaxLine caps a command line (literals excluded); default 64 KiB.
	MaxLine int
	// MaxString caps literals that are not messages; default 64 KiB.
	MaxString int64
	// IdleTimeout ends a connection that sends nothing for this long,
	// IDLE included; default 30 minutes.
	IdleTimeout time.Duration
	// WriteTimeout ends a connection that does not read what it is sent;
	// default 60 s.
	WriteTimeout time.Duration
	// MaxConns caps connections; default 1000.
	MaxConns int
	// MaxConnsPerUser caps the authenticated connections of one user
	// ("maxlogins_per_user"); one more login gets NO [LIMIT]. Zero: no
	// cap.
	MaxConnsPerUser int
	// MaxConnsPerHost caps the connections from one IP address, refused
	// before the greeting; zero for no cap. A backend behind frontends
	// sees few addresses: leave it off there.
	MaxConnsPerHost int
	// LoginTimeout ends a connection that has not logged in this long
	// after connecting, however busy; default 1 minute. Connections not
	// logged in may hold at most half of MaxConns.
	LoginTimeout time.Duration
	// FailedLoginPause delays the reply to a failed login; zero or
	// negative for none.
	FailedLoginPause time.Duration
	// Throttle refuses logins after repeated failures; nil: none.
	Throttle *auth.Throttle
	// DiskSpace reports the bytes free and in all where mail is stored,
	// for the server metadata entry a Cyrus frontend places new
	// mailboxes by; nil leaves the entry out.
	DiskSpace func() (avail, total uint64, err error)
	// TLS enables STARTTLS; connections from a tls.Listener (imaps) are
	// under TLS from their start. Nil: no TLS at all.
	TLS *tls.Config
	// Plaintext says whether LOGIN and AUTHENTICATE PLAIN may be used
	// before TLS on a connection from remote (allowplaintext, or a peer
	// that counts as secure); nil allows them on every connection.
	Plaintext func(remote net.Addr) bool
	// HandshakeTimeout bounds a TLS handshake; default 30 s.
	HandshakeTimeout time.Duration
	// Metrics counts commands; nil counts nothing.
	Metrics Metrics
	Logger  *slog.Logger
}

// Metrics receives the server's counts.
type Metrics interface {
	// Command counts a command received, by its upper-case name ("UID
	// FETCH" for UID commands), or "OTHER" for a name the server does not
	// know (so that clients cannot make up label values); done is called
	// once its reply is written, to time it.
	Command(name string) (done func())
	// LoginFailed counts a failed LOGIN or AUTHENTICATE.
	LoginFailed()
	// Refused counts a connection or login refused by a cap, by
	// accept.Config.Refused's reason.
	Refused(reason string)
}

type noMetrics struct{}

func (noMetrics) Command(string) func() { return func() {} }
func (noMetrics) LoginFailed()          {}
func (noMetrics) Refused(string)        {}

// Server serves IMAP on any number of listeners.
type Server struct {
	cfg    Config
	ns     namespace
	acc    *accept.Loop
	ctx    context.Context // acc's, cancelled by Close
	nextID atomic.Uint64

	// mboxMu serialises mailbox list changes, so that a registry sequence
	// (reserve, create, activate) is never interleaved with another.
	mboxMu sync.Mutex

	// fetchHook, set by tests only, runs inside FETCH between reading the
	// message records and reading their bodies.
	fetchHook func()

	sortKeys keyCache // SORT's and THREAD's keys of recently sorted messages
}

// NewServer makes a server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Login == nil {
		return nil, errors.New("imap: Store and Login are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = NopRegistry{}
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	switch cfg.Separator {
	case 0:
		cfg.Separator = '.'
	case '.', '/':
	default:
		return nil, fmt.Errorf("imap: separator %q is neither '.' nor '/'", cfg.Separator)
	}
	if cfg.DefaultACL == "" {
		cfg.DefaultACL = "anyone\tlrs\t"
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 100 << 20
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 64 << 10
	}
	if cfg.MaxString <= 0 {
		cfg.MaxString = 64 << 10
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1000
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "rookery"
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	acc := accept.New(accept.Config{Name: "imap", MaxConns: cfg.MaxConns,
		Busy:       "* BYE Too many connections\r\n",
		MaxPerHost: cfg.MaxConnsPerHost, HostBusy: "* BYE [UNAVAILABLE] Too many connections from your address\r\n",
		MaxPerUser: cfg.MaxConnsPerUser, LoginTimeout: cfg.LoginTimeout,
		Refused: cfg.Metrics.Refused, CloseConns: true, Logger: cfg.Logger})
	return &Server{cfg: cfg, ns: namespace{sep: cfg.Separator}, acc: acc, ctx: acc.Context()}, nil
}

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error { return s.acc.Serve(l, s.serveConn) }

// Close stops accepting, closes every connection and waits for their
// goroutines. Commands in progress finish their store writes first or
// fail; nothing acknowledged is lost.
func (s *Server) Close() error {
	s.acc.Close()
	return nil
}

// Conns is the number of open connections.
func (s *Server) Conns() int { return s.acc.Conns() }
