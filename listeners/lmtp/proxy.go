package lmtp

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
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rookery/rookery/listeners/accept"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store"
)

// Limits bound what one LMTP client may cost. Zero values take the
// defaults.
type Limits struct {
	// MaxLine is the longest command line. Default 4096.
	MaxLine int
	// MaxMessageSize is the largest message accepted ("maxmessagesize"),
	// advertised with SIZE. Default 256 MiB.
	MaxMessageSize int64
	// MaxConns caps concurrent connections. Default 1000.
	MaxConns int
	// LoginTimeout ends a connection that has not, this long after
	// connecting, sent LHLO (or, without Preauth, authenticated). Default
	// 1 minute. Connections that have not may hold at most half of
	// MaxConns.
	LoginTimeout time.Duration
	// IdleTimeout ends a connection whose client sends nothing for this
	// long. Default 5 minutes.
	IdleTimeout time.Duration
	// ConnectTimeout bounds connecting and logging in to a backend.
	// Default 10 s.
	ConnectTimeout time.Duration
	// BackendTimeout bounds each wait for a backend
	// ("lmtptxn_timeout"). Default 5 minutes.
	BackendTimeout time.Duration
	// FailedLoginPause delays the answer to a failed AUTH.
	FailedLoginPause time.Duration
	// Throttle refuses logins after repeated failures; nil: none.
	Throttle *auth.Throttle
	// SpoolMemory is how much of a message going to several backends is
	// kept in memory; beyond it the message is spooled to a file in
	// TempDir. Default 1 MiB.
	SpoolMemory int64
	// TempDir holds spool files; empty means os.TempDir().
	TempDir string
}

func (l *Limits) setDefaults() {
	if l.MaxLine <= 0 {
		l.MaxLine = 4096
	}
	if l.MaxMessageSize <= 0 {
		l.MaxMessageSize = 256 << 20
	}
	if l.MaxConns <= 0 {
		l.MaxConns = 1000
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 5 * time.Minute
	}
	if l.ConnectTimeout <= 0 {
		l.ConnectTimeout = 10 * time.Second
	}
	if l.BackendTimeout <= 0 {
		l.BackendTimeout = 5 * time.Minute
	}
	if l.SpoolMemory <= 0 {
		l.SpoolMemory = 1 << 20
	}
}

// ProxyConfig is what an LMTP frontend needs.
type ProxyConfig struct {
	// ServerName is the node's name, shown in the greeting and LHLO.
	ServerName string
	// DB is the node's mailbox list, where recipients' INBOXes are found.
	DB *store.DB
	// Kick, if set, makes the node's replica catch up with its master;
	// the proxy calls it when a recipient's INBOX is missing.
	Kick func(context.Context) error
	// Resolve maps a server name to its addresses; nil means
	// frontend.CyrusResolve.
	Resolve frontend.Resolver
	// Users and Admins check LMTP AUTH: only admins may deliver
	// ("lmtp_admins").
	Users  auth.Checker
	Admins []string
	// Preauth lets clients deliver without AUTH (Cyrus's lmtpd -a, or a
	// listener on a UNIX socket only the MTA can reach).
	Preauth bool
	// Proxy is how the frontend logs in to backends (without an
	// authorization id: backends must list it in lmtp_admins).
	Proxy auth.ProxyCredentials
	// TLS enables STARTTLS; with it, and on listeners that already
	// speak TLS, AUTH is offered and accepted only over TLS unless
	// AllowPlaintext is set. Without TLS there is no way to encrypt, so
	// AUTH is allowed in plaintext.
	TLS *tls.Config
	// AllowPlaintext allows AUTH PLAIN without TLS when TLS is
	// configured ("allowplaintext").
	AllowPlaintext bool
	// BackendTLS is how the proxy takes up a backend's STARTTLS: when
	// the backend's server name asks for it ("host:port/tls") or when the
	// backend offers no AUTH PLAIN before TLS. Nil: never.
	BackendTLS *tls.Config
	Limits     Limits
	// Metrics counts commands, deliveries, deferrals and backend
	// connections; nil counts nothing.
	Metrics Metrics
	// NewSession, if set, gives each client connection its routing
	// session (the node's proxy-session actor), called with "lmtp"; it
	// then counts backend connections instead of Metrics. Nil reads DB
	// directly.
	NewSession func(protocol string) frontend.Session
	Logger     *slog.Logger // nil discards
}

