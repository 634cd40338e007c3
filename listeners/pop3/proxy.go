package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rookery/rookery/listeners/accept"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store"
)

// Limits bound what one POP3 client may cost. Zero values take the
// defaults.
type Limits struct {
	// MaxLine is the longest command line before login. Default 1024.
	MaxLine int
	// MaxConns caps concurrent connections. Default 10000.
	MaxConns int
	// MaxConnsPerUser caps the logged-in sessions of one user; zero for
	// no cap.
	MaxConnsPerUser int
	// MaxConnsPerHost caps the connections from one IP address, refused
	// before the greeting; zero for no cap.
	MaxConnsPerHost int
	// LoginTimeout ends a connection that has not logged in this long
	// after connecting. Default 1 minute. Connections not logged in may
	// hold at most half of MaxConns.
	LoginTimeout time.Duration
	// IdleTimeout ends a session in which no bytes move, either way, for
	// this long (RFC 1939 asks for at least 10 minutes). Default 10
	// minutes.
	IdleTimeout time.Duration
	// ConnectTimeout bounds connecting and logging in to the backend.
	// Default 10 s.
	ConnectTimeout time.Duration
	// WriteTimeout drops a client that stops reading. Default 2 minutes.
	WriteTimeout time.Duration
	// FailedLoginPause delays the answer to a failed login.
	FailedLoginPause time.Duration
	// Throttle refuses logins after repeated failures; nil: none.
	Throttle *auth.Throttle
}

func (l *Limits) setDefaults() {
	if l.MaxLine <= 0 {
		l.MaxLine = 1024
	}
	if l.MaxConns <= 0 {
		l.MaxConns = 10000
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 10 * time.Minute
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = 10 * time.Second
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 2 * time.Minute
	}
}

// ProxyConfig is what a POP3 frontend needs.
type ProxyConfig struct {
	// ServerName is the node's name, shown in the greeting.
	ServerName string
	// DB is the node's mailbox list, where the user's INBOX is found.
	DB *store.DB
	// Resolve maps a server name to its addresses; nil means
	// frontend.CyrusResolve.
	Resolve frontend.Resolver
	// Users checks logins (see imapproxy.Config.Users).
	Users auth.Checker
	// Proxy is how the frontend logs in to backends.
	Proxy auth.ProxyCredentials
	// TLS enables STLS; with it, and on implicit-TLS listeners (port
	// 995), plaintext logins need TLS unless AllowPlaintext is set.
	TLS            *tls.Config
	AllowPlaintext bool
	// BackendTLS is how the proxy takes up a backend's STLS: when the
	// backend's server name asks for it ("host:port/tls") or when the
	// backend offers no plaintext login before TLS. Nil: never.
	BackendTLS *tls.Config
	Limits     Limits
	// Metrics counts commands before login and proxied sessions; nil
	// counts nothing.
	Metrics Metrics
	// NewSession, if set, gives each client connection its routing
	// session (the node's proxy-session actor), called with "pop3"; it
	// then counts the proxied session instead of Metrics. Nil reads DB
	// directly.
	NewSession func(protocol string) frontend.Session
	Logger     *slog.Logger // nil discards
}

// Proxy is a POP3 frontend. Login is checked locally; then the session is
// handed to the backend holding the user's INBOX, logged in there as the
// proxy user for the client, and bytes are piped both ways.
type Proxy struct {
	cfg    ProxyConfig
	log    *slog.Logger
	acc    *accept.Loop
	nextID atomic.Uint64
}

// NewProxy checks cfg and returns a proxy that has not started listening.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.DB == nil || cfg.Users == nil {
		return nil, errors.New("pop3: proxy config needs DB and Users")
	}
	if cfg.Resolve == nil {
		cfg.Resolve = frontend.CyrusResolve
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
		table := &frontend.Table{DB: cfg.DB}
		cfg.NewSession = func(string) frontend.Session { return table.Session(cfg.Metrics.Proxying) }
	}
	return &Proxy{cfg: cfg, log: log,
		acc: accept.New(accept.Config{Name: "pop3", MaxConns: cfg.Limits.MaxConns, Busy: busyText,
			MaxPerHost: cfg.Limits.MaxConnsPerHost, HostBusy: hostBusyText, MaxPerUser: cfg.Limits.MaxConnsPerUser,
			LoginTimeout: cfg.Limits.LoginTimeout, Refused: cfg.Metrics.Refused, Logger: log})}, nil
}

