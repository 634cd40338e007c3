package lmtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rookery/rookery/listeners/accept"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store/mailstore"
)

// ServerConfig is what a backend LMTP listener needs from its node. Zero
// values take the defaults given.
type ServerConfig struct {
	ServerName string // in the greeting, LHLO and Received
	Store      *mailstore.Store
	// Login checks AUTH PLAIN credentials; auth.MailPolicy.Login fits.
	// Nil offers no AUTH.
	Login func(authzid, authcid, password string) (auth.Identity, error)
	// Admins may deliver once authenticated, besides the identities Login
	// marks Admin (Cyrus's lmtp_admins). A node lists its proxyservers
	// here, so that frontends (which log in without an authorization id)
	// can deliver. Anyone else is refused at AUTH.
	Admins []string
	// RequireAuth refuses MAIL until a client has authenticated. Off by
	// default: LMTP, like Cyrus's lmtpd -a, then trusts whoever can reach
	// the listener, so the listener must be reachable only by the MTAs and
	// frontends meant to deliver (loopback, a private network, or a UNIX
	// socket).
	RequireAuth bool
	// Separator is the hierarchy separator of the addresses'
	// "+detail" part: '.' (default) or '/' (Cyrus's unixhierarchysep), as
	// the IMAP listener's.
	Separator byte

	// MaxMessageSize caps a message, advertised with SIZE; default
	// 100 MiB.
	MaxMessageSize int64
	// MaxRecipients caps the recipients of one transaction; default 1000.
	MaxRecipients int
	// MaxLine caps a command line; default 4096.
	MaxLine int
	// MaxConns caps connections; default 1000.
	MaxConns int
	// LoginTimeout ends a connection that has not, this long after
	// connecting, sent LHLO (or, with RequireAuth, authenticated);
	// default 1 minute. Connections that have not may hold at most half
	// of MaxConns: an MTA or frontend says LHLO at once, so idle
	// strangers cannot hold up deliveries.
	LoginTimeout time.Duration
	// IdleTimeout ends a connection that sends nothing for this long,
	// within a message too; default 5 minutes.
	IdleTimeout time.Duration
	// WriteTimeout ends a connection that does not read its replies;
	// default 60 s.
	WriteTimeout time.Duration
	// FailedLoginPause delays the reply to a failed AUTH; zero or
	// negative for none.
	FailedLoginPause time.Duration
	// TLS enables STARTTLS (RFC 3207). Nil: no TLS at all.
	TLS *tls.Config
	// Plaintext says whether AUTH PLAIN may be used before TLS on a
	// connection from remote (allowplaintext, or a peer that counts as
	// secure); nil allows it on every connection.
	Plaintext func(remote net.Addr) bool
	// HandshakeTimeout bounds a TLS handshake; default 30 s.
	HandshakeTimeout time.Duration
	// Throttle refuses logins after repeated failures; nil: none.
	Throttle *auth.Throttle
	// Metrics counts commands, deliveries and deferrals; nil counts
	// nothing.
	Metrics Metrics
	Logger  *slog.Logger // nil discards
}

// Metrics receives the counts of an LMTP server or proxy.
type Metrics interface {
	// Command counts a command received, by its upper-case name, or
	// "OTHER" for a name the server does not know (so that clients
	// cannot make up label values); done is called once its reply is
	// written, to time it.
	Command(name string) (done func())
	// LoginFailed counts a failed AUTH.
	LoginFailed()
	// Delivered counts a recipient whose copy was accepted after DATA.
	Delivered()
	// Deferred counts a recipient answered with a temporary failure
	// (4xx), at RCPT or after DATA.
	Deferred()
	// Proxying counts a proxy session's connection to backend: +1 when
	// it opens, -1 when it closes.
	Proxying(backend string, delta int)
	// Refused counts a connection cut short by a cap, by
	// accept.Config.Refused's reason.
	Refused(reason string)
}

type noMetrics struct{}

func (noMetrics) Command(string) func() { return func() {} }
func (noMetrics) LoginFailed()          {}
func (noMetrics) Delivered()            {}
func (noMetrics) Deferred()             {}
func (noMetrics) Proxying(string, int)  {}
func (noMetrics) Refused(string)        {}

// commandLabel is a command's name as counted.
func commandLabel(verb string) string {
	switch verb {
	case "LHLO", "HELO", "EHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "NOOP",
		"VRFY", "QUIT":
		return verb
	}
	return "OTHER"
}

