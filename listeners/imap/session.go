package imap

import (
	"bufio"
	"bytes"
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
	"time"

	"github.com/rookery/rookery/listeners/accept"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/store/mailstore"
)

// session is one connection; its goroutine is the only one to write to it.
type session struct {
	srv  *Server
	conn net.Conn
	pre  *accept.Preauth
	// timed is conn with the idle and write timeouts; STARTTLS layers
	// TLS over it.
	timed net.Conn
	r     *reader
	w     *writer
	log   *slog.Logger

	id        auth.Identity
	authed    bool
	condstore bool // CONDSTORE enabled (ENABLE or SELECT (CONDSTORE))
	qresync   bool // QRESYNC enabled (it implies CONDSTORE)
	rev2      bool // IMAP4rev2 enabled (rev2.go)
	sel       *selected
	tls       bool       // under TLS (STARTTLS done, or an implicit-TLS listener)
	plainOK   bool       // LOGIN and AUTHENTICATE PLAIN allowed now
	closing   bool       // LOGOUT or BYE sent
	notify    *notifying // NOTIFY SET, if any
	cmd       string     // name of the command running, upper case, without UID
}

// errClose ends the session after the current reply.
var errClose = errors.New("imap: closing")

// errBroken ends the session at once: a response was left unfinished, so
// nothing more can be written on the connection.
var errBroken = errors.New("imap: response broken off")

func (s *Server) serveConn(c net.Conn, p *accept.Preauth) {
	tc := accept.Timeouts(s.ctx, c, p, s.cfg.IdleTimeout, s.cfg.WriteTimeout)
	sess := &session{
		srv:   s,
		conn:  c,
		pre:   p,
		timed: tc,
		w:     &writer{bw: bufio.NewWriterSize(tc, 32<<10)},
		log:   s.cfg.Logger.With("conn", s.nextID.Add(1), "remote", c.RemoteAddr().String()),
	}
	sess.r = &reader{
		br: bufio.NewReaderSize(tc, 32<<10), maxLine: s.cfg.MaxLine, maxString: s.cfg.MaxString,
		maxDiscard: 4 * s.cfg.MaxMessageSize,
		cont: func() error {
			sess.w.raw("+ go ahead\r\n")
			return sess.w.flush()
		},
	}
	defer func() {
		if v := recover(); v != nil {
			sess.log.Error("imap: panic in session", "panic", v, "stack", string(debug.Stack()))
		}
		sess.unselect()
		sess.stopNotify()
		_ = c.Close()
	}()
	if tlc, ok := c.(*tls.Conn); ok {
		if err := sess.handshake(tlc); err != nil {
			return
		}
		sess.tls = true
	}
	sess.plainOK = sess.tls || s.cfg.Plaintext == nil || s.cfg.Plaintext(c.RemoteAddr())
	sess.w.raw("* OK [CAPABILITY ").raw(sess.capabilities()).raw("] ").raw(s.cfg.ServerName).
		raw(" Rookery IMAP server ").raw(s.cfg.Version).raw(" ready\r\n")
	if sess.w.flush() != nil {
		return
	}
	for !sess.closing {
		err := sess.r.readLine()
		if err != nil {
			sess.ended(err)
			return
		}
		if err := sess.command(); err != nil {
			if errors.Is(err, errBroken) {
				return
			}
			if errors.Is(err, errClose) {
				_ = sess.w.flush()
			} else {
				sess.ended(err)
			}
			return
		}
		if err := sess.w.flush(); err != nil {
			return
		}
	}
	_ = sess.w.flush()
}

// ended says goodbye where the peer can still hear it.
func (sess *session) ended(err error) {
	switch {
	case errors.Is(err, errLineTooLong):
		sess.w.raw("* BYE Line too long\r\n")
	case errors.Is(err, os.ErrDeadlineExceeded) && sess.pre.LoginExpired():
		sess.log.Info("imap: login timeout")
		sess.w.raw("* BYE Login timeout\r\n")
	case errors.Is(err, os.ErrDeadlineExceeded):
		sess.w.raw("* BYE Idle timeout\r\n")
	case sess.srv.ctx.Err() != nil:
		sess.w.raw("* BYE Server shutting down\r\n")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return
	default:
		sess.log.Info("imap: connection ended", "err", err)
		return
	}
	_ = sess.w.flush()
}