// Serve accepts clients on ln until Close.
func (p *Proxy) Serve(ln net.Listener) error {
	return p.acc.Serve(ln, func(c net.Conn, pre *accept.Preauth) {
		s := &session{p: p, pre: pre, log: p.log.With("conn", p.nextID.Add(1), "remote", c.RemoteAddr().String()),
			routes: p.cfg.NewSession("pop3")}
		defer s.routes.End()
		s.setConn(c)
		var mu sync.Mutex // guards s.backend for the shutdown below
		stop := context.AfterFunc(p.acc.Context(), func() {
			_ = c.SetDeadline(time.Now())
			mu.Lock()
			if s.backend != nil {
				s.backend.Close()
			}
			mu.Unlock()
		})
		defer stop()
		s.serve(&mu)
	})
}

// Close stops listening and ends every session.
func (p *Proxy) Close() error {
	p.acc.Close()
	return nil
}

// Conns is the number of open client connections.
func (p *Proxy) Conns() int { return p.acc.Conns() }

type session struct {
	p       *Proxy
	pre     *accept.Preauth
	log     *slog.Logger
	conn    net.Conn
	r       *Reader
	br      *bufio.Reader
	w       *Writer
	tls     bool
	routes  frontend.Session
	user    string // from USER, waiting for PASS
	backend net.Conn
	server  string // backend's name, once logged in
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.br = bufio.NewReaderSize(c, 1024)
	s.r = NewReader(s.br, s.p.cfg.Limits.MaxLine)
	s.w = NewWriter(bufio.NewWriterSize(c, 1024))
	_, s.tls = c.(*tls.Conn)
}

func (s *session) serve(mu *sync.Mutex) {
	if tc, ok := s.conn.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(s.p.cfg.Limits.ConnectTimeout))
		if !s.live() {
			return
		}
		if err := tc.Handshake(); err != nil {
			return
		}
		_ = tc.SetDeadline(time.Time{})
	}
	s.w.OK(s.p.cfg.ServerName + " Rookery POP3 proxy ready")
	for {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.p.cfg.Limits.WriteTimeout))
		_ = s.conn.SetReadDeadline(s.pre.Deadline(s.p.cfg.Limits.IdleTimeout))
		if !s.live() {
			return
		}
		if err := s.w.Flush(); err != nil {
			return
		}
		cmd, err := s.r.ReadCommand()
		if errors.Is(err, ErrLineTooLong) {
			s.p.cfg.Metrics.Command("OTHER")
			s.w.Err("Line too long")
			continue
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && s.live() && s.pre.LoginExpired() {
				s.log.Info("pop3: login timeout")
				s.w.Err("[SYS/TEMP] Login timeout")
				_ = s.w.Flush()
			}
			return
		}
		cmdDone := s.p.cfg.Metrics.Command(commandLabel(cmd.Name))
		user, be, greeting, done := s.command(cmd)
		cmdDone()
		if done {
			_ = s.w.Flush()
			return
		}
		if be != nil {
			mu.Lock()
			s.backend = be
			mu.Unlock()
			if s.p.acc.Context().Err() != nil {
				be.Close()
				return
			}
			s.log = s.log.With("user", user)
			s.log.Info("pop3: login, proxying")
			s.w.OK(greeting)
			s.routes.LoggedIn(user)
			s.routes.Selected("INBOX", s.server)
			s.routes.Opened(s.server)
			defer s.routes.Closed(s.server)
			s.pipe(be)
			return
		}
	}
}

// live reports whether the proxy is still running. Called after setting a
// deadline on the client connection, it keeps that deadline from undoing
// the one shutdown sets: a shutdown this check misses begins after it, so
// shutdown's deadline lands last.
func (s *session) live() bool { return s.p.acc.Context().Err() == nil }

