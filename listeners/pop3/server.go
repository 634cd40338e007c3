package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rookery/rookery/listeners/accept"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store/mailstore"
)

// ServerConfig is what a backend POP3 listener needs from its node. Zero
// values take the defaults given.
type ServerConfig struct {
	ServerName string // in the greeting
	Store      *mailstore.Store
	// Login checks credentials (authzid empty for USER/PASS) and says who
	// the session acts as; auth.MailPolicy.Login fits, which lets the
	// proxyservers (a frontend's pop3 proxy) act for a user.
	Login func(authzid, authcid, password string) (auth.Identity, error)

	// MaxLine caps a command line; default 1024 (RFC 2449 allows 255
	// octets, AUTH's initial response needs more).
	MaxLine int
	// IdleTimeout ends a session that sends nothing for this long, without
	// committing its deletions (RFC 1939's autologout timer, at least 10
	// minutes); default 10 minutes.
	IdleTimeout time.Duration
	// WriteTimeout ends a session that does not read what it is sent;
	// default 60 s.
	WriteTimeout time.Duration
	// MaxConns caps connections; default 1000.
	MaxConns int
	// MaxConnsPerUser caps the logged-in sessions of one user; zero for
	// no cap (one maildrop is held by one session anyway).
	MaxConnsPerUser int
	// MaxConnsPerHost caps the connections from one IP address, refused
	// before the greeting; zero for no cap.
	MaxConnsPerHost int
	// LoginTimeout ends a connection that has not logged in this long
	// after connecting; default 1 minute. Connections not logged in may
	// hold at most half of MaxConns.
	LoginTimeout time.Duration
	// FailedLoginPause delays the reply to a failed login; zero or
	// negative for none.
	FailedLoginPause time.Duration
	// TLS enables STLS (RFC 2595); connections from a tls.Listener
	// (pop3s) are under TLS from their start. Nil: no TLS at all.
	TLS *tls.Config
	// Plaintext says whether USER/PASS and AUTH PLAIN may be used before
	// TLS on a connection from remote (allowplaintext, or a peer that
	// counts as secure); nil allows them on every connection.
	Plaintext func(remote net.Addr) bool
	// HandshakeTimeout bounds a TLS handshake; default 30 s.
	HandshakeTimeout time.Duration
	// Throttle refuses logins after repeated failures; nil: none.
	Throttle *auth.Throttle
	// Metrics counts commands; nil counts nothing.
	Metrics Metrics
	Logger  *slog.Logger // nil discards
}

// Metrics receives the counts of a POP3 server or proxy.
type Metrics interface {
	// Command counts a command received, by its upper-case name, or
	// "OTHER" for a name the server does not know (so that clients
	// cannot make up label values); done is called once its reply is
	// written, to time it.
	Command(name string) (done func())
	// LoginFailed counts a failed login (PASS, APOP or AUTH).
	LoginFailed()
	// Proxying counts a proxied session to backend: +1 when it starts,
	// -1 when it ends.
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

// Texts of the caps shared by server and proxy.
const (
	busyText     = "-ERR [SYS/TEMP] Too many connections\r\n"
	hostBusyText = "-ERR [SYS/TEMP] Too many connections from your address\r\n"
	userBusyText = "[SYS/TEMP] Too many open connections for this user"
)

// commandLabel is a command's name as counted.
func commandLabel(name string) string {
	switch name {
	case "CAPA", "QUIT", "USER", "PASS", "AUTH", "STLS", "STAT", "LIST", "UIDL", "RETR", "TOP",
		"DELE", "RSET", "NOOP":
		return name
	}
	return "OTHER"
}

// Server is a backend's POP3 service (RFC 1939, CAPA from RFC 2449, AUTH
// PLAIN from RFC 5034) on each user's INBOX ("user.<name>" in the store).
// The maildrop is a snapshot taken at login; DELE only marks, QUIT
// expunges the marked messages and sets \Seen on the retrieved ones, and
// a session that ends any other way changes nothing. One POP3 session at
// a time holds a maildrop, as Cyrus's pop3d does.
type Server struct {
	cfg    ServerConfig
	log    *slog.Logger
	acc    *accept.Loop
	nextID atomic.Uint64

	mu     sync.Mutex
	locked map[uint64]struct{} // mailbox ids of maildrops held by a session
}

// NewServer checks cfg and returns a server that has not started
// listening.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Store == nil || cfg.Login == nil {
		return nil, errors.New("pop3: server config needs Store and Login")
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "rookery"
	}
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 1024
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1000
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
	return &Server{cfg: cfg, log: log, locked: make(map[uint64]struct{}),
		acc: accept.New(accept.Config{Name: "pop3", MaxConns: cfg.MaxConns, Busy: busyText,
			MaxPerHost: cfg.MaxConnsPerHost, HostBusy: hostBusyText, MaxPerUser: cfg.MaxConnsPerUser,
			LoginTimeout: cfg.LoginTimeout, Refused: cfg.Metrics.Refused, Logger: log})}, nil
}