// capabilities lists what the session may use now.
func (sess *session) capabilities() string {
	if !sess.authed {
		caps := "IMAP4rev1 IMAP4rev2 LITERAL+ ID ENABLE SASL-IR"
		if sess.srv.cfg.TLS != nil && !sess.tls {
			caps += " STARTTLS"
		}
		if !sess.plainOK {
			return caps + " LOGINDISABLED"
		}
		return caps + " AUTH=PLAIN"
	}
	return "IMAP4rev1 IMAP4rev2 LITERAL+ ID ENABLE ACL RIGHTS=kxten QUOTA QUOTA=RES-STORAGE NAMESPACE UIDPLUS " +
		"UNSELECT CHILDREN MULTIAPPEND IDLE MOVE SPECIAL-USE CREATE-SPECIAL-USE CONDSTORE QRESYNC SASL-IR " +
		"LIST-EXTENDED LIST-STATUS XLIST " +
		"SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT THREAD=REFERENCES ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH CONTEXT=SORT " +
		"STATUS=SIZE BINARY CATENATE METADATA METADATA-SERVER OBJECTID NOTIFY SAVEDATE APPENDLIMIT=" + strconv.FormatInt(sess.srv.cfg.MaxMessageSize, 10)
}

// handler runs one command after its name; it parses its arguments,
// acts, writes untagged replies and returns the OK response code (may be
// empty) or an error.
type handler func(sess *session, tag string, uid bool) (string, error)

type command struct {
	run handler
	// state the command needs: 0 any, 1 authenticated, 2 selected
	state int
	// allowExpunge: untagged EXPUNGE may precede the tagged reply (not
	// after FETCH, STORE or SEARCH by sequence number)
	allowExpunge bool
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"CAPABILITY":   {cmdCapability, 0, true},
		"NOOP":         {cmdNoop, 0, true},
		"LOGOUT":       {cmdLogout, 0, true},
		"LOGIN":        {cmdLogin, 0, true},
		"STARTTLS":     {cmdStartTLS, 0, true},
		"AUTHENTICATE": {cmdAuthenticate, 0, true},
		"ID":           {cmdID, 0, true},
		"ENABLE":       {cmdEnable, 1, true},
		"NAMESPACE":    {cmdNamespace, 1, true},
		"SELECT":       {cmdSelect, 1, true},
		"EXAMINE":      {cmdSelect, 1, true},
		"CREATE":       {cmdCreate, 1, true},
		"DELETE":       {cmdDelete, 1, true},
		"RENAME":       {cmdRename, 1, true},
		"SUBSCRIBE":    {cmdSubscribe, 1, true},
		"UNSUBSCRIBE":  {cmdSubscribe, 1, true},
		"LIST":         {cmdList, 1, true},
		"LSUB":         {cmdLsub, 1, true},
		"XLIST":        {cmdList, 1, true},
		"STATUS":       {cmdStatus, 1, true},
		"APPEND":       {cmdAppend, 1, true},
		"LOCALAPPEND":  {cmdAppend, 1, true},
		"IDLE":         {cmdIdle, 1, true},
		"GETACL":       {cmdGetACL, 1, true},
		"SETACL":       {cmdSetACL, 1, true},
		"DELETEACL":    {cmdSetACL, 1, true},
		"MYRIGHTS":     {cmdMyRights, 1, true},
		"LISTRIGHTS":   {cmdListRights, 1, true},
		"GETQUOTA":     {cmdGetQuota, 1, true},
		"GETQUOTAROOT": {cmdGetQuotaRoot, 1, true},
		"SETQUOTA":     {cmdSetQuota, 1, true},
		"CHECK":        {cmdNoop, 2, true},
		"CLOSE":        {cmdClose, 2, true},
		"UNSELECT":     {cmdClose, 2, true},
		"EXPUNGE":      {cmdExpunge, 2, true},
		"FETCH":        {cmdFetch, 2, false},
		"STORE":        {cmdStore, 2, false},
		"SEARCH":       {cmdSearch, 2, false},
		"CANCELUPDATE": {cmdCancelUpdate, 2, true},
		"GETMETADATA":  {cmdGetMetadata, 1, true},
		"NOTIFY":       {cmdNotify, 1, true},
		"LOCALCREATE":  {cmdLocalCreate, 1, true},
		"LOCALDELETE":  {cmdLocalDelete, 1, true},
		"SETMETADATA":  {cmdSetMetadata, 1, true},
		"SORT":         {cmdSort, 2, false},
		"THREAD":       {cmdThread, 2, false},
		"COPY":         {cmdCopy, 2, true},
		"MOVE":         {cmdCopy, 2, true},
	}
}

