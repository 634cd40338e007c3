package imapproxy

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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rookery/rookery/listeners/accept"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
)

// bufSize is the size of each socket's read and write buffers; small, so
// that an idle session costs little.
const bufSize = 4096

// copyStep is how much of a literal is moved socket to socket (or
// skipped) between two deadline refreshes: a literal that moves at least
// this much per timeout is never cut.
const copyStep = 64 << 10

// optimistMax is the largest synchronising client literal the proxy
// accepts itself ("+ go ahead") instead of relaying the backend's
// continuation: small ones save a round trip, large ones should be
// refused by the backend before the client sends them (as Cyrus does for
// APPEND).
const optimistMax = 16 << 10

// copyBufs holds the buffers used while a literal streams through, so an
// idle session does not keep one.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// Texts Cyrus clients know.
const (
	textUnavailable = "[UNAVAILABLE] Server(s) unavailable to complete operation"
	textNoMailbox   = "Mailbox does not exist"
	textReserved    = "Mailbox is currently reserved"
)

// session is one client connection.
type session struct {
	srv  *Server
	conn net.Conn
	// r and w are nil while the session waits without them (idlebuf.go).
	r         *bufio.Reader
	w         *bufio.Writer
	out       deadlineWriter // what w writes to
	pr        pieceReader
	log       *slog.Logger
	tlsActive bool
	pre       *accept.Preauth

	user  string // set at login
	admin bool

	routes   frontend.Session
	backends map[string]*backend // by server name
	current  *backend            // the selected mailbox's backend
	selected string              // its internal name, while current is set
	enabled  []string            // extensions the client enabled
	sep      byte                // the hierarchy separator clients see
	notify   *notifier           // NOTIFY SET, if any (notify.go)
	// torn is set while a backend's response is partly relayed to the
	// client: a backend failing then leaves the client's stream broken
	// beyond repair, so the session ends, whichever backend it was.
	torn bool

	// closing is set by Server.Close; bconns lets it close backend
	// sockets a session goroutine may be blocked on.
	closing atomic.Bool
	mu      sync.Mutex
	bconns  map[net.Conn]struct{}
}

func newSession(srv *Server, c net.Conn, p *accept.Preauth) *session {
	s := &session{
		srv:      srv,
		conn:     c,
		pre:      p,
		log:      srv.log.With("conn", srv.nextID.Add(1), "remote", c.RemoteAddr().String()),
		routes:   srv.cfg.NewSession("imap"),
		backends: map[string]*backend{},
		bconns:   map[net.Conn]struct{}{},
		sep:      srv.cfg.Separator,
	}
	_, s.tlsActive = c.(*tls.Conn)
	s.setConn(c)
	return s
}

// setConn makes c the client connection, with fresh buffers; a
// connection it replaces (STARTTLS) has none of its bytes left in them.
func (s *session) setConn(c net.Conn) {
	if s.r != nil {
		putReader(s.r)
		s.r = nil
	}
	if s.w != nil {
		putWriter(s.w)
		s.w = nil
	}
	s.conn = c
	s.out = deadlineWriter{c, s.srv.cfg.Limits.WriteTimeout}
	s.pr = pieceReader{max: s.srv.cfg.Limits.MaxLine}
	s.takeReader()
	s.takeWriter()
}

// deadlineWriter arms the write deadline before every write: the
// session's buffered writer also flushes by itself when it fills, in the
// middle of a long answer, where a deadline left from an earlier command
// would have passed.
type deadlineWriter struct {
	conn    net.Conn
	timeout time.Duration
}

func (d deadlineWriter) Write(p []byte) (int, error) {
	_ = d.conn.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.conn.Write(p)
}

// shutdown makes the session end soon; it may be called from any
// goroutine.
func (s *session) shutdown() {
	s.closing.Store(true)
	_ = s.conn.SetReadDeadline(time.Now())
	s.mu.Lock()
	for c := range s.bconns {
		_ = c.Close()
	}
	s.mu.Unlock()
}