// Proxy is an LMTP frontend: each recipient goes to the backend that
// holds its INBOX ("user.<local part>", "+detail" ignored), with a reply
// per recipient, and the message is streamed to each backend.
type Proxy struct {
	cfg    ProxyConfig
	log    *slog.Logger
	acc    *accept.Loop
	nextID atomic.Uint64
}

// NewProxy checks cfg and returns a proxy that has not started listening.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.DB == nil || (cfg.Users == nil && !cfg.Preauth) {
		return nil, errors.New("lmtp: proxy config needs DB and, without Preauth, Users")
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
		table := &frontend.Table{DB: cfg.DB, Kick: cfg.Kick}
		cfg.NewSession = func(string) frontend.Session { return table.Session(cfg.Metrics.Proxying) }
	}
	return &Proxy{cfg: cfg, log: log,
		acc: accept.New(accept.Config{Name: "lmtp", MaxConns: cfg.Limits.MaxConns, Busy: "421 4.3.2 Too many connections\r\n",
			LoginTimeout: cfg.Limits.LoginTimeout, Refused: cfg.Metrics.Refused, Logger: log})}, nil
}

// Serve accepts clients on ln until Close.
func (p *Proxy) Serve(ln net.Listener) error {
	return p.acc.Serve(ln, func(c net.Conn, pre *accept.Preauth) {
		log := p.log.With("conn", p.nextID.Add(1), "remote", c.RemoteAddr().String())
		s := &session{p: p, pre: pre, log: log, connLog: log,
			backends: map[string]*lmtpBackend{}, routes: p.cfg.NewSession("lmtp")}
		defer s.routes.End()
		s.setConn(c)
		stop := context.AfterFunc(p.acc.Context(), func() { _ = c.SetReadDeadline(time.Now()) })
		defer stop()
		s.serve()
	})
}

// Close stops listening and ends every connection.
func (p *Proxy) Close() error {
	p.acc.Close()
	return nil
}

// Conns is the number of open client connections.
func (p *Proxy) Conns() int { return p.acc.Conns() }

// Replies the proxy makes itself.
const (
	replyUnavailable = "4.4.3 Server(s) unavailable to complete operation"
	replyRetry       = "4.3.0 Retry operation"
)

type session struct {
	p       *Proxy
	pre     *accept.Preauth
	log     *slog.Logger
	connLog *slog.Logger // log before AUTH named the user
	conn    net.Conn
	r       *Reader
	w       *Writer
	tls     bool

	lhlo     bool
	authed   bool
	from     string   // MAIL FROM path; set means a transaction is open
	fromArgs []string // MAIL parameters passed on
	rcpts    []rcpt
	routes   frontend.Session
	backends map[string]*lmtpBackend
}

// rcpt is an accepted recipient.
type rcpt struct {
	addr    string
	backend *lmtpBackend
}

func (s *session) setConn(c net.Conn) {
	s.conn = c
	s.r = NewReader(bufio.NewReaderSize(c, 4096), s.p.cfg.Limits.MaxLine)
	s.w = NewWriter(bufio.NewWriterSize(c, 4096))
	_, s.tls = c.(*tls.Conn)
}

func (s *session) serve() {
	defer s.closeBackends()
	s.w.Reply(220, s.p.cfg.ServerName+" Rookery LMTP proxy ready")
	for {
		// Replies to pipelined commands go out together (RFC 2920).
		if s.r.Buffered() == 0 {
			_ = s.conn.SetWriteDeadline(time.Now().Add(s.p.cfg.Limits.IdleTimeout))
			if err := s.w.Flush(); err != nil {
				return
			}
		}
		_ = s.conn.SetReadDeadline(s.pre.Deadline(s.p.cfg.Limits.IdleTimeout))
		cmd, err := s.r.ReadCommand()
		if errors.Is(err, ErrLineTooLong) {
			s.p.cfg.Metrics.Command("OTHER")
			s.w.Reply(500, "5.5.2 Line too long")
			continue
		}
		if err != nil {
			switch {
			case s.p.acc.Context().Err() != nil:
				s.w.Reply(421, "4.3.2 Server shutting down")
			case errors.Is(err, os.ErrDeadlineExceeded) && s.pre.LoginExpired():
				s.log.Info("lmtp: login timeout")
				s.w.Reply(421, "4.4.2 Login timeout")
			default:
				return
			}
			_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
			_ = s.w.Flush()
			return
		}
		done := s.p.cfg.Metrics.Command(commandLabel(cmd.Verb))
		quit := s.command(cmd)
		done()
		if quit {
			_ = s.w.Flush()
			return
		}
	}
}