// uidCommands may follow "UID".
var uidCommands = map[string]bool{"FETCH": true, "STORE": true, "SEARCH": true, "COPY": true, "MOVE": true, "EXPUNGE": true,
	"SORT": true, "THREAD": true}

// command reads and runs one command whose first line is in sess.r.
func (sess *session) command() error {
	r := sess.r
	r.err = nil
	r.discard = 0
	tag := r.tag()
	if r.err != nil {
		sess.srv.cfg.Metrics.Command("OTHER")
		sess.w.raw("* BAD Invalid tag\r\n")
		return r.skip()
	}
	r.sp()
	name := strings.ToUpper(r.atom())
	uid := false
	if name == "UID" && r.err == nil {
		r.sp()
		name = strings.ToUpper(r.atom())
		uid = true
		if r.err == nil && !uidCommands[name] {
			r.fail(bad("Unrecognized UID subcommand"))
		}
	}
	cmd, known := commands[name]
	defer sess.srv.cfg.Metrics.Command(commandLabel(name, uid, known))()
	var code string
	err := r.err
	switch {
	case err != nil:
	case !known:
		err = bad("Unrecognized command")
	case cmd.state >= 1 && !sess.authed:
		err = bad("Please login first")
	case cmd.state == 2 && sess.sel == nil:
		err = bad("Please select a mailbox first")
	default:
		sess.cmd = name
		code, err = sess.run(cmd.run, tag, uid, name)
	}
	if err != nil && sess.w.open {
		// Writing a status now would land inside the open response.
		sess.log.Error("imap: response broken off", "cmd", name, "user", sess.id.User, "err", err)
		return errBroken
	}
	if err == nil {
		if sess.closing {
			sess.w.status(tag, "OK", code, "Completed")
			return errClose
		}
		if err := sess.updateAll(cmd.allowExpunge || uid); err != nil {
			return err
		}
		sess.w.status(tag, "OK", code, "Completed")
		return nil
	}
	if errors.Is(err, mailstore.ErrFailed) || errors.Is(err, mailstore.ErrNoSpace) {
		err = storeError(err)
	}
	var ie *Error
	switch {
	case errors.As(err, &ie):
		if err := r.skip(); err != nil {
			return err
		}
		kind := "NO"
		if ie.Bad {
			kind = "BAD"
		}
		if ie.Cause != nil {
			sess.log.Info("imap: command refused", "cmd", name, "user", sess.id.User, "reply", ie.Text, "err", ie.Cause)
		}
		if !ie.Bad && sess.authed {
			if err := sess.updateAll(cmd.allowExpunge || uid); err != nil {
				return err
			}
		}
		sess.w.status(tag, kind, ie.Code, ie.Text)
		if sess.closing {
			return errClose
		}
		return nil
	case errors.Is(err, errClose):
		return err
	case errors.Is(err, errReplied):
		return nil
	case isConnError(err):
		return err
	default:
		sess.log.Error("imap: command failed", "cmd", name, "user", sess.id.User, "err", err)
		if err := r.skip(); err != nil {
			return err
		}
		sess.w.status(tag, "NO", "SERVERBUG", "Internal error")
		return nil
	}
}

// commandLabel is a command's name as counted.
func commandLabel(name string, uid, known bool) string {
	switch {
	case !known || (uid && !uidCommands[name]):
		return "OTHER"
	case uid:
		return "UID " + name
	}
	return name
}