func (s *session) serve() {
	defer s.routes.End()
	defer s.closeBackends()
	defer s.stopNotify()
	s.log.Debug("imapproxy: connected")
	if tc, ok := s.conn.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(s.srv.cfg.Limits.ConnectTimeout))
		if err := tc.Handshake(); err != nil {
			s.log.Debug("imapproxy: TLS handshake failed", "err", err)
			return
		}
		_ = tc.SetDeadline(time.Time{})
	}
	s.untagged("OK [CAPABILITY " + s.srv.capabilities(false, s.tlsActive, false) + "] " +
		s.srv.cfg.ServerName + " Rookery IMAP proxy ready")
	for {
		if err := s.flush(); err != nil {
			return
		}
		s.releaseBufs()
		err := s.command()
		if err == nil {
			s.notifyDue()
			continue
		}
		if errors.Is(err, errLogout) {
			_ = s.flush()
			return
		}
		s.end(err)
		return
	}
}

// errLogout ends the session after LOGOUT.
var errLogout = errors.New("imapproxy: logout")

// end closes the session after a fatal error, telling the client why when
// it can still hear it.
func (s *session) end(err error) {
	s.takeWriter()
	var be *backendError
	switch {
	case s.closing.Load():
		s.bye("Server shutting down")
	case errors.Is(err, errLineTooLong):
		s.bye("Line too long")
	case errors.Is(err, errFatalLiteral):
		s.bye("[TOOBIG] Literal too large")
	case errors.As(err, &be):
		if s.torn {
			// Ends the half-relayed line, so that a client has a chance
			// to read the BYE; inside a literal it cannot.
			s.w.WriteString("\r\n")
		}
		if s.current != nil && s.current.server == be.server {
			s.log.Warn("imapproxy: lost the selected backend", "backend", be.server, "err", be.err)
			s.bye("Fatal error: Lost connection to selected backend")
			return
		}
		s.log.Warn("imapproxy: backend failed in the middle of a response", "backend", be.server, "err", be.err)
		s.bye("Fatal error: Lost connection to backend in the middle of a response")
	case isTimeout(err) && s.pre.LoginExpired():
		s.log.Info("imapproxy: login timeout")
		s.bye("Login timeout")
	case isTimeout(err):
		s.log.Debug("imapproxy: client timed out", "err", err)
		s.bye("Autologout; idle for too long")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.log.Debug("imapproxy: client went away", "user", s.user)
	default:
		s.log.Debug("imapproxy: session ended", "user", s.user, "err", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (s *session) bye(text string) {
	_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.w.WriteString("* BYE " + text + "\r\n")
	_ = s.w.Flush()
}

func (s *session) closeBackends() {
	for _, b := range s.backends {
		b.logout()
		s.routes.Closed(b.server)
	}
	s.backends = nil
	s.current = nil
	s.log.Debug("imapproxy: closed", "user", s.user)
}

// clientDeadline arms the client read deadline for one read step. It
// checks for shutdown after arming, so a shutdown that comes between the
// two is not undone.
func (s *session) clientDeadline() {
	_ = s.conn.SetReadDeadline(s.pre.Deadline(s.srv.cfg.Limits.IdleTimeout))
	if s.closing.Load() {
		_ = s.conn.SetReadDeadline(time.Now())
	}
}

func (s *session) writeDeadline() {
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.Limits.WriteTimeout))
}

func (s *session) flush() error {
	if s.w == nil || s.w.Buffered() == 0 {
		return nil
	}
	return s.w.Flush()
}

func (s *session) untagged(text string) {
	s.w.WriteString("* " + text + "\r\n")
}

func (s *session) tagged(tag, status, text string) {
	s.w.WriteString(tag + " " + status + " " + text + "\r\n")
}

// continueReq asks the client for a literal.
func (s *session) continueReq() error {
	s.w.WriteString("+ go ahead\r\n")
	return s.flush()
}

// command reads and runs one client command.
func (s *session) command() error {
	s.clientDeadline()
	s.awaitClient()
	s.takeBufs()
	piece, err := s.pr.next()
	if err != nil {
		return err
	}
	c, err := s.parseHead(piece)
	defer s.srv.cfg.Metrics.Command(commandLabel(c.name))()
	if err != nil {
		if err := c.drain(); err != nil {
			return err
		}
		tag := c.tag
		if tag == "" {
			tag = "*"
		}
		s.tagged(tag, "BAD", "Invalid tag or command")
		return nil
	}
	if s.user == "" {
		return s.unauthenticated(c)
	}
	return s.authenticated(c)
}

func (s *session) unauthenticated(c *command) error {
	switch c.name {
	case "CAPABILITY":
		return s.cmdCapability(c)
	case "NOOP":
		return s.noArgs(c, func() {})
	case "LOGOUT":
		return s.cmdLogout(c)
	case "ID":
		return s.cmdID(c)
	case "LOGIN":
		return s.cmdLogin(c)
	case "AUTHENTICATE":
		return s.cmdAuthenticate(c)
	case "STARTTLS":
		return s.cmdStartTLS(c)
	}
	return s.refuse(c, "BAD", "Please login first")
}

func (s *session) authenticated(c *command) error {
	switch c.name {
	case "CAPABILITY":
		return s.cmdCapability(c)
	case "LOGOUT":
		return s.cmdLogout(c)
	case "ID":
		return s.cmdID(c)
	case "LOGIN", "AUTHENTICATE":
		return s.refuse(c, "BAD", "Already logged in")
	case "STARTTLS":
		return s.refuse(c, "BAD", "Already logged in")
	case "NOOP":
		if s.current != nil {
			return s.piped(c)
		}
		return s.noArgs(c, func() {})
	case "ENABLE":
		return s.cmdEnable(c)
	case "NAMESPACE":
		return s.noArgs(c, func() {
			sep := string(s.sep)
			s.untagged(`NAMESPACE (("INBOX` + sep + `" "` + sep + `")) (("user` + sep + `" "` + sep + `")) (("" "` + sep + `"))`)
		})
	case "SELECT", "EXAMINE":
		return s.cmdSelect(c)
	case "LIST", "XLIST":
		return s.cmdList(c)
	case "LSUB":
		return s.cmdLsub(c)
	case "CREATE":
		return s.cmdCreate(c)
	case "APPEND":
		return s.cmdAppend(c)
	case "GETMETADATA", "SETMETADATA":
		return s.cmdMetadata(c)
	case "NOTIFY":
		return s.cmdNotify(c)
	case "STATUS", "GETACL", "MYRIGHTS", "LISTRIGHTS", "GETQUOTAROOT", "GETQUOTA":
		return s.routed(c, routeOpts{})
	case "DELETE", "SETACL", "DELETEACL", "SETQUOTA":
		return s.routed(c, routeOpts{changes: true})
	case "RENAME":
		return s.routed(c, routeOpts{changes: true, second: true})
	case "SUBSCRIBE":
		return s.cmdSubscribe(c, true)
	case "UNSUBSCRIBE":
		return s.cmdSubscribe(c, false)
	case "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "FETCH", "STORE", "SEARCH", "SORT", "THREAD",
		"UID FETCH", "UID STORE", "UID SEARCH", "UID SORT", "UID THREAD", "UID EXPUNGE", "IDLE",
		"COPY", "MOVE", "UID COPY", "UID MOVE", "CANCELUPDATE":
		if c.name == "IDLE" && s.current == nil && s.notify != nil {
			// NOTIFY makes IDLE useful without a mailbox selected.
			return s.pollIdle(c, nil)
		}
		if s.current == nil {
			return s.refuse(c, "BAD", "Please select a mailbox first")
		}
		switch c.name {
		case "IDLE":
			return s.cmdIdle(c)
		case "COPY", "MOVE", "UID COPY", "UID MOVE":
			return s.cmdCopy(c)
		}
		return s.piped(c)
	}
	return s.refuse(c, "BAD", "Unrecognized command")
}

// refuse skips the rest of c and answers it.
func (s *session) refuse(c *command, status, text string) error {
	if err := c.drain(); err != nil {
		return err
	}
	s.tagged(c.tag, status, text)
	return nil
}

// argError answers a command whose arguments could not be read: a
// literal over the limit (already consumed) or a syntax error. It returns
// the errors that end the session.
func (s *session) argError(c *command, err error) error {
	var tb *tooBigError
	switch {
	case errors.As(err, &tb):
		s.tagged(c.tag, "NO", "[TOOBIG] Literal too large")
		return nil
	case errors.Is(err, errSyntax):
		return s.refuse(c, "BAD", "Invalid arguments")
	case errors.Is(err, errBadName):
		return s.refuse(c, "NO", "Invalid mailbox name")
	}
	return err
}

// noArgs runs a command without arguments.
func (s *session) noArgs(c *command, run func()) error {
	if !c.atEnd() {
		return s.refuse(c, "BAD", "Unexpected extra arguments")
	}
	run()
	s.tagged(c.tag, "OK", "Completed")
	return nil
}

func (s *session) cmdCapability(c *command) error {
	return s.noArgs(c, func() {
		s.untagged("CAPABILITY " + s.srv.capabilities(true, s.tlsActive, s.user != ""))
	})
}

func (s *session) cmdLogout(c *command) error {
	if !c.atEnd() {
		return s.refuse(c, "BAD", "Unexpected extra arguments")
	}
	s.untagged("BYE LOGOUT received")
	s.tagged(c.tag, "OK", "Completed")
	return errLogout
}

func (s *session) cmdID(c *command) error {
	// The client's parameters are only informative; skip them.
	if err := c.drain(); err != nil {
		return err
	}
	s.untagged(`ID ("name" "Rookery" "vendor" "Rookery" "support-url" "https://github.com/rookery/rookery")`)
	s.tagged(c.tag, "OK", "Completed")
	return nil
}

func (s *session) cmdStartTLS(c *command) error {
	if s.srv.cfg.TLS == nil || s.tlsActive {
		return s.refuse(c, "BAD", "STARTTLS not available")
	}
	if !c.atEnd() {
		return s.refuse(c, "BAD", "Unexpected extra arguments")
	}
	s.tagged(c.tag, "OK", "Begin TLS negotiation now")
	if err := s.flush(); err != nil {
		return err
	}
	// Bytes sent after STARTTLS in the clear must not be taken as
	// commands under TLS (CVE-2011-0411 style injection).
	if s.r.Buffered() > 0 {
		return errors.New("imapproxy: data after STARTTLS")
	}
	tc := tls.Server(s.conn, s.srv.cfg.TLS)
	_ = tc.SetDeadline(time.Now().Add(s.srv.cfg.Limits.ConnectTimeout))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("imapproxy: starttls: %w", err)
	}
	_ = tc.SetDeadline(time.Time{})
	s.setConn(tc)
	s.tlsActive = true
	return nil
}