// command runs one command; it reports whether the session ends.
func (s *session) command(cmd Command) bool {
	switch cmd.Verb {
	case "LHLO":
		s.lhloCmd(cmd.Arg)
	case "HELO", "EHLO":
		s.w.Reply(500, "5.5.1 This is LMTP: use LHLO")
	case "STARTTLS":
		return s.startTLS()
	case "AUTH":
		return s.authCmd(cmd.Arg)
	case "MAIL":
		s.mail(cmd.Arg)
	case "RCPT":
		s.rcpt(cmd.Arg)
	case "DATA":
		return s.data()
	case "RSET":
		s.reset()
		s.w.Reply(250, "2.0.0 ok")
	case "NOOP":
		s.w.Reply(250, "2.0.0 ok")
	case "VRFY":
		s.w.Reply(252, "2.5.2 Cannot VRFY user, but will accept message and attempt delivery")
	case "QUIT":
		s.w.Reply(221, "2.0.0 bye")
		return true
	default:
		s.w.Reply(500, "5.5.2 Unrecognized command")
	}
	return false
}

func (s *session) lhloCmd(arg string) {
	if strings.TrimSpace(arg) == "" {
		s.w.Reply(501, "5.5.4 Domain name required")
		return
	}
	s.reset()
	s.lhlo = true
	if s.p.cfg.Preauth {
		// Without AUTH, LHLO is as far as a client proves itself.
		s.pre.Authenticated("")
	}
	lines := []string{s.p.cfg.ServerName, "8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING",
		"SIZE " + strconv.FormatInt(s.p.cfg.Limits.MaxMessageSize, 10)}
	if s.p.cfg.TLS != nil && !s.tls {
		lines = append(lines, "STARTTLS")
	}
	if !s.p.cfg.Preauth && !s.authed && s.plaintextOK() {
		lines = append(lines, "AUTH PLAIN")
	}
	s.w.Reply(250, lines...)
}

func (s *session) startTLS() bool {
	if s.p.cfg.TLS == nil || s.tls {
		s.w.Reply(502, "5.5.1 STARTTLS not available")
		return false
	}
	s.w.Reply(220, "2.0.0 Ready to start TLS")
	if err := s.w.Flush(); err != nil {
		return true
	}
	if s.r.Buffered() > 0 {
		return true // plaintext injected after STARTTLS
	}
	tc := tls.Server(s.conn, s.p.cfg.TLS)
	_ = tc.SetDeadline(time.Now().Add(s.p.cfg.Limits.ConnectTimeout))
	if err := tc.Handshake(); err != nil {
		s.log.Debug("lmtp: TLS handshake failed", "err", err)
		return true
	}
	_ = tc.SetDeadline(time.Time{})
	s.setConn(tc)
	// Nothing learnt before TLS can be trusted (RFC 3207).
	s.lhlo, s.authed, s.log = false, false, s.connLog
	s.reset()
	return false
}

// plaintextOK reports whether AUTH PLAIN may be used: over TLS, where
// plaintext is allowed, or where no TLS is configured, since the client
// has no way to encrypt then.
func (s *session) plaintextOK() bool {
	return s.tls || s.p.cfg.AllowPlaintext || s.p.cfg.TLS == nil
}