// run calls a handler, turning a panic into an internal error.
func (sess *session) run(h handler, tag string, uid bool, name string) (code string, err error) {
	defer func() {
		if v := recover(); v != nil {
			sess.log.Error("imap: panic in command", "cmd", name, "panic", v, "stack", string(debug.Stack()))
			err = errClose
			sess.w.raw("* BYE Internal error\r\n")
		}
	}()
	return h(sess, tag, uid)
}

// isConnError reports errors of the connection itself, after which no
// reply can be sent.
func isConnError(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, errLineTooLong) || errors.As(err, &ne)
}

// tag reads a command tag: atom characters except '+'.
func (r *reader) tag() string {
	start := r.pos
	for r.pos < len(r.line) && isAtomChar(r.line[r.pos], false) && r.line[r.pos] != '+' {
		r.pos++
	}
	if r.pos == start {
		r.syntax("missing tag")
	}
	return string(r.line[start:r.pos])
}

func cmdCapability(sess *session, _ string, _ bool) (string, error) {
	if err := sess.r.end(); err != nil {
		return "", err
	}
	sess.w.raw("* CAPABILITY ").raw(sess.capabilities()).raw("\r\n")
	return "", nil
}

func cmdNoop(sess *session, _ string, _ bool) (string, error) {
	return "", sess.r.end()
}

func cmdLogout(sess *session, _ string, _ bool) (string, error) {
	if err := sess.r.end(); err != nil {
		return "", err
	}
	sess.w.raw("* BYE LOGOUT received\r\n")
	sess.closing = true
	return "", nil
}

func cmdID(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	if r.peek() == '(' {
		r.list(func() { r.str(); r.sp(); r.nstring() })
	} else {
		r.nil()
	}
	if err := r.end(); err != nil {
		return "", err
	}
	sess.w.raw(`* ID ("name" "Rookery" "version" `).str(sess.srv.cfg.Version).raw(` "vendor" "Rookery")` + "\r\n")
	return "", nil
}

// nstring reads a string or NIL.
func (r *reader) nstring() string {
	if r.peek() == 'N' || r.peek() == 'n' {
		r.nil()
		return ""
	}
	return r.str()
}

func (r *reader) nil() {
	if !strings.EqualFold(r.atom(), "NIL") && r.err == nil {
		r.syntax("expected NIL")
	}
}

func cmdLogin(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	user := r.astring()
	r.sp()
	pass := r.astring()
	if err := r.end(); err != nil {
		return "", err
	}
	if !sess.plainOK {
		return "", noCode("PRIVACYREQUIRED", "Login only available under a layer")
	}
	return sess.login("", user, pass)
}

func cmdAuthenticate(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	mech := strings.ToUpper(r.atom())
	var initial string
	hasInitial := r.maybeSP()
	if hasInitial {
		initial = r.atomChars(false)
	}
	if err := r.end(); err != nil {
		return "", err
	}
	if sess.authed {
		return "", bad("Already authenticated")
	}
	if mech != "PLAIN" {
		return "", no("Mechanism not supported")
	}
	if !sess.plainOK {
		return "", noCode("PRIVACYREQUIRED", "Authentication only available under a layer")
	}
	if !hasInitial {
		sess.w.raw("+ \r\n")
		if err := sess.w.flush(); err != nil {
			return "", err
		}
		if err := r.readLine(); err != nil {
			return "", err
		}
		initial = string(r.line)
		r.pos = len(r.line)
	}
	if initial == "*" {
		return "", bad("Authentication cancelled")
	}
	if initial == "=" {
		initial = ""
	}
	raw, err := base64.StdEncoding.DecodeString(initial)
	if err != nil {
		return "", bad("Invalid base64 string")
	}
	f := bytes.Split(raw, []byte{0})
	if len(f) != 3 {
		return "", no("Login failed: malformed PLAIN response")
	}
	return sess.login(string(f[0]), string(f[1]), string(f[2]))
}