func (s *session) cmdLogin(c *command) error {
	if !s.srv.plaintextOK(s.tlsActive) {
		return s.refuse(c, "NO", "[PRIVACYREQUIRED] Login only available under a layer")
	}
	var user, pass string
	err := c.sp()
	if err == nil {
		user, err = c.astring()
	}
	if err == nil {
		err = c.sp()
	}
	if err == nil {
		pass, err = c.astring()
	}
	if err == nil {
		err = c.end()
	}
	if err != nil {
		return s.argError(c, err)
	}
	s.login(c.tag, user, pass, "User logged in")
	return nil
}

func (s *session) cmdAuthenticate(c *command) error {
	var mech, ir string
	err := c.sp()
	if err == nil {
		mech, err = c.atom()
	}
	if err == nil && !c.atEnd() {
		if err = c.sp(); err == nil {
			ir = c.token(func(b byte) bool { return b > ' ' && b < 0x7f })
		}
	}
	if err == nil {
		err = c.end()
	}
	if err != nil {
		return s.argError(c, err)
	}
	if !strings.EqualFold(mech, "PLAIN") {
		s.tagged(c.tag, "NO", "Unsupported authentication mechanism")
		return nil
	}
	if !s.srv.plaintextOK(s.tlsActive) {
		s.tagged(c.tag, "NO", "[PRIVACYREQUIRED] Authenticate only available under a layer")
		return nil
	}
	if ir == "" {
		s.w.WriteString("+ \r\n")
		if err := s.flush(); err != nil {
			return err
		}
		s.clientDeadline()
		line, err := s.pr.next()
		if err != nil {
			return err
		}
		ir = string(line)
	}
	if ir == "*" {
		s.tagged(c.tag, "BAD", "Client canceled authentication")
		return nil
	}
	if ir == "=" {
		ir = ""
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	parts := strings.Split(string(raw), "\x00")
	if err != nil || len(parts) != 3 {
		s.tagged(c.tag, "BAD", "Invalid base64 or PLAIN message")
		return nil
	}
	authzid, authcid, pass := parts[0], parts[1], parts[2]
	if authzid != "" && authzid != authcid {
		s.failLogin(c.tag, authcid, "authorization id differs")
		return nil
	}
	s.login(c.tag, authcid, pass, "Success (no protection)")
	return nil
}

func (s *session) login(tag, user, pass, okText string) {
	if user == "" || strings.ContainsAny(user, " \t\r\n\x00") {
		s.failLogin(tag, user, "invalid user name")
		return
	}
	if err := s.srv.cfg.Limits.Throttle.Verify(s.conn.RemoteAddr().String(), s.srv.cfg.Users, user, pass); errors.Is(err, auth.ErrUnavailable) {
		s.log.Warn("imapproxy: login not checked: password source unavailable", "user", user, "err", err)
		s.tagged(tag, "NO", textUnavailable)
		return
	} else if err != nil {
		s.failLogin(tag, user, err.Error())
		return
	}
	if !s.pre.Authenticated(user) {
		s.log.Warn("imapproxy: login refused: per-user connection limit", "user", user, "limit", s.srv.cfg.Limits.MaxConnsPerUser)
		s.tagged(tag, "NO", "[LIMIT] Too many open connections")
		return
	}
	s.user = user
	s.admin = slices.Contains(s.srv.cfg.Admins, user)
	s.log = s.log.With("user", user)
	s.routes.LoggedIn(user)
	s.log.Info("imapproxy: login")
	s.tagged(tag, "OK", "[CAPABILITY "+s.srv.capabilities(true, s.tlsActive, true)+"] "+okText)
}

func (s *session) failLogin(tag, user, why string) {
	s.log.Info("imapproxy: login failed", "user", user, "err", why)
	s.srv.cfg.Metrics.LoginFailed()
	if p := s.srv.cfg.Limits.FailedLoginPause; p > 0 {
		t := time.NewTimer(p)
		select {
		case <-t.C:
		case <-s.srv.ctx.Done():
			t.Stop()
		}
	}
	s.tagged(tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed")
}

// cmdEnable answers ENABLE itself for the extensions it passes through
// and remembers them, so each backend gets them before its first SELECT
// (Cyrus 3.6.1 forgot this, breaking QRESYNC after a backend switch).
func (s *session) cmdEnable(c *command) error {
	var newly []string
	for !c.atEnd() {
		var ext string
		err := c.sp()
		if err == nil {
			ext, err = c.atom()
		}
		if err != nil {
			return s.argError(c, err)
		}
		ext = strings.ToUpper(ext)
		exts := []string{ext}
		if ext == "QRESYNC" {
			exts = []string{"CONDSTORE", "QRESYNC"}
		}
		for _, e := range exts {
			if (e == "CONDSTORE" || e == "QRESYNC") && s.passthrough(e) && !slices.Contains(s.enabled, e) {
				s.enabled = append(s.enabled, e)
				newly = append(newly, e)
			}
		}
	}
	if len(newly) > 0 {
		s.untagged("ENABLED " + strings.Join(newly, " "))
		if s.current != nil {
			if err := s.enable(s.current); err != nil {
				return err
			}
		}
	}
	s.tagged(c.tag, "OK", "Completed")
	return nil
}

func (s *session) passthrough(ext string) bool {
	return slices.ContainsFunc(s.srv.cfg.Passthrough, func(p string) bool { return strings.EqualFold(p, ext) })
}

// enable sends b the extensions the client enabled that b has not had.
func (s *session) enable(b *backend) error {
	var todo []string
	for _, e := range s.enabled {
		if !b.enabled[e] {
			todo = append(todo, e)
			b.enabled[e] = true
		}
	}
	if len(todo) == 0 {
		return nil
	}
	untagged, status, text, err := b.simple("ENABLE " + strings.Join(todo, " "))
	if err != nil {
		return err
	}
	if b == s.current {
		// News about the selected mailbox may come with the answer.
		for _, u := range untagged {
			if isMessageUpdate([]byte(u)) {
				s.w.WriteString(u + "\r\n")
			}
		}
	}
	if status != "OK" {
		s.log.Warn("imapproxy: backend refused ENABLE", "backend", b.server, "status", status, "text", text)
	}
	return nil
}

// backendFor returns the session's connection to server, opening one if
// needed.
func (s *session) backendFor(server string) (*backend, error) {
	if b := s.backends[server]; b != nil {
		if b == s.current || b.alive() {
			return b, nil
		}
		s.dropBackend(b)
	}
	b, err := s.dialFor(server)
	if err != nil {
		return nil, err
	}
	cfg := &s.srv.cfg
	var missing []string
	for _, c := range cfg.Passthrough {
		if !b.caps[strings.ToUpper(c)] {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		s.log.Warn("imapproxy: backend lacks advertised extensions", "backend", server, "missing", missing)
	}
	s.mu.Lock()
	s.bconns[b.conn] = struct{}{}
	s.mu.Unlock()
	if s.closing.Load() {
		b.conn.Close()
	}
	s.backends[server] = b
	s.routes.Opened(server)
	return b, nil
}

// dialFor opens a new connection to server, logged in for the session's
// user; the caller owns it.
func (s *session) dialFor(server string) (*backend, error) {
	addr, _, _, ok := s.srv.cfg.Resolve(server)
	if !ok {
		s.log.Warn("imapproxy: backend unavailable", "backend", server, "err", "no address known")
		return nil, &backendError{server, errors.New("unknown server")}
	}
	cfg := &s.srv.cfg
	ctx, cancel := context.WithTimeout(s.srv.ctx, cfg.Limits.ConnectTimeout)
	defer cancel()
	b, err := dialBackend(ctx, server, addr, cfg.BackendTLS, s.user, cfg.Proxy.Authname, cfg.Proxy.PasswordFor(server),
		cfg.Limits.ConnectTimeout, cfg.Limits.BackendTimeout)
	if err != nil {
		s.log.Warn("imapproxy: backend unavailable", "backend", server, "err", err)
		return nil, err
	}
	return b, nil
}

// dropBackend closes b and forgets it.
func (s *session) dropBackend(b *backend) {
	b.logout()
	s.mu.Lock()
	delete(s.bconns, b.conn)
	s.mu.Unlock()
	if s.backends[b.server] == b {
		delete(s.backends, b.server)
		s.routes.Closed(b.server)
	}
	if s.current == b {
		s.current = nil
	}
}

// backendFailed answers a command that b could not complete. Losing the
// selected backend ends the session (the client's view of the mailbox is
// gone), as does one failing while its response was half relayed (the
// client's stream is); any other costs only the command, and the cause
// goes to the log, not to the client.
func (s *session) backendFailed(tag string, b *backend, err error) error {
	// A backend's own NO or BAD (the INBOX backend refusing LSUB) is its
	// answer to the client, and leaves the connection as it was.
	var refused *refusedError
	if errors.As(err, &refused) {
		s.tagged(tag, refused.status, refused.text)
		return nil
	}
	if b == s.current || s.torn {
		return err
	}
	s.dropBackend(b)
	s.log.Warn("imapproxy: backend failed", "backend", b.server, "err", err)
	s.tagged(tag, "NO", textUnavailable)
	return nil
}

// lookupErrText is what a client is told about a failed lookup.
// A failure to read the list (a store error, the proxy-session actor not
// answering in time) is not the mailbox's absence: a client told "does
// not exist" may forget the folder or offer to create it.
func (s *session) lookupErrText(err error) string {
	switch {
	case errors.Is(err, frontend.ErrReserved):
		return textReserved
	case errors.Is(err, frontend.ErrNoMailbox):
		return textNoMailbox
	}
	s.log.Warn("imapproxy: mailbox lookup failed", "err", err)
	return textUnavailable
}

// kick lets the node's replica catch up after a change the client made,
// so its next command sees it (Cyrus's "ultraparanoid" kick).
func (s *session) kick() {
	if s.srv.cfg.Kick == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.srv.ctx, s.srv.cfg.Limits.ConnectTimeout)
	defer cancel()
	if err := s.srv.cfg.Kick(ctx); err != nil {
		s.log.Warn("imapproxy: kicking the replica failed", "err", err)
	}
}