// authCmd handles AUTH PLAIN; only admins may deliver.
func (s *session) authCmd(arg string) bool {
	mech, ir, _ := strings.Cut(arg, " ")
	switch {
	case s.p.cfg.Preauth || s.authed:
		s.w.Reply(503, "5.5.1 Already authenticated")
		return false
	case s.from != "":
		s.w.Reply(503, "5.5.1 AUTH not allowed in a transaction")
		return false
	case !strings.EqualFold(mech, "PLAIN"):
		s.w.Reply(504, "5.5.4 Unsupported mechanism")
		return false
	case !s.plaintextOK():
		s.w.Reply(538, "5.7.11 Encryption required for requested authentication mechanism")
		return false
	}
	if ir == "" {
		s.w.Reply(334, "")
		if err := s.w.Flush(); err != nil {
			return true
		}
		line, err := s.r.ReadLine()
		if err != nil {
			return true
		}
		ir = line
	}
	if ir == "*" {
		s.w.Reply(501, "5.7.0 Authentication cancelled")
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 {
		s.w.Reply(501, "5.5.2 Invalid PLAIN message")
		return false
	}
	authzid, authcid, pass := parts[0], parts[1], parts[2]
	err = s.p.cfg.Limits.Throttle.Verify(s.conn.RemoteAddr().String(), s.p.cfg.Users, authcid, pass)
	if errors.Is(err, auth.ErrUnavailable) {
		s.log.Warn("lmtp: authentication not checked: password source unavailable", "user", authcid, "err", err)
		s.w.Reply(454, "4.7.0 Temporary authentication failure")
		return false
	}
	if (authzid != "" && authzid != authcid) || err != nil ||
		!slices.Contains(s.p.cfg.Admins, authcid) {
		s.log.Info("lmtp: authentication failed", "user", authcid)
		s.p.cfg.Metrics.LoginFailed()
		if pause := s.p.cfg.Limits.FailedLoginPause; pause > 0 {
			// Cut short by shutdown, which must not wait for it.
			select {
			case <-time.After(pause):
			case <-s.p.acc.Context().Done():
			}
		}
		s.w.Reply(535, "5.7.8 Authentication failed")
		return false
	}
	s.authed = true
	s.pre.Authenticated(authcid)
	s.routes.LoggedIn(authcid)
	s.log = s.log.With("user", authcid)
	s.w.Reply(235, "2.7.0 Authentication successful")
	return false
}

// reset ends the client's transaction. Backends may still hold theirs
// (recipients accepted, no message sent): marked out of it, they get
// RSET before their next MAIL, or its recipients would get the next
// message.
func (s *session) reset() {
	s.from, s.fromArgs, s.rcpts = "", nil, nil
	for _, b := range s.backends {
		b.inTxn = false
	}
}

func (s *session) mail(arg string) {
	switch {
	case !s.lhlo:
		s.w.Reply(503, "5.5.1 LHLO first")
		return
	case !s.p.cfg.Preauth && !s.authed:
		s.w.Reply(530, "5.7.0 Authentication required")
		return
	case s.from != "":
		s.w.Reply(503, "5.5.1 Nested MAIL command")
		return
	}
	from, params, err := ParsePath(arg, "FROM")
	if err != nil {
		s.w.Reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
		return
	}
	var pass []string
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch strings.ToUpper(k) {
		case "SIZE":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				s.w.Reply(501, "5.5.4 Bad SIZE")
				return
			}
			if n > s.p.cfg.Limits.MaxMessageSize {
				s.w.Reply(552, "5.3.4 Message size exceeds fixed limit")
				return
			}
			pass = append(pass, p)
		case "BODY":
			pass = append(pass, p)
		}
	}
	// "<>" is a valid reverse path; keep something non-empty to mark
	// the transaction open.
	s.from, s.fromArgs = "<"+from+">", pass
	s.w.Reply(250, "2.1.0 ok")
}

// rcpt routes a recipient to the backend holding its INBOX and asks that
// backend at once, so the reply is the backend's own.
func (s *session) rcpt(arg string) {
	if s.from == "" {
		s.w.Reply(503, "5.5.1 Need MAIL command")
		return
	}
	addr, _, err := ParsePath(arg, "TO")
	if err != nil || addr == "" {
		s.w.Reply(501, "5.5.4 Syntax: RCPT TO:<address>")
		return
	}
	local, _, _ := strings.Cut(addr, "@")
	user, _, _ := strings.Cut(local, "+")
	user = strings.ToLower(user)
	if user == "" {
		s.w.Reply(550, "5.1.1 User unknown")
		return
	}
	ctx, cancel := context.WithTimeout(s.p.acc.Context(), s.p.cfg.Limits.ConnectTimeout)
	e, err := s.routes.Lookup(ctx, frontend.UserInbox(user))
	cancel()
	switch {
	case errors.Is(err, frontend.ErrNoMailbox):
		s.w.Reply(550, "5.1.1 User unknown")
		return
	case errors.Is(err, frontend.ErrReserved):
		s.rcptReply(451, "4.2.1 Mailbox is currently reserved")
		return
	case err != nil:
		s.log.Error("lmtp: reading the mailbox list", "err", err)
		s.rcptReply(451, replyRetry)
		return
	}
	b, rep, err := s.backendRcpt(e.Server(), addr)
	if err != nil {
		s.log.Warn("lmtp: backend unavailable", "backend", e.Server(), "err", err)
		s.rcptReply(451, replyUnavailable)
		return
	}
	switch {
	case rep.Positive():
		s.rcpts = append(s.rcpts, rcpt{addr: addr, backend: b})
		s.w.Reply(250, "2.1.5 ok")
	case rep.Code == 550:
		// Our mailbox list says the user is there: it is stale, so
		// the MTA should retry rather than bounce.
		s.rcptReply(451, replyRetry)
	default:
		s.rcptReply(rep.Code, rep.Lines...)
	}
}