// command runs one command before login. After a successful login it
// returns the backend connection, logged in, and its success text.
func (s *session) command(cmd Command) (user string, be net.Conn, greeting string, quit bool) {
	switch cmd.Name {
	case "CAPA":
		s.capa()
	case "QUIT":
		s.w.OK("bye")
		return "", nil, "", true
	case "NOOP":
		s.w.Err("Not logged in")
	case "STLS":
		return "", nil, "", s.startTLS()
	case "USER":
		if len(cmd.Args) != 1 || cmd.Args[0] == "" {
			s.w.Err("Syntax: USER name")
			break
		}
		if !s.plaintextOK() {
			s.w.Err("[AUTH] Plaintext login only over TLS")
			break
		}
		s.user = cmd.Args[0]
		s.w.OK("Name is a valid mailbox")
	case "PASS":
		if s.user == "" {
			s.w.Err("USER first")
			break
		}
		user := s.user
		s.user = ""
		pass := strings.Join(cmd.Args, " ") // passwords may hold spaces
		return s.login(user, pass)
	case "AUTH":
		return s.auth(cmd.Args)
	default:
		s.w.Err("Unknown command or not logged in")
	}
	return "", nil, "", false
}

func (s *session) plaintextOK() bool { return s.tls || s.p.cfg.AllowPlaintext }

func (s *session) capa() {
	s.w.OK("List of capabilities follows")
	dw := s.w.DotWriter()
	lines := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "IMPLEMENTATION Rookery"}
	if s.plaintextOK() {
		lines = append(lines, "USER", "SASL PLAIN")
	}
	if s.p.cfg.TLS != nil && !s.tls {
		lines = append(lines, "STLS")
	}
	for _, l := range lines {
		io.WriteString(dw, l+"\r\n")
	}
	dw.Close()
}

func (s *session) startTLS() bool {
	if s.p.cfg.TLS == nil || s.tls {
		s.w.Err("STLS not available")
		return false
	}
	s.w.OK("Begin TLS negotiation")
	if err := s.w.Flush(); err != nil || s.br.Buffered() > 0 {
		return true
	}
	tc := tls.Server(s.conn, s.p.cfg.TLS)
	_ = tc.SetDeadline(time.Now().Add(s.p.cfg.Limits.ConnectTimeout))
	if !s.live() {
		return true
	}
	if err := tc.Handshake(); err != nil {
		return true
	}
	_ = tc.SetDeadline(time.Time{})
	s.setConn(tc)
	return false
}

func (s *session) auth(args []string) (string, net.Conn, string, bool) {
	if len(args) == 0 || len(args) > 2 || !strings.EqualFold(args[0], "PLAIN") {
		s.w.Err("Unsupported mechanism")
		return "", nil, "", false
	}
	if !s.plaintextOK() {
		s.w.Err("[AUTH] Plaintext login only over TLS")
		return "", nil, "", false
	}
	ir := ""
	if len(args) == 2 {
		ir = args[1]
	} else {
		s.w.Line("+ ")
		if err := s.w.Flush(); err != nil {
			return "", nil, "", true
		}
		line, err := s.r.ReadLine()
		if err != nil {
			return "", nil, "", true
		}
		ir = line
	}
	if ir == "*" {
		s.w.Err("Authentication cancelled")
		return "", nil, "", false
	}
	if ir == "=" {
		ir = ""
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) {
		s.failLogin(parts[min(1, len(parts)-1)], "malformed PLAIN message or authorization id differs")
		return "", nil, "", false
	}
	return s.login(parts[1], parts[2])
}

func (s *session) failLogin(user, why string) {
	s.log.Info("pop3: login failed", "user", user, "err", why)
	s.p.cfg.Metrics.LoginFailed()
	if p := s.p.cfg.Limits.FailedLoginPause; p > 0 {
		// Cut short by shutdown, which must not wait for it.
		select {
		case <-time.After(p):
		case <-s.p.acc.Context().Done():
		}
	}
	s.w.Err("[AUTH] Invalid login")
}