// Serve accepts connections on ln until Close.
func (s *Server) Serve(ln net.Listener) error {
	return s.acc.Serve(ln, s.serveConn)
}

// Close stops accepting and ends every session; sessions in the middle of
// QUIT finish their store write first.
func (s *Server) Close() error {
	s.acc.Close()
	return nil
}

// Conns is the number of open connections.
func (s *Server) Conns() int { return s.acc.Conns() }

// lock takes the maildrop of mailbox id for one session.
func (s *Server) lock(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.locked[id]; ok {
		return false
	}
	s.locked[id] = struct{}{}
	return true
}

func (s *Server) unlock(id uint64) {
	s.mu.Lock()
	delete(s.locked, id)
	s.mu.Unlock()
}

// serverSession is one client of the backend POP3 server; its goroutine
// alone reads and writes the connection.
type serverSession struct {
	srv  *Server
	conn net.Conn
	pre  *accept.Preauth
	// timed is conn with the idle and write timeouts; STLS layers TLS
	// over it.
	timed net.Conn
	r     *Reader
	w     *Writer
	log   *slog.Logger

	tls     bool // under TLS (STLS done, or an implicit-TLS listener)
	plainOK bool // USER/PASS and AUTH PLAIN allowed now

	user string    // from USER, waiting for PASS
	drop *maildrop // set in the TRANSACTION state
}

// maildrop is the snapshot of an INBOX a session works on.
type maildrop struct {
	mailbox     uint64
	uidValidity uint32
	msgs        []dropMessage // message n is msgs[n-1]
}

type dropMessage struct {
	msg       mailstore.Message
	deleted   bool
	retrieved bool
}

func (s *Server) serveConn(c net.Conn, p *accept.Preauth) {
	ctx := s.acc.Context()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	sc := accept.Timeouts(ctx, c, p, s.cfg.IdleTimeout, s.cfg.WriteTimeout)
	ss := &serverSession{
		srv:   s,
		conn:  c,
		pre:   p,
		timed: sc,
		r:     NewReader(bufio.NewReaderSize(sc, 4096), s.cfg.MaxLine),
		w:     NewWriter(bufio.NewWriterSize(sc, 32<<10)),
		log:   s.log.With("conn", s.nextID.Add(1), "remote", c.RemoteAddr().String()),
	}
	defer func() {
		if v := recover(); v != nil {
			ss.log.Error("pop3: panic in session", "panic", v, "stack", string(debug.Stack()))
		}
		if ss.drop != nil {
			s.unlock(ss.drop.mailbox)
		}
	}()
	if tc, ok := c.(*tls.Conn); ok {
		if ss.handshake(tc) != nil {
			return
		}
		ss.tls = true
	}
	ss.plainOK = ss.tls || s.cfg.Plaintext == nil || s.cfg.Plaintext(c.RemoteAddr())
	ss.w.OK(s.cfg.ServerName + " Rookery POP3 server ready")
	for {
		// Replies to pipelined commands go out together (RFC 2449 6.6).
		if ss.r.Buffered() == 0 {
			if err := ss.w.Flush(); err != nil {
				return
			}
		}
		cmd, err := ss.r.ReadCommand()
		if errors.Is(err, ErrLineTooLong) {
			s.cfg.Metrics.Command("OTHER")
			ss.w.Err("Line too long")
			continue
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil && p.LoginExpired() {
				ss.log.Info("pop3: login timeout")
				ss.w.Err("[SYS/TEMP] Login timeout")
				_ = ss.w.Flush()
			} else if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil {
				ss.log.Info("pop3: idle timeout")
				ss.w.Err("[SYS/TEMP] Idle timeout, deletions not committed")
				_ = ss.w.Flush()
			}
			return
		}
		done := s.cfg.Metrics.Command(commandLabel(cmd.Name))
		end := ss.command(cmd)
		done()
		if end {
			_ = ss.w.Flush()
			return
		}
	}
}