// backendRcpt asks server's backend to take addr. A cached connection
// that fails before it holds any of this transaction was most likely
// closed by the backend while idle (its timeout, a restart), so it is
// replaced once; a failing new connection, or one with recipients of
// this transaction on it, is given up.
func (s *session) backendRcpt(server, addr string) (*lmtpBackend, Reply, error) {
	for {
		b, cached, err := s.backend(server)
		if err != nil {
			return nil, Reply{}, err
		}
		idle := cached && !b.inTxn
		rep, err := b.rcpt(s.from, s.fromArgs, addr)
		if err == nil {
			return b, rep, nil
		}
		s.dropBackend(b)
		if !idle {
			return nil, Reply{}, err
		}
		s.log.Debug("lmtp: cached backend connection failed, reconnecting", "backend", server, "err", err)
	}
}

// rcptReply refuses a recipient at RCPT; a temporary refusal counts as a
// deferral.
func (s *session) rcptReply(code int, lines ...string) {
	count(s.p.cfg.Metrics, code, false)
	s.w.Reply(code, lines...)
}

// data reads the message once and hands it to each backend with
// recipients: streamed straight through when there is one, spooled (in
// memory up to Limits.SpoolMemory, then in a file) when there are
// several. It reports whether the session must end.
func (s *session) data() bool {
	if len(s.rcpts) == 0 {
		s.w.Reply(503, "5.5.1 No valid recipients")
		return false
	}
	defer s.reset()
	var groups []*lmtpBackend
	for _, r := range s.rcpts {
		if !slices.Contains(groups, r.backend) {
			groups = append(groups, r.backend)
		}
	}
	replies := map[*lmtpBackend][]Reply{}
	if len(groups) == 1 {
		b := groups[0]
		rep, err := b.startData()
		if err != nil || !rep.Positive() {
			return s.refuseData(b, rep, err)
		}
		s.w.Reply(354, "Go ahead; end with <CRLF>.<CRLF>")
		if err := s.w.Flush(); err != nil {
			return true
		}
		reps, cerr, berr := s.copyMessage(b)
		if cerr != nil {
			s.dropBackend(b)
			return s.clientDataError(cerr)
		}
		if berr != nil {
			s.log.Warn("lmtp: backend failed during DATA", "backend", b.server, "err", berr)
			s.dropBackend(b)
		}
		replies[b] = reps
	} else {
		s.w.Reply(354, "Go ahead; end with <CRLF>.<CRLF>")
		if err := s.w.Flush(); err != nil {
			return true
		}
		sp, err := s.spool()
		if err != nil {
			return s.clientDataError(err)
		}
		defer sp.Close()
		for _, b := range groups {
			reps, err := b.deliver(sp)
			if err != nil {
				s.log.Warn("lmtp: backend failed during DATA", "backend", b.server, "err", err)
				s.dropBackend(b)
			}
			replies[b] = reps
		}
	}
	// One reply per accepted recipient, in order; each backend answers
	// its own recipients in order.
	next := map[*lmtpBackend]int{}
	for _, r := range s.rcpts {
		i := next[r.backend]
		next[r.backend]++
		rep := Reply{Code: 451, Lines: []string{replyUnavailable}}
		if reps := replies[r.backend]; i < len(reps) {
			rep = reps[i]
		}
		count(s.p.cfg.Metrics, rep.Code, true)
		s.writeReply(rep)
	}
	return false
}

// refuseData answers DATA when the only backend will not take it: the
// client sends no data then.
func (s *session) refuseData(b *lmtpBackend, rep Reply, err error) bool {
	if err != nil {
		s.log.Warn("lmtp: backend failed at DATA", "backend", b.server, "err", err)
		s.dropBackend(b)
		rep = Reply{Code: 451, Lines: []string{replyUnavailable}}
	}
	// One reply for the command; each recipient has the outcome.
	for range s.rcpts {
		count(s.p.cfg.Metrics, rep.Code, false)
	}
	s.writeReply(rep)
	return false
}

// writeReply passes a backend's reply on as it is.
func (s *session) writeReply(rep Reply) { s.w.Reply(rep.Code, rep.Lines...) }