// count counts a recipient's answer: a 4xx defers it, a positive answer
// after DATA delivers it.
func count(m Metrics, code int, afterData bool) {
	switch {
	case code >= 400 && code < 500:
		m.Deferred()
	case afterData && code >= 200 && code < 300:
		m.Delivered()
	}
}

// Server is a backend's LMTP service (RFC 2033): it delivers each
// recipient's copy of a message into the recipient's INBOX
// ("user.<name>"), or into "user.<name>.<detail>" for "name+detail" when
// that mailbox exists and its ACL gives "anyone" the post right "p"
// (Cyrus's rule), with one reply per recipient. A message is streamed into
// the store once and shared by every recipient; each 250 is sent only
// after the delivery is on disk.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	acc    *accept.Loop
	nextID atomic.Uint64
}

// NewServer checks cfg and returns a server that has not started
// listening.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("lmtp: server config needs Store")
	}
	if cfg.RequireAuth && cfg.Login == nil {
		return nil, errors.New("lmtp: RequireAuth needs Login")
	}
	switch cfg.Separator {
	case 0:
		cfg.Separator = '.'
	case '.', '/':
	default:
		return nil, errors.New("lmtp: separator is neither '.' nor '/'")
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "rookery"
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 100 << 20
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = 1000
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 4096
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1000
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log,
		acc: accept.New(accept.Config{Name: "lmtp", MaxConns: cfg.MaxConns, Busy: "421 4.3.2 Too many connections\r\n",
			LoginTimeout: cfg.LoginTimeout, Refused: cfg.Metrics.Refused, Logger: log})}, nil
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	return s.acc.Serve(ln, s.serveConn)
}

// Close stops accepting and ends every connection. A message being read
// is dropped (its client got no 250); deliveries being written finish
// first.
func (s *Server) Close() error {
	s.acc.Close()
	return nil
}

// Conns is the number of open connections.
func (s *Server) Conns() int { return s.acc.Conns() }

// serverSession is one client of the backend LMTP server; its goroutine
// alone reads and writes the connection.
type serverSession struct {
	srv    *Server
	pre    *accept.Preauth
	remote string
	// timed is the connection with the idle and write timeouts; STARTTLS
	// layers TLS over it.
	timed net.Conn
	r     *Reader
	w     *Writer
	log   *slog.Logger

	tls     bool   // under TLS (STARTTLS done, or an implicit-TLS listener)
	plainOK bool   // AUTH PLAIN allowed now
	helo    string // LHLO argument; empty before LHLO
	authed  bool
	// The transaction: open once MAIL is accepted.
	inTxn bool
	from  string
	size  int64 // MAIL's SIZE, 0 if not given
	rcpts []serverRcpt
}

// serverRcpt is an accepted recipient.
type serverRcpt struct {
	addr   string
	user   string
	detail string // after '+', may be empty
}

// Replies shared by several paths.
const (
	replyTempFail  = "4.3.0 Temporary failure, try again later"
	replyNoSpace   = "4.3.1 Mail system full, try again later"
	replyOverQuota = "4.2.2 Over quota"
	replyUnknown   = "5.1.1 User unknown"
	replyTooBig    = "5.3.4 Message size exceeds fixed limit"
)

func (s *Server) serveConn(c net.Conn, p *accept.Preauth) {
	ctx := s.acc.Context()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	sc := accept.Timeouts(ctx, c, p, s.cfg.IdleTimeout, s.cfg.WriteTimeout)
	ss := &serverSession{
		srv:    s,
		pre:    p,
		remote: c.RemoteAddr().String(),
		timed:  sc,
		r:      NewReader(bufio.NewReaderSize(sc, 32<<10), s.cfg.MaxLine),
		w:      NewWriter(bufio.NewWriterSize(sc, 4096)),
		log:    s.log.With("conn", s.nextID.Add(1), "remote", c.RemoteAddr().String()),
	}
	defer func() {
		if v := recover(); v != nil {
			ss.log.Error("lmtp: panic in session", "panic", v, "stack", string(debug.Stack()))
		}
	}()
	if tc, ok := c.(*tls.Conn); ok {
		if ss.handshake(tc) != nil {
			return
		}
		ss.tls = true
	}
	ss.plainOK = ss.tls || s.cfg.Plaintext == nil || s.cfg.Plaintext(c.RemoteAddr())
	ss.w.Reply(220, s.cfg.ServerName+" Rookery LMTP server ready")
	for {
		// Replies to pipelined commands go out together (RFC 2920).
		if ss.r.Buffered() == 0 {
			if err := ss.w.Flush(); err != nil {
				return
			}
		}
		cmd, err := ss.r.ReadCommand()
		if errors.Is(err, ErrLineTooLong) {
			s.cfg.Metrics.Command("OTHER")
			ss.w.Reply(500, "5.5.2 Line too long")
			continue
		}
		if err != nil {
			ss.hangUp(err)
			return
		}
		done := s.cfg.Metrics.Command(commandLabel(cmd.Verb))
		end := ss.command(cmd)
		done()
		if end {
			_ = ss.w.Flush()
			return
		}
	}
}