// command runs one command; it reports whether the session ends.
func (ss *serverSession) command(cmd Command) bool {
	if cmd.Name == "CAPA" {
		ss.capa()
		return false
	}
	if cmd.Name == "QUIT" {
		ss.quit()
		return true
	}
	if ss.drop == nil {
		return ss.authorization(cmd)
	}
	ss.transaction(cmd)
	return false
}

func (ss *serverSession) capa() {
	ss.w.OK("Capability list follows")
	dw := ss.w.DotWriter()
	caps := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER",
		"IMPLEMENTATION Rookery"}
	if ss.drop == nil {
		if ss.srv.cfg.TLS != nil && !ss.tls {
			caps = append(caps, "STLS")
		}
		if ss.plainOK {
			caps = append(caps, "USER", "SASL PLAIN")
		}
	}
	for _, c := range caps {
		_, _ = io.WriteString(dw, c+"\r\n")
	}
	_ = dw.Close()
}

// authorization runs a command of the AUTHORIZATION state.
func (ss *serverSession) authorization(cmd Command) bool {
	switch cmd.Name {
	case "STLS":
		return ss.startTLS(cmd.Args)
	case "USER":
		if !ss.plainOK {
			ss.w.Err("[AUTH] Plaintext login only over TLS (STLS)")
			return false
		}
		if len(cmd.Args) != 1 || cmd.Args[0] == "" {
			ss.w.Err("Syntax: USER name")
			return false
		}
		ss.user = cmd.Args[0]
		ss.w.OK("Name is a valid mailbox")
	case "PASS":
		if ss.user == "" {
			ss.w.Err("USER first")
			return false
		}
		user := ss.user
		ss.user = ""
		// RFC 1939 7: the password may hold spaces.
		ss.login("", user, strings.Join(cmd.Args, " "))
	case "AUTH":
		return ss.auth(cmd.Args)
	case "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP":
		ss.w.Err("Not logged in")
	default:
		ss.w.Err("Unrecognized command")
	}
	return false
}