// login checks the password, then opens the user's maildrop: the INBOX's
// backend, logged in as the proxy user for the client.
func (s *session) login(user, pass string) (string, net.Conn, string, bool) {
	if user == "" {
		s.failLogin(user, "empty user name")
		return "", nil, "", false
	}
	if err := s.p.cfg.Limits.Throttle.Verify(s.conn.RemoteAddr().String(), s.p.cfg.Users, user, pass); errors.Is(err, auth.ErrUnavailable) {
		s.log.Warn("pop3: login not checked: password source unavailable", "user", user, "err", err)
		s.w.Err("[SYS/TEMP] Authentication server unavailable")
		return "", nil, "", false
	} else if err != nil {
		s.failLogin(user, err.Error())
		return "", nil, "", false
	}
	// Like Cyrus, no kick: POP3 reads the list as it is.
	e, err := s.routes.LookupNoKick(frontend.UserInbox(user))
	if err != nil {
		text := "Mailbox does not exist"
		if errors.Is(err, frontend.ErrReserved) {
			text = "Mailbox is currently reserved"
		}
		s.w.Err("[SYS/TEMP] Unable to open maildrop: " + text)
		return "", nil, "", false
	}
	be, text, err := s.dialBackend(e.Server(), user)
	if err != nil {
		s.log.Warn("pop3: backend unavailable", "backend", e.Server(), "user", user, "err", err)
		s.w.Err("[SYS/TEMP] Unable to open maildrop: Server(s) unavailable to complete operation")
		return "", nil, "", false
	}
	// Counted as logged in only now: a login that could not open its
	// maildrop keeps the login deadline and no user slot.
	if !s.pre.Authenticated(user) {
		be.Close()
		s.log.Warn("pop3: login refused: per-user connection limit", "user", user, "limit", s.p.cfg.Limits.MaxConnsPerUser)
		s.w.Err(userBusyText)
		return "", nil, "", false
	}
	s.server = e.Server()
	return user, be, text, false
}

// dialBackend connects to server's POP3 service and logs in with AUTH
// PLAIN as the proxy user for user. It returns the backend's success
// text, which the client gets as its own.
func (s *session) dialBackend(server, user string) (net.Conn, string, error) {
	_, addr, _, ok := s.p.cfg.Resolve(server)
	if !ok {
		return nil, "", fmt.Errorf("pop3: unknown server %q", server)
	}
	cfg := &s.p.cfg
	d := net.Dialer{Timeout: cfg.Limits.ConnectTimeout}
	conn, err := d.DialContext(s.p.acc.Context(), "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	_ = conn.SetDeadline(time.Now().Add(cfg.Limits.ConnectTimeout))
	r := NewReader(bufio.NewReaderSize(conn, 1024), 1024)
	w := NewWriter(bufio.NewWriterSize(conn, 1024))
	text, err := func() (string, error) {
		greet, err := r.ReadReply()
		if err != nil {
			return "", err
		}
		if !greet.OK {
			return "", fmt.Errorf("greeting -ERR %s", greet.Text)
		}
		if cfg.BackendTLS != nil || frontend.WantsTLS(server) {
			tc, err := backendSTLS(r, w, conn, cfg.BackendTLS, addr, frontend.WantsTLS(server))
			if err != nil {
				return "", err
			}
			if tc != nil {
				conn = tc
				r = NewReader(bufio.NewReaderSize(conn, 1024), 1024)
				w = NewWriter(bufio.NewWriterSize(conn, 1024))
			}
		}
		ir := base64.StdEncoding.EncodeToString([]byte(user + "\x00" + cfg.Proxy.Authname + "\x00" + cfg.Proxy.PasswordFor(server)))
		w.Line("AUTH PLAIN " + ir)
		if err := w.Flush(); err != nil {
			return "", err
		}
		rep, err := r.ReadReply()
		if err != nil {
			return "", err
		}
		if !rep.OK {
			return "", fmt.Errorf("proxy login refused: %s", rep.Text)
		}
		return rep.Text, nil
	}()
	if err != nil {
		conn.Close()
		return nil, "", err
	}
	// The greeting and the AUTH reply are all the backend sent; nothing
	// is left in r for the pipe to miss.
	_ = conn.SetDeadline(time.Time{})
	return conn, text, nil
}

// backendSTLS asks a backend for its capabilities and takes up its STLS
// (RFC 2595) when required (the server name asks for TLS) or when it
// offers no plaintext login in the clear, as Cyrus's backend connection
// does; it returns the TLS connection, or nil when TLS is not taken up.
func backendSTLS(r *Reader, w *Writer, conn net.Conn, conf *tls.Config, addr string, required bool) (net.Conn, error) {
	if conf == nil {
		return nil, errors.New("server name asks for TLS (/tls), which this frontend does not speak to backends")
	}
	w.Line("CAPA")
	if err := w.Flush(); err != nil {
		return nil, err
	}
	rep, err := r.ReadReply()
	if err != nil {
		return nil, err
	}
	stls, plain := false, false
	if rep.OK {
		body, err := io.ReadAll(r.DotReader())
		if err != nil {
			return nil, err
		}
		for _, l := range strings.Split(string(body), "\n") {
			f := strings.Fields(strings.ToUpper(l))
			switch {
			case len(f) == 1 && f[0] == "STLS":
				stls = true
			case len(f) > 1 && f[0] == "SASL" && slices.Contains(f[1:], "PLAIN"):
				plain = true
			}
		}
	}
	switch {
	case !stls && required:
		return nil, errors.New("server name asks for TLS (/tls), and the backend offers no STLS")
	case !stls || (plain && !required):
		return nil, nil
	}
	w.Line("STLS")
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if rep, err = r.ReadReply(); err != nil {
		return nil, err
	}
	if !rep.OK {
		return nil, fmt.Errorf("STLS refused: %s", rep.Text)
	}
	if r.Buffered() > 0 {
		return nil, errors.New("backend sent more after its STLS reply")
	}
	if conf.ServerName == "" {
		conf = conf.Clone()
		conf.ServerName, _, _ = net.SplitHostPort(addr)
	}
	tc := tls.Client(conn, conf)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("STLS: %w", err)
	}
	return tc, nil
}