// hangUp tells a client that was idle too long why the session ends.
// Once the server is closing, the connection fails all I/O: the client
// just sees it close.
func (ss *serverSession) hangUp(err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) || ss.srv.acc.Context().Err() != nil {
		return
	}
	if ss.pre.LoginExpired() {
		ss.log.Info("lmtp: login timeout")
		ss.w.Reply(421, "4.4.2 Login timeout")
	} else {
		ss.log.Info("lmtp: idle timeout")
		ss.w.Reply(421, "4.4.2 Idle timeout")
	}
	_ = ss.w.Flush()
}

// command runs one command; it reports whether the session ends.
func (ss *serverSession) command(cmd Command) bool {
	switch cmd.Verb {
	case "LHLO":
		ss.lhlo(cmd.Arg)
	case "HELO", "EHLO":
		ss.w.Reply(500, "5.5.1 This is LMTP: use LHLO")
	case "STARTTLS":
		return ss.startTLS(cmd.Arg)
	case "AUTH":
		return ss.auth(cmd.Arg)
	case "MAIL":
		ss.mail(cmd.Arg)
	case "RCPT":
		ss.rcpt(cmd.Arg)
	case "DATA":
		return ss.data()
	case "RSET":
		ss.reset()
		ss.w.Reply(250, "2.0.0 Ok")
	case "NOOP":
		ss.w.Reply(250, "2.0.0 Ok")
	case "VRFY":
		ss.w.Reply(252, "2.5.2 Cannot VRFY user, but will accept message and attempt delivery")
	case "QUIT":
		ss.w.Reply(221, "2.0.0 Bye")
		return true
	default:
		ss.w.Reply(500, "5.5.2 Unrecognized command")
	}
	return false
}

func (ss *serverSession) reset() {
	ss.inTxn, ss.from, ss.size, ss.rcpts = false, "", 0, nil
}

func (ss *serverSession) lhlo(arg string) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		ss.w.Reply(501, "5.5.4 Syntax: LHLO hostname")
		return
	}
	ss.reset()
	ss.helo = arg
	if !ss.srv.cfg.RequireAuth {
		// Without AUTH, LHLO is as far as a client proves itself.
		ss.pre.Authenticated("")
	}
	cfg := &ss.srv.cfg
	lines := []string{cfg.ServerName, "8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING",
		"SIZE " + strconv.FormatInt(cfg.MaxMessageSize, 10)}
	if cfg.TLS != nil && !ss.tls {
		lines = append(lines, "STARTTLS")
	}
	if cfg.Login != nil && !ss.authed && ss.plainOK {
		lines = append(lines, "AUTH PLAIN")
	}
	ss.w.Reply(250, lines...)
}