// clientDataError answers a message that could not be read whole; only
// a too large message leaves the session usable.
func (s *session) clientDataError(err error) bool {
	if errors.Is(err, errTooBig) {
		for range s.rcpts {
			s.w.Reply(552, "5.3.4 Message size exceeds fixed limit")
		}
		return false
	}
	s.log.Debug("lmtp: reading message data failed", "err", err)
	return true
}

var errTooBig = errors.New("lmtp: message too large")

// limited reads the client's message, failing with errTooBig past the
// size limit (after reading the rest, so the session stays in step).
type limited struct {
	s    *session
	r    io.Reader
	left int64
}

func (l *limited) Read(p []byte) (int, error) {
	_ = l.s.conn.SetReadDeadline(time.Now().Add(l.s.p.cfg.Limits.IdleTimeout))
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		if _, derr := io.Copy(io.Discard, l.r); derr != nil {
			return n, derr
		}
		return n, errTooBig
	}
	return n, err
}

func (s *session) message() io.Reader {
	return &limited{s: s, r: s.r.DotReader(), left: s.p.cfg.Limits.MaxMessageSize}
}

// copyMessage streams the client's message to b (after its 354) and
// reads b's replies. Client errors come back as cerr; if b fails, the
// rest of the message is still read.
func (s *session) copyMessage(b *lmtpBackend) (reps []Reply, cerr, berr error) {
	dw := b.w.DotWriter()
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp
	src := s.message()
	for {
		n, err := src.Read(buf)
		if n > 0 && berr == nil {
			b.deadline()
			if _, werr := dw.Write(buf[:n]); werr != nil {
				berr = werr
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// The backend has part of a message: it cannot be used again.
			b.conn.Close()
			return nil, err, errors.New("message aborted")
		}
	}
	if berr != nil {
		return nil, nil, berr
	}
	if err := dw.Close(); err != nil {
		return nil, nil, err
	}
	reps, err := b.dataReplies()
	return reps, nil, err
}

// spooled is a message held for several backends.
type spooled interface {
	io.ReadSeeker
	io.Closer
}

// spool reads the client's message into memory, moving to a temporary
// file once it outgrows Limits.SpoolMemory.
func (s *session) spool() (spooled, error) {
	src := s.message()
	mem := make([]byte, 0, 64<<10)
	for int64(len(mem)) <= s.p.cfg.Limits.SpoolMemory {
		if len(mem) == cap(mem) {
			mem = slices.Grow(mem, len(mem))
		}
		n, err := src.Read(mem[len(mem):cap(mem)])
		mem = mem[:len(mem)+n]
		if errors.Is(err, io.EOF) {
			return memSpool{strings.NewReader(string(mem))}, nil
		}
		if err != nil {
			return nil, err
		}
	}
	f, err := os.CreateTemp(s.p.cfg.Limits.TempDir, "rookery-lmtp-*")
	if err != nil {
		s.log.Error("lmtp: cannot spool", "err", err)
		_, _ = io.Copy(io.Discard, src)
		return nil, fmt.Errorf("lmtp: spool: %w", err)
	}
	// Unlinked at once: the file goes away with its last descriptor.
	_ = os.Remove(f.Name())
	if _, err := f.Write(mem); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

type memSpool struct{ *strings.Reader }

func (memSpool) Close() error { return nil }

// backend returns the session's connection to server, dialling one if
// there is none; cached says whether it was already open.
func (s *session) backend(server string) (b *lmtpBackend, cached bool, err error) {
	if open := s.backends[server]; open != nil {
		return open, true, nil
	}
	_, _, addr, ok := s.p.cfg.Resolve(server)
	if !ok {
		return nil, false, fmt.Errorf("lmtp: unknown server %q", server)
	}
	cfg := &s.p.cfg
	b, err = dialBackend(s.p.acc.Context(), server, addr, cfg.BackendTLS, cfg.ServerName, cfg.Proxy.Authname,
		cfg.Proxy.PasswordFor(server), cfg.Limits.ConnectTimeout, cfg.Limits.BackendTimeout)
	if err != nil {
		return nil, false, err
	}
	s.backends[server] = b
	s.routes.Opened(server)
	return b, false, nil
}

func (s *session) dropBackend(b *lmtpBackend) {
	b.conn.Close()
	if s.backends[b.server] == b {
		delete(s.backends, b.server)
		s.routes.Closed(b.server)
	}
}

func (s *session) closeBackends() {
	for _, b := range s.backends {
		b.quit()
		s.routes.Closed(b.server)
	}
}