// pipe copies bytes both ways until either side closes, the client stops
// reading for WriteTimeout, or nothing moves either way for IdleTimeout.
// A client silently downloading a big message is not idle.
func (s *session) pipe(be net.Conn) {
	defer be.Close()
	if err := s.w.Flush(); err != nil {
		return
	}
	lim := s.p.cfg.Limits
	start := time.Now()
	var last atomic.Int64   // when a byte last moved, as time since start
	var sending atomic.Bool // a write to the client is blocked or under way
	moved := func() { last.Store(int64(time.Since(start))) }
	// idleEnd is when the session falls idle if nothing moves; a pending
	// write to the client is left to WriteTimeout.
	idleEnd := func() time.Time {
		if sending.Load() {
			return time.Now().Add(lim.IdleTimeout)
		}
		return start.Add(time.Duration(last.Load()) + lim.IdleTimeout)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		for {
			n, err := be.Read(buf)
			if n > 0 {
				sending.Store(true)
				_ = s.conn.SetWriteDeadline(time.Now().Add(lim.WriteTimeout))
				if !s.live() {
					break
				}
				_, werr := s.conn.Write(buf[:n])
				moved()
				sending.Store(false)
				if werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// The backend closed (QUIT done, or it failed), or the client
		// stopped reading: the session is over.
		s.conn.Close()
	}()
	// Client to backend, starting with what the client already sent.
	buf := make([]byte, 4<<10)
	for {
		_ = s.conn.SetReadDeadline(idleEnd())
		if !s.live() {
			break
		}
		n, err := s.br.Read(buf)
		if n > 0 {
			moved()
			_ = be.SetWriteDeadline(time.Now().Add(lim.WriteTimeout))
			if _, werr := be.Write(buf[:n]); werr != nil {
				break
			}
		}
		// A timeout while the backend was sending only means the client
		// had nothing to say; read on until the session is really idle.
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(idleEnd()) {
			continue
		}
		if err != nil {
			break
		}
	}
	be.Close()
	<-done
}