// login checks credentials and enters the authenticated state.
func (sess *session) login(authzid, authcid, password string) (string, error) {
	if sess.authed {
		return "", bad("Already authenticated")
	}
	var id auth.Identity
	err := sess.srv.cfg.Throttle.Check(sess.conn.RemoteAddr().String(), authcid, func() (err error) {
		id, err = sess.srv.cfg.Login(authzid, authcid, password)
		return err
	})
	if errors.Is(err, auth.ErrUnavailable) {
		sess.log.Warn("imap: login not checked: password source unavailable", "user", authcid, "err", err)
		return "", noCode("UNAVAILABLE", "Login failed: authentication server unavailable")
	}
	if err != nil {
		sess.log.Info("imap: login failed", "user", authcid, "authzid", authzid, "err", err)
		sess.srv.cfg.Metrics.LoginFailed()
		if p := sess.srv.cfg.FailedLoginPause; p > 0 {
			select {
			case <-time.After(p):
			case <-sess.srv.ctx.Done():
			}
		}
		if errors.Is(err, auth.ErrNotAuthorized) {
			return "", noCode("AUTHORIZATIONFAILED", "Login failed: authorization failure")
		}
		return "", noCode("AUTHENTICATIONFAILED", "Login failed: authentication failure")
	}
	if !sess.pre.Authenticated(id.User) {
		sess.log.Warn("imap: login refused: per-user connection limit", "user", id.User, "limit", sess.srv.cfg.MaxConnsPerUser)
		return "", noCode("LIMIT", "Too many open connections for this user")
	}
	sess.id, sess.authed = id, true
	sess.log = sess.log.With("user", id.User)
	sess.log.Info("imap: login", "proxy", id.Proxy, "admin", id.Admin)
	return "CAPABILITY " + sess.capabilities(), nil
}

func cmdEnable(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	var caps []string
	for r.maybeSP() {
		caps = append(caps, strings.ToUpper(r.atom()))
	}
	if err := r.end(); err != nil {
		return "", err
	}
	if len(caps) == 0 {
		return "", bad("Missing argument")
	}
	var enabled []string
	for _, c := range caps {
		if c == "CONDSTORE" && !sess.condstore {
			sess.condstore = true
			enabled = append(enabled, c)
		}
		if c == "QRESYNC" && !sess.qresync {
			sess.qresync, sess.condstore = true, true
			enabled = append(enabled, c)
		}
		if c == "IMAP4REV2" && !sess.rev2 {
			sess.rev2 = true
			enabled = append(enabled, "IMAP4rev2")
		}
	}
	sess.w.raw("* ENABLED")
	for _, c := range enabled {
		sess.w.raw(" ").raw(c)
	}
	sess.w.raw("\r\n")
	return "", nil
}

func cmdNamespace(sess *session, _ string, _ bool) (string, error) {
	if err := sess.r.end(); err != nil {
		return "", err
	}
	sep := string(sess.srv.ns.sep)
	sess.w.raw(`* NAMESPACE (("INBOX` + sep + `" "` + sep + `")) (("user` + sep + `" "` + sep + `")) (("" "` + sep + `"))` + "\r\n")
	return "", nil
}

// cmdIdle waits for DONE while telling the client of changes to the selected
// mailbox as they are made, by this server or any other writer of the
// store (LMTP).
func cmdIdle(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	if err := r.end(); err != nil {
		return "", err
	}
	sess.w.raw("+ idling\r\n")
	if err := sess.w.flush(); err != nil {
		return "", err
	}
	lines := make(chan error, 1)
	go func() { lines <- r.readLine() }()
	var watch, notified <-chan struct{}
	if sess.sel != nil {
		watch = sess.sel.watch
	}
	if sess.notify != nil {
		notified = sess.notify.ch
	}
	broken := func(err error) (string, error) {
		// The reader goroutine owns sess.r until it returns.
		if !errors.Is(err, errClose) {
			_ = sess.w.flush()
		}
		_ = sess.conn.Close()
		<-lines
		return "", errors.Join(err, net.ErrClosed)
	}
	for {
		select {
		case err := <-lines:
			if err != nil {
				return "", err
			}
			r.pos = len(r.line)
			if !strings.EqualFold(string(r.line), "DONE") {
				return "", bad("Invalid Idle continuation")
			}
			return "", nil
		case <-watch:
			err := sess.update(true)
			if err == nil {
				err = sess.notifyChanges()
			}
			if err == nil {
				err = sess.w.flush()
			}
			if err != nil {
				return broken(err)
			}
		case <-notified:
			err := sess.notifyAll()
			if err == nil {
				err = sess.w.flush()
			}
			if err != nil {
				return broken(err)
			}
		case <-sess.srv.ctx.Done():
			// Close closes the connection, which ends the reader too.
			<-lines
			return "", net.ErrClosed
		}
	}
}