// auth is AUTH PLAIN (RFC 4954); only admins may deliver.
func (ss *serverSession) auth(arg string) bool {
	cfg := &ss.srv.cfg
	mech, ir, _ := strings.Cut(arg, " ")
	switch {
	case cfg.Login == nil:
		ss.w.Reply(502, "5.5.1 AUTH not available")
		return false
	case ss.helo == "":
		ss.w.Reply(503, "5.5.1 LHLO first")
		return false
	case ss.authed:
		ss.w.Reply(503, "5.5.1 Already authenticated")
		return false
	case ss.inTxn:
		ss.w.Reply(503, "5.5.1 AUTH not allowed in a transaction")
		return false
	case !strings.EqualFold(mech, "PLAIN"):
		ss.w.Reply(504, "5.5.4 Unsupported mechanism")
		return false
	case !ss.plainOK:
		// RFC 4954 6.
		ss.w.Reply(538, "5.7.11 Encryption required for requested authentication mechanism")
		return false
	}
	if ir == "" {
		ss.w.Reply(334, "")
		if err := ss.w.Flush(); err != nil {
			return true
		}
		line, err := ss.r.ReadLine()
		if errors.Is(err, ErrLineTooLong) {
			ss.w.Reply(500, "5.5.2 Line too long")
			return false
		}
		if err != nil {
			return true
		}
		ir = line
	}
	switch ir {
	case "*":
		ss.w.Reply(501, "5.7.0 Authentication cancelled")
		return false
	case "=":
		ir = ""
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 {
		ss.w.Reply(501, "5.5.2 Invalid PLAIN response")
		return false
	}
	var id auth.Identity
	err = cfg.Throttle.Check(ss.remote, parts[1], func() (err error) {
		id, err = cfg.Login(parts[0], parts[1], parts[2])
		return err
	})
	if errors.Is(err, auth.ErrUnavailable) {
		ss.log.Warn("lmtp: authentication not checked: password source unavailable", "user", parts[1], "err", err)
		ss.w.Reply(454, "4.7.0 Temporary authentication failure")
		return false
	}
	if err == nil && !ss.mayDeliver(id) {
		err = auth.ErrNotAdmin
	}
	if err != nil {
		ss.log.Info("lmtp: authentication failed", "user", parts[1], "authzid", parts[0], "err", err)
		cfg.Metrics.LoginFailed()
		if p := cfg.FailedLoginPause; p > 0 {
			select {
			case <-time.After(p):
			case <-ss.srv.acc.Context().Done():
			}
		}
		ss.w.Reply(535, "5.7.8 Authentication failed")
		return false
	}
	ss.authed = true
	ss.pre.Authenticated(parts[1])
	ss.log = ss.log.With("user", parts[1])
	ss.w.Reply(235, "2.7.0 Authentication successful")
	return false
}

// mayDeliver reports whether an authenticated identity may deliver: an
// admin, or one of cfg.Admins (itself, or as the proxy acting for
// someone).
func (ss *serverSession) mayDeliver(id auth.Identity) bool {
	who := id.User
	if id.Proxy != "" {
		who = id.Proxy
	}
	return id.Admin || slices.Contains(ss.srv.cfg.Admins, who)
}

func (ss *serverSession) mail(arg string) {
	cfg := &ss.srv.cfg
	switch {
	case ss.helo == "":
		ss.w.Reply(503, "5.5.1 LHLO first")
		return
	case cfg.RequireAuth && !ss.authed:
		ss.w.Reply(530, "5.7.0 Authentication required")
		return
	case ss.inTxn:
		ss.w.Reply(503, "5.5.1 Nested MAIL command")
		return
	}
	from, params, err := ParsePath(arg, "FROM")
	if err != nil {
		ss.w.Reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
		return
	}
	var size int64
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		switch strings.ToUpper(k) {
		case "SIZE":
			size, err = strconv.ParseInt(v, 10, 64)
			if err != nil || size < 0 {
				ss.w.Reply(501, "5.5.4 Bad SIZE")
				return
			}
			if size > cfg.MaxMessageSize {
				ss.w.Reply(552, replyTooBig)
				return
			}
		case "BODY", "AUTH":
			// 8BITMIME needs nothing of us; AUTH= (RFC 4954 5) is
			// informational.
		default:
			ss.w.Reply(555, "5.5.4 Unsupported parameter "+k)
			return
		}
	}
	ss.inTxn, ss.from, ss.size = true, from, size
	ss.w.Reply(250, "2.1.0 Ok")
}

func (ss *serverSession) rcpt(arg string) {
	if !ss.inTxn {
		ss.w.Reply(503, "5.5.1 Need MAIL command")
		return
	}
	addr, params, err := ParsePath(arg, "TO")
	if err != nil || addr == "" {
		ss.w.Reply(501, "5.5.4 Syntax: RCPT TO:<address>")
		return
	}
	if len(params) > 0 {
		ss.w.Reply(555, "5.5.4 Unsupported parameter")
		return
	}
	if len(ss.rcpts) >= ss.srv.cfg.MaxRecipients {
		ss.postpone(452, "4.5.3 Too many recipients")
		return
	}
	// Without virtual domains the domain is not ours to check; user
	// names are matched in lower case (Cyrus's lmtp_downcase_rcpt).
	local, _, _ := strings.Cut(addr, "@")
	user, detail, _ := strings.Cut(local, "+")
	r := serverRcpt{addr: addr, user: strings.ToLower(user), detail: detail}
	mailbox, ok, err := ss.target(r)
	switch {
	case err != nil:
		ss.log.Error("lmtp: looking up a recipient", "rcpt", addr, "err", err)
		ss.postpone(451, replyTempFail)
		return
	case !ok:
		ss.w.Reply(550, replyUnknown)
		return
	}
	q, ok, err := ss.srv.cfg.Store.QuotaRoot(mailbox)
	if err != nil {
		ss.log.Error("lmtp: reading quota", "mailbox", mailbox, "err", err)
		ss.postpone(451, replyTempFail)
		return
	}
	// Refused here (as Cyrus does) when even the announced size, or one
	// more byte, would not fit; DATA checks again with the real size.
	if ok && q.Limit >= 0 && q.Used+max(ss.size, 1) > q.Limit*1024 {
		ss.postpone(452, replyOverQuota)
		return
	}
	ss.rcpts = append(ss.rcpts, r)
	ss.w.Reply(250, "2.1.5 Ok")
}