// auth is AUTH (RFC 5034) with the one mechanism offered, PLAIN; it
// reports whether the session ends.
func (ss *serverSession) auth(args []string) bool {
	if len(args) == 0 {
		// Listing the mechanisms is what clients before RFC 5034 did.
		ss.w.OK("Mechanisms follow")
		dw := ss.w.DotWriter()
		if ss.plainOK {
			_, _ = io.WriteString(dw, "PLAIN\r\n")
		}
		_ = dw.Close()
		return false
	}
	if !strings.EqualFold(args[0], "PLAIN") || len(args) > 2 {
		ss.w.Err("Unsupported mechanism")
		return false
	}
	if !ss.plainOK {
		ss.w.Err("[AUTH] Plaintext login only over TLS (STLS)")
		return false
	}
	ir := ""
	if len(args) == 2 {
		ir = args[1]
	} else {
		ss.w.Line("+ ")
		if err := ss.w.Flush(); err != nil {
			return true
		}
		line, err := ss.r.ReadLine()
		if errors.Is(err, ErrLineTooLong) {
			ss.w.Err("Line too long")
			return false
		}
		if err != nil {
			return true
		}
		ir = line
	}
	switch ir {
	case "*":
		ss.w.Err("Authentication cancelled")
		return false
	case "=":
		ir = ""
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 {
		ss.w.Err("Invalid PLAIN response")
		return false
	}
	ss.login(parts[0], parts[1], parts[2])
	return false
}

// login checks credentials and opens the maildrop of the identity the
// session acts as.
func (ss *serverSession) login(authzid, authcid, password string) {
	cfg := &ss.srv.cfg
	var id auth.Identity
	err := cfg.Throttle.Check(ss.conn.RemoteAddr().String(), authcid, func() (err error) {
		id, err = cfg.Login(authzid, authcid, password)
		return err
	})
	if errors.Is(err, auth.ErrUnavailable) {
		ss.log.Warn("pop3: login not checked: password source unavailable", "user", authcid, "err", err)
		ss.w.Err("[SYS/TEMP] Authentication server unavailable")
		return
	}
	if err != nil {
		ss.log.Info("pop3: login failed", "user", authcid, "authzid", authzid, "err", err)
		cfg.Metrics.LoginFailed()
		if p := cfg.FailedLoginPause; p > 0 {
			select {
			case <-time.After(p):
			case <-ss.srv.acc.Context().Done():
			}
		}
		if errors.Is(err, auth.ErrNotAuthorized) {
			ss.w.Err("[AUTH] Not authorized to act as that user")
			return
		}
		ss.w.Err("[AUTH] Invalid login")
		return
	}
	log := ss.log.With("user", id.User)
	mb, ok, err := cfg.Store.Mailbox(frontend.UserInbox(id.User))
	if err != nil {
		log.Error("pop3: opening maildrop", "err", err)
		ss.w.Err("[SYS/TEMP] Unable to open maildrop")
		return
	}
	if !ok {
		log.Info("pop3: login without an INBOX")
		ss.w.Err("[SYS/PERM] Unable to open maildrop: no such mailbox")
		return
	}
	if !ss.srv.lock(mb.ID) {
		ss.w.Err("[IN-USE] Maildrop is locked by another POP3 session")
		return
	}
	drop := &maildrop{mailbox: mb.ID, uidValidity: mb.UIDValidity}
	err = cfg.Store.Messages(mb.ID, 1, ^uint32(0), func(m *mailstore.Message) bool {
		drop.msgs = append(drop.msgs, dropMessage{msg: *m})
		return true
	})
	if err != nil {
		ss.srv.unlock(mb.ID)
		log.Error("pop3: reading maildrop", "err", err)
		ss.w.Err("[SYS/TEMP] Unable to open maildrop")
		return
	}
	// Counted as logged in only now: a login that could not open its
	// maildrop keeps the login deadline and no user slot.
	if !ss.pre.Authenticated(id.User) {
		ss.srv.unlock(mb.ID)
		log.Warn("pop3: login refused: per-user connection limit", "limit", cfg.MaxConnsPerUser)
		ss.w.Err(userBusyText)
		return
	}
	ss.drop, ss.log = drop, log
	log.Info("pop3: login", "proxy", id.Proxy, "messages", len(drop.msgs))
	ss.w.OK("Mailbox locked and ready, " + strconv.Itoa(len(drop.msgs)) + " messages")
}

// transaction runs a command of the TRANSACTION state.
func (ss *serverSession) transaction(cmd Command) {
	d := ss.drop
	switch cmd.Name {
	case "STAT":
		n, size := 0, int64(0)
		for i := range d.msgs {
			if !d.msgs[i].deleted {
				n++
				size += d.msgs[i].msg.Size
			}
		}
		ss.w.OK(strconv.Itoa(n) + " " + strconv.FormatInt(size, 10))
	case "LIST", "UIDL":
		ss.listing(cmd)
	case "RETR":
		if m := ss.message(cmd.Args, 1); m != nil {
			ss.retrieve(m, -1)
		}
	case "TOP":
		m := ss.message(cmd.Args, 2)
		if m == nil {
			return
		}
		lines, err := strconv.Atoi(cmd.Args[1])
		if err != nil || lines < 0 {
			ss.w.Err("Syntax: TOP msg n")
			return
		}
		ss.retrieve(m, lines)
	case "DELE":
		if m := ss.message(cmd.Args, 1); m != nil {
			m.deleted = true
			ss.w.OK("Message deleted")
		}
	case "RSET":
		for i := range d.msgs {
			d.msgs[i].deleted = false
		}
		ss.w.OK("Maildrop has " + strconv.Itoa(len(d.msgs)) + " messages")
	case "NOOP":
		ss.w.OK("")
	case "USER", "PASS", "AUTH":
		ss.w.Err("Already logged in")
	default:
		ss.w.Err("Unrecognized command")
	}
}

// message returns the message named by args[0], checking that args has
// nargs arguments; it answers -ERR itself when there is none.
func (ss *serverSession) message(args []string, nargs int) *dropMessage {
	if len(args) != nargs {
		ss.w.Err("Wrong number of arguments")
		return nil
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > len(ss.drop.msgs) {
		ss.w.Err("No such message")
		return nil
	}
	m := &ss.drop.msgs[n-1]
	if m.deleted {
		ss.w.Err("Message " + args[0] + " already deleted")
		return nil
	}
	return m
}

// listing is LIST and UIDL, for one message or all that are not deleted.
func (ss *serverSession) listing(cmd Command) {
	item := func(n int, m *dropMessage) string {
		if cmd.Name == "LIST" {
			return strconv.Itoa(n) + " " + strconv.FormatInt(m.msg.Size, 10)
		}
		// Cyrus's default uidl_format: uidvalidity.uid, stable for the
		// life of the mailbox.
		return strconv.Itoa(n) + " " + strconv.FormatUint(uint64(ss.drop.uidValidity), 10) + "." +
			strconv.FormatUint(uint64(m.msg.UID), 10)
	}
	if len(cmd.Args) > 0 {
		if m := ss.message(cmd.Args, 1); m != nil {
			n, _ := strconv.Atoi(cmd.Args[0])
			ss.w.OK(item(n, m))
		}
		return
	}
	ss.w.OK("Listing follows")
	for i := range ss.drop.msgs {
		if m := &ss.drop.msgs[i]; !m.deleted {
			ss.w.Line(item(i+1, m))
		}
	}
	ss.w.Line(".")
}

// retrieve sends a message: all of it (lines < 0, RETR) or its header
// and its first lines body lines (TOP).
func (ss *serverSession) retrieve(m *dropMessage, lines int) {
	// The drop list may be stale: an IMAP session may have expunged the
	// message since login, and its body with it. One view keeps the record
	// and the body read below in agreement.
	view := ss.srv.cfg.Store.View()
	defer view.Close()
	cur, ok, err := view.Message(ss.drop.mailbox, m.msg.UID)
	if err != nil {
		ss.log.Error("pop3: reading message", "uid", m.msg.UID, "err", err)
		ss.w.Err("[SYS/TEMP] Unable to read message")
		return
	}
	if !ok {
		ss.w.Err("Message was removed by another session")
		return
	}
	body := view.OpenBody(&cur)
	defer body.Close()
	if lines < 0 {
		ss.w.OK(strconv.FormatInt(cur.Size, 10) + " octets")
	} else {
		ss.w.OK("Top of message follows")
	}
	dw := ss.w.DotWriter()
	var src io.Reader = body
	if lines >= 0 {
		src = &topReader{r: bufio.NewReaderSize(body, 4096), header: cur.HeaderSize, lines: lines}
	}
	if _, err := io.Copy(dw, src); err != nil {
		// Part of the message is out: the only honest end is to hang up.
		ss.log.Error("pop3: sending message", "uid", cur.UID, "err", err)
		_ = ss.conn.Close()
		return
	}
	_ = dw.Close()
	if lines < 0 {
		m.retrieved = true
	}
}

// topReader yields a message's header (header bytes) and then at most
// lines lines of its body.
type topReader struct {
	r      *bufio.Reader
	header int64
	lines  int
}

func (t *topReader) Read(p []byte) (int, error) {
	if t.header > 0 {
		if int64(len(p)) > t.header {
			p = p[:t.header]
		}
		n, err := t.r.Read(p)
		t.header -= int64(n)
		return n, err
	}
	if t.lines == 0 {
		return 0, io.EOF
	}
	if t.r.Buffered() == 0 {
		if _, err := t.r.Peek(1); err != nil {
			return 0, err
		}
	}
	buf, _ := t.r.Peek(min(t.r.Buffered(), len(p)))
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i+1]
		t.lines--
	}
	n := copy(p, buf)
	_, _ = t.r.Discard(n)
	return n, nil
}