// updateAll is update, then what NOTIFY watches.
func (sess *session) updateAll(allowExpunge bool) error {
	if err := sess.update(allowExpunge); err != nil {
		return err
	}
	return sess.notifyChanges()
}

// mailboxArg reads a mailbox name and returns it with its internal name.
func (sess *session) mailboxArg() (ext, name string) {
	ext = sess.fromWire(sess.r.astring())
	if sess.r.err != nil {
		return "", ""
	}
	if strings.EqualFold(ext, "INBOX") {
		ext = "INBOX"
	}
	name, ok := sess.srv.ns.internal(sess.id.User, ext)
	if !ok {
		sess.r.fail(no("Invalid mailbox name"))
	}
	return ext, name
}

// rightsOn returns the session's rights on a mailbox.
func (sess *session) rightsOn(m *mailstore.Mailbox) rights {
	return myRights(m.ACL, m.Name, sess.id.User, sess.id.Admin)
}

// lookup finds a mailbox the user may see; one it may not see does not
// exist as far as the user can tell.
func (sess *session) lookup(name string) (mailstore.Mailbox, rights, error) {
	m, ok, err := sess.srv.cfg.Store.Mailbox(name)
	if err != nil {
		return m, 0, err
	}
	if !ok {
		return m, 0, noCode("TRYCREATE", "Mailbox does not exist")
	}
	rt := sess.rightsOn(&m)
	if rt&(rLookup|rRead|rInsert|rCreate|rDeleteMbox|rAdmin) == 0 {
		return m, 0, no("Mailbox does not exist")
	}
	return m, rt, nil
}

// need checks rights, in Cyrus's words.
func need(have, want rights) error {
	if have&want != want {
		return no("Permission denied")
	}
	return nil
}

// storeError maps store refusals to replies.
func storeError(err error) error {
	switch {
	case errors.Is(err, mailstore.ErrNotFound):
		return because(noCode("TRYCREATE", "Mailbox does not exist"), err)
	case errors.Is(err, mailstore.ErrExists):
		return because(noCode("ALREADYEXISTS", "Mailbox already exists"), err)
	case errors.Is(err, mailstore.ErrOverQuota):
		return because(noCode("OVERQUOTA", "Over quota"), err)
	case errors.Is(err, mailstore.ErrTooBig):
		return because(noCode("TOOBIG", "Message too big"), err)
	// The store logged its disk's fault once; each command it refuses is
	// a temporary failure to the client (RFC 5530).
	case errors.Is(err, mailstore.ErrNoSpace):
		return because(noCode("UNAVAILABLE", "Mail store is full, try again later"), err)
	case errors.Is(err, mailstore.ErrFailed):
		return because(noCode("UNAVAILABLE", "Mail store unavailable"), err)
	}
	return err
}

// canonicalFlag spells the system flags as RFC 3501 does; keywords keep
// the client's spelling.
func canonicalFlag(f string) string {
	for _, sf := range []string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`, `\Recent`} {
		if strings.EqualFold(f, sf) {
			return sf
		}
	}
	return f
}

// storableFlags canonicalises flags and drops \Recent, which no client sets.
func storableFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		f = canonicalFlag(f)
		switch {
		case f == `\Recent`:
			continue
		case strings.HasPrefix(f, `\`) && !slices.Contains([]string{`\Seen`, `\Answered`, `\Flagged`, `\Deleted`, `\Draft`}, f):
			return nil, badf("Invalid system flag %s", f)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

func fmtFlags(w *writer, flags []string) {
	w.raw("(")
	for i, f := range flags {
		if i > 0 {
			w.raw(" ")
		}
		w.raw(f)
	}
	w.raw(")")
}