// target returns the mailbox a recipient's copy goes to; ok is false when
// the user has no INBOX here.
func (ss *serverSession) target(r serverRcpt) (mailbox string, ok bool, err error) {
	if r.user == "" {
		return "", false, nil
	}
	store := ss.srv.cfg.Store
	inbox := frontend.UserInbox(r.user)
	if r.detail != "" {
		if sub, valid := ss.detailMailbox(inbox, r.detail); valid {
			m, ok, err := store.Mailbox(sub)
			if err != nil {
				return "", false, err
			}
			if ok && anyoneMayPost(m.ACL) {
				return sub, true, nil
			}
		}
	}
	_, ok, err = store.Mailbox(inbox)
	if err != nil || !ok {
		return "", false, err
	}
	return inbox, true, nil
}

// detailMailbox is the internal name of the sub-mailbox a "+detail"
// names: its levels split on the separator and, with '/', a '.' inside
// a level stored as '^', as the IMAP listener names mailboxes.
func (ss *serverSession) detailMailbox(inbox, detail string) (string, bool) {
	sep := string(ss.srv.cfg.Separator)
	levels := strings.Split(detail, sep)
	for i, l := range levels {
		if l == "" || strings.ContainsAny(l, "\x00\x1f") {
			return "", false
		}
		if sep == "/" {
			if strings.Contains(l, "^") {
				return "", false
			}
			levels[i] = strings.ReplaceAll(l, ".", "^")
		}
	}
	return inbox + "." + strings.Join(levels, "."), true
}

// anyoneMayPost reports whether a Cyrus ACL ("id\trights\t...") gives
// "anyone" the post right, negative entries ("-anyone") taken away.
func anyoneMayPost(acl string) bool {
	f := strings.Split(acl, "\t")
	may := false
	for i := 0; i+1 < len(f); i += 2 {
		switch f[i] {
		case "anyone":
			may = may || strings.Contains(f[i+1], "p")
		case "-anyone":
			if strings.Contains(f[i+1], "p") {
				return false
			}
		}
	}
	return may
}

// data reads the message and delivers it to every accepted recipient,
// one reply each (RFC 2033 4.2); it reports whether the session ends.
func (ss *serverSession) data() bool {
	if !ss.inTxn || len(ss.rcpts) == 0 {
		ss.w.Reply(503, "5.5.1 No valid recipients")
		return false
	}
	defer ss.reset()
	cfg := &ss.srv.cfg
	ss.w.Reply(354, "Go ahead; end with <CRLF>.<CRLF>")
	if err := ss.w.Flush(); err != nil {
		return true
	}
	now := time.Now()
	trace := ss.traceHeader(now)
	src := &clientReader{r: ss.r.DotReader()}
	st, err := cfg.Store.Stage(ss.srv.acc.Context(), io.MultiReader(strings.NewReader(trace), src),
		cfg.MaxMessageSize+int64(len(trace)))
	if err != nil {
		if src.err != nil || ss.srv.acc.Context().Err() != nil {
			ss.log.Info("lmtp: message not received whole", "err", errors.Join(src.err, err))
			ss.hangUp(src.err)
			return true
		}
		// Read the rest, so that the next command is where the client
		// thinks it is.
		if _, derr := io.Copy(io.Discard, src); derr != nil {
			return true
		}
		text := replyTooBig
		code := 552
		switch {
		case errors.Is(err, mailstore.ErrTooBig):
		case errors.Is(err, mailstore.ErrNoSpace):
			code, text = 452, replyNoSpace
		case errors.Is(err, mailstore.ErrFailed):
			// The store logged its fault once.
			code, text = 451, replyTempFail
		default:
			ss.log.Error("lmtp: storing a message", "err", err)
			code, text = 451, replyTempFail
		}
		for range ss.rcpts {
			ss.answer(code, text)
		}
		return false
	}
	ss.deliver(st, now)
	return false
}