// quit ends the session; in the TRANSACTION state it commits first
// (RFC 1939's UPDATE state).
func (ss *serverSession) quit() {
	d := ss.drop
	if d == nil {
		ss.w.OK(ss.srv.cfg.ServerName + " Rookery POP3 server signing off")
		return
	}
	var del, seen []uint32
	for i := range d.msgs {
		m := &d.msgs[i]
		switch {
		case m.deleted:
			del = append(del, m.msg.UID)
		case m.retrieved:
			seen = append(seen, m.msg.UID)
		}
	}
	store := ss.srv.cfg.Store
	if len(seen) > 0 {
		// As Cyrus's pop3d does: what was retrieved is seen in IMAP too.
		// A failure here loses nothing, so it does not fail QUIT.
		if _, err := store.SetFlags(d.mailbox, seen, mailstore.FlagsAdd, []string{`\Seen`}, 0); err != nil {
			ss.log.Warn("pop3: marking retrieved messages seen", "err", err)
		}
	}
	left := len(d.msgs) - len(del)
	// The maildrop is free once the store is written and before the
	// reply goes out: a client that logs in again the moment it reads
	// the reply must not find it locked.
	defer func() {
		ss.srv.unlock(d.mailbox)
		ss.drop = nil
	}()
	if len(del) > 0 {
		if _, err := store.Expunge(d.mailbox, del); err != nil {
			ss.log.Error("pop3: removing deleted messages", "err", err)
			ss.w.Err("[SYS/TEMP] Some deleted messages not removed")
			return
		}
		ss.log.Info("pop3: messages removed", "count", len(del))
	}
	ss.w.OK(ss.srv.cfg.ServerName + " Rookery POP3 server signing off (" + strconv.Itoa(left) + " messages left)")
}