// deliver adds the staged message to each recipient's mailbox and
// replies for each. The first mailbox that takes it gets the staged body;
// the others get copies sharing it, so the body is stored once.
func (ss *serverSession) deliver(st *mailstore.Staged, date time.Time) {
	store := ss.srv.cfg.Store
	type reply struct {
		code int
		text string
	}
	done := make(map[string]reply) // by mailbox: a duplicate gets the same reply
	var firstID uint64
	var firstUID uint32
	for _, r := range ss.rcpts {
		mailbox, ok, err := ss.target(r)
		if err != nil || !ok {
			rep := reply{550, replyUnknown}
			if err != nil {
				ss.log.Error("lmtp: looking up a recipient", "rcpt", r.addr, "err", err)
				rep = reply{451, replyTempFail}
			}
			ss.answer(rep.code, rep.text)
			continue
		}
		if rep, ok := done[mailbox]; ok {
			ss.answer(rep.code, rep.text)
			continue
		}
		if firstUID == 0 {
			var res mailstore.AppendResult
			res, err = store.Append(mailbox, []mailstore.NewMessage{{InternalDate: date, Body: st}})
			if err == nil {
				firstID, firstUID = res.MailboxID, res.UIDs[0]
			}
		} else {
			var res mailstore.CopyResult
			res, err = store.Copy(firstID, []uint32{firstUID}, mailbox)
			if err == nil && len(res.DestUIDs) == 0 {
				// The first copy was expunged in the meantime, and the
				// shared body with it.
				err = errors.New("lmtp: delivered copy vanished before it could be shared")
			}
		}
		rep := reply{250, "2.1.5 Delivered"}
		switch {
		case err == nil:
			ss.log.Info("lmtp: delivered", "mailbox", mailbox, "from", ss.from)
		case errors.Is(err, mailstore.ErrOverQuota):
			rep = reply{452, replyOverQuota}
		case errors.Is(err, mailstore.ErrNoSpace):
			rep = reply{452, replyNoSpace}
		case errors.Is(err, mailstore.ErrFailed):
			rep = reply{451, replyTempFail}
		case errors.Is(err, mailstore.ErrNotFound) && !ss.exists(mailbox):
			rep = reply{550, replyUnknown}
		default:
			ss.log.Error("lmtp: delivering", "mailbox", mailbox, "err", err)
			rep = reply{451, replyTempFail}
		}
		done[mailbox] = rep
		ss.answer(rep.code, rep.text)
	}
	if firstUID == 0 {
		if err := st.Discard(); err != nil {
			ss.log.Warn("lmtp: dropping an undelivered message", "err", err)
		}
	}
}

// postpone refuses a recipient for now (4xx).
func (ss *serverSession) postpone(code int, text string) {
	ss.srv.cfg.Metrics.Deferred()
	ss.w.Reply(code, text)
}

// answer gives a recipient its reply after DATA.
func (ss *serverSession) answer(code int, text string) {
	count(ss.srv.cfg.Metrics, code, true)
	ss.w.Reply(code, text)
}

// exists tells a missing destination from a missing source after a
// failed copy.
func (ss *serverSession) exists(mailbox string) bool {
	_, ok, err := ss.srv.cfg.Store.Mailbox(mailbox)
	return ok || err != nil
}

// traceHeader is what a final delivery adds on top of the message:
// Return-Path (RFC 5321 4.4) and a Received line (with LMTPA after AUTH,
// RFC 3848).
func (ss *serverSession) traceHeader(now time.Time) string {
	with := "LMTP"
	if ss.authed {
		with = "LMTPA"
	}
	host, _, err := net.SplitHostPort(ss.remote)
	if err != nil {
		host = ss.remote
	}
	return "Return-Path: <" + ss.from + ">\r\n" +
		"Received: from " + ss.helo + " ([" + host + "])\r\n" +
		"\tby " + ss.srv.cfg.ServerName + " (Rookery) with " + with + ";\r\n" +
		"\t" + now.Format(time.RFC1123Z) + "\r\n"
}

// clientReader keeps the error of the client's side of a message apart
// from the store's.
type clientReader struct {
	r   io.Reader
	err error
}

func (c *clientReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}
