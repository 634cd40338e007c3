package mupdate

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/rookery/rookery/internal/mboxname"
	"github.com/rookery/rookery/listeners/accept"
	"github.com/rookery/rookery/store"
)

// Op is one write command for the mailbox list.
type Op struct {
	Cmd      string // ACTIVATE, RESERVE, DEACTIVATE or DELETE
	Name     string
	Location string
	ACL      string
}

// CapLog is the greeting capability of a master that serves XUPDATE:
// resumable streams from its change log, for Rookery replicas.
const CapLog = "X-ROOKERY-LOG"

// Refusal is a write that the mailbox list refused by rule; Text goes on
// the wire in the NO reply.
type Refusal struct{ Text string }

func (r *Refusal) Error() string { return "mupdate: refused: " + r.Text }

// ServerConfig is what an MUPDATE listener needs from its node.
type ServerConfig struct {
	ServerName string
	Software   string // greeting field, e.g. "Rookery"
	Version    string
	// Mode is the greeting's last field: "(master)", or "mupdate://host:port"
	// on a replica, as Cyrus's slave says.
	Mode string
	// ReadOnly refuses writes with BAD "read-only session", as a Cyrus slave.
	ReadOnly bool
	// Login checks SASL PLAIN credentials and returns the session's user.
	Login func(authzid, authcid, password string) (string, error)
	// Store is read directly for FIND, LIST and UPDATE.
	Store *store.DB
	// Write submits a write and returns a function waiting for its outcome;
	// a *Refusal outcome becomes a NO with its text. Unused when ReadOnly.
	Write func(op Op) (wait func() error)
	// Watch registers notify, called (without blocking) whenever changes
	// become durable; cancel unregisters it.
	Watch func(notify func(lastSeq uint64)) (cancel func())

	Limits Limits
	// IdleTimeout closes connections that send nothing for this long.
	IdleTimeout time.Duration
	// WriteTimeout cuts off a peer that does not read what it is sent, so a
	// stuck UPDATE reader never holds anything up.
	WriteTimeout time.Duration
	// MaxConns caps concurrent connections.
	MaxConns int
	// MaxUnauthenticated caps connections that have not authenticated yet
	// (default half of MaxConns); a newcomer beyond it cuts the oldest of
	// them short, so strangers can never take the slots the murder's own
	// peers need, nor keep a reconnecting peer out.
	MaxUnauthenticated int
	// LoginTimeout closes a connection that has not authenticated within
	// it of connecting, however busy (default 1 minute, or IdleTimeout if
	// shorter).
	LoginTimeout time.Duration
	// FailedLoginPause delays the reply to a failed authentication.
	FailedLoginPause time.Duration
	// TLS, if set, offers STARTTLS (section 3.13). Rookery replicas and
	// pushers take it; Cyrus clients take it when PLAIN is not offered
	// in the clear.
	TLS *tls.Config
	// Plaintext says whether PLAIN is offered and accepted before TLS on
	// a connection from remote (allowplaintext, or a peer that counts as
	// secure), as Cyrus's mupdate decides; nil: on every connection.
	Plaintext func(remote net.Addr) bool
	// Metrics counts commands; nil counts nothing.
	Metrics Metrics
	Logger  *slog.Logger
}

// Metrics receives the server's counts.
type Metrics interface {
	// Command counts a command received, by its upper-case name, or
	// "OTHER" for a name the server does not know (so that clients
	// cannot make up label values); done is called once its reply is
	// written, to time it.
	Command(name string) (done func())
	// LoginFailed counts a failed authentication.
	LoginFailed()
	// Refused counts a connection refused or cut short by a cap, by
	// accept.Config.Refused's reason.
	Refused(reason string)
}

type noMetrics struct{}

func (noMetrics) Command(string) func() { return func() {} }
func (noMetrics) LoginFailed()          {}
func (noMetrics) Refused(string)        {}

// commandLabel is a command's name as counted.
func commandLabel(name string) string {
	switch name {
	case cmdActivate, cmdFind, cmdNoop, cmdReserve, cmdDelete, cmdDeactivate, cmdList,
		cmdUpdate, cmdAuthenticate, cmdLogout, cmdStartTLS, cmdCompress, cmdXUpdate:
		return name
	}
	return "OTHER"
}

// Server serves MUPDATE on any number of listeners.
type Server struct {
	cfg     ServerConfig
	acc     *accept.Loop
	ctx     context.Context // acc's, cancelled by Close
	streams atomic.Int64
	nextID  atomic.Uint64
}

// NewServer makes a server; zero durations and limits take defaults.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 180 * time.Minute
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 30 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 128
	}
	if cfg.Software == "" {
		cfg.Software = "Rookery"
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	acc := accept.New(accept.Config{Name: "mupdate", MaxConns: cfg.MaxConns,
		MaxUnauthenticated: cfg.MaxUnauthenticated, LoginTimeout: cfg.LoginTimeout,
		Busy: "* BYE \"Server Unable\"\r\n", Refused: cfg.Metrics.Refused, CloseConns: true, Logger: cfg.Logger})
	return &Server{cfg: cfg, acc: acc, ctx: acc.Context()}
}

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error { return s.acc.Serve(l, s.serveConn) }

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (s *Server) Close() error {
	s.acc.Close()
	return nil
}

// Conns is the number of open connections.
func (s *Server) Conns() int { return s.acc.Conns() }

// Streams is the number of UPDATE and XUPDATE streams being served.
func (s *Server) Streams() int { return int(s.streams.Load()) }

// item is one reply, produced in order by the session's writer goroutine.
type item struct {
	run  func(w *session) // writes the reply
	done chan struct{}    // closed after run and flush, for the reader to wait on
}

// session is one connection. Its reader goroutine parses commands and
// queues items; its writer goroutine (serve's caller) is the only one to
// write to the socket once the greeting is out, so pipelined commands are
// answered in order while writes commit in parallel.
type session struct {
	s      *Server
	conn   net.Conn
	pre    *accept.Preauth
	r      *Reader
	w      *Writer
	log    *slog.Logger
	items  chan *item
	closed chan struct{}

	user      string // set by the reader before any item that reads it
	tls       bool   // the connection runs over TLS
	plainOK   bool   // PLAIN is offered and accepted
	streaming bool   // reader's copy of streamTag != ""

	// Streaming state, owned by the writer goroutine.
	streamTag string
	hosts     []string
	lastSeq   uint64
	xseq      bool // an XUPDATE stream: mark each caught-up point with XSEQ
	written   int  // entries written in the current long answer
	wake      chan struct{}
	cancel    func()
}

func (s *Server) serveConn(c net.Conn, p *accept.Preauth) {
	id := s.nextID.Add(1)
	ss := &session{
		s: s, conn: c, pre: p,
		r:      NewReader(c, s.cfg.Limits),
		w:      NewWriter(c),
		log:    s.cfg.Logger.With("conn", id, "remote", c.RemoteAddr().String()),
		items:  make(chan *item, 128),
		closed: make(chan struct{}),
		wake:   make(chan struct{}, 1),
	}
	ss.plainOK = s.cfg.Plaintext == nil || s.cfg.Plaintext(c.RemoteAddr())
	ss.log.Debug("mupdate: connected")
	ss.r.SetContinuation(ss.continuation)
	defer func() {
		if ss.cancel != nil {
			ss.cancel()
		}
		_ = c.Close()
		ss.log.Debug("mupdate: closed", "user", ss.user)
	}()
	defer func() {
		if p := recover(); p != nil {
			ss.log.Error("mupdate: session panic", "panic", p)
		}
	}()
	ss.greet()
	if err := ss.flush(); err != nil {
		return
	}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer func() {
			if p := recover(); p != nil {
				ss.log.Error("mupdate: session panic", "panic", p)
				_ = c.Close()
			}
		}()
		ss.readLoop()
	}()
	ss.writeLoop()
	_ = c.Close()
	<-readerDone
}

// continuation answers a synchronising literal, through the writer so it
// follows every earlier reply.
func (ss *session) continuation() error {
	if !ss.wait(func(w *session) { w.w.Line("+ go ahead") }) {
		return net.ErrClosed
	}
	return nil
}

func (ss *session) greet() {
	cfg := &ss.s.cfg
	if ss.plainOK {
		ss.w.Line(`* AUTH "PLAIN"`)
	} else {
		// Cyrus's line when no mechanism is available before TLS.
		ss.w.Line("* AUTH")
	}
	if cfg.TLS != nil && !ss.tls {
		ss.w.Line("* STARTTLS")
	}
	ss.w.Line("* PARTIAL-UPDATE")
	// Rookery's change-log extension; Cyrus clients skip capabilities they
	// do not know.
	ss.w.Line("* " + CapLog)
	ss.w.Line(fmt.Sprintf("* OK MUPDATE %s %s %s %s",
		quote(cfg.ServerName), quote(cfg.Software), quote(cfg.Version), quote(cfg.Mode)))
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

func (ss *session) flush() error {
	_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.s.cfg.WriteTimeout))
	return ss.w.Flush()
}

// queue hands an item to the writer; false once the session is closing.
func (ss *session) queue(it *item) bool {
	select {
	case ss.items <- it:
		return true
	case <-ss.closed:
		return false
	}
}

// wait queues run and waits until it has run and everything before it is
// written. Reads wait so that they see every earlier write of this
// session and none of the later ones; SASL waits so that the reader may
// then talk to the peer itself.
func (ss *session) wait(run func(*session)) bool {
	done := make(chan struct{})
	if !ss.queue(&item{run: run, done: done}) {
		return false
	}
	select {
	case <-done:
		return true
	case <-ss.closed:
		return false
	}
}

func (ss *session) status(tag, st, text string) {
	ss.queue(&item{run: func(w *session) { w.w.Status(tag, st, text) }})
}

// writeLoop runs items in order and, once streaming, sends changes as
// they become durable. It returns when the session ends.
func (ss *session) writeLoop() {
	defer close(ss.closed)
	for {
		var done chan struct{}
		select {
		case it, ok := <-ss.items:
			if !ok {
				_ = ss.flush()
				return
			}
			it.run(ss)
			done = it.done
		case <-ss.wake:
			if !ss.catchUp() {
				return
			}
		case <-ss.s.ctx.Done():
			return
		}
		// Flush only when no reply is waiting behind this one, so a
		// pipelining peer gets its replies in few packets.
		if len(ss.items) == 0 || done != nil {
			if err := ss.flush(); err != nil {
				ss.log.Debug("mupdate: write failed", "err", err)
				return
			}
		}
		if done != nil {
			close(done)
		}
	}
}

// readLoop parses commands until the peer leaves or breaks the protocol
// beyond repair; closing items tells the writer to finish.
func (ss *session) readLoop() {
	defer close(ss.items)
	for {
		_ = ss.conn.SetReadDeadline(ss.pre.Deadline(ss.s.cfg.IdleTimeout))
		tag, name, err := ss.r.ReadHead()
		if err != nil {
			if !ss.readFailed(err) {
				return
			}
			// Answered BAD: a line without a usable command name.
			ss.s.cfg.Metrics.Command("OTHER")
			continue
		}
		if !ss.command(tag, name) {
			return
		}
	}
}

// readFailed answers a read error; false ends the session.
func (ss *session) readFailed(err error) bool {
	var pe *ProtocolError
	var ne net.Error
	switch {
	case errors.As(err, &pe):
		tag := pe.Tag
		if tag == "" {
			tag = "*"
		}
		ss.status(tag, "BAD", pe.Text)
		return true
	case errors.Is(err, ErrFatal):
		ss.log.Warn("mupdate: unrecoverable input, closing", "err", err)
		ss.status("*", "BYE", "input too large")
	case errors.As(err, &ne) && ne.Timeout() && ss.pre.LoginExpired():
		ss.log.Info("mupdate: login timeout")
		ss.status("*", "BYE", "login timeout")
	case errors.As(err, &ne) && ne.Timeout():
		ss.log.Info("mupdate: idle timeout", "user", ss.user)
		ss.status("*", "BYE", "idle for too long")
	default:
		ss.log.Debug("mupdate: read ended", "err", err)
	}
	return false
}

var writeCommands = map[string]bool{"ACTIVATE": true, "RESERVE": true, "DEACTIVATE": true, "DELETE": true}

// command handles one command whose head was read; false ends the session.
func (ss *session) command(tag, name string) bool {
	done := ss.s.cfg.Metrics.Command(commandLabel(name))
	// The writer runs items in order: this one runs once the reply is out
	// (a write's after its commit).
	defer ss.queue(&item{run: func(*session) { done() }})
	switch name {
	case "LOGOUT":
		if _, err := ss.r.ReadArgs(tag, name); err != nil {
			return ss.readFailed(err)
		}
		ss.status(tag, "OK", "bye-bye")
		return false
	case "AUTHENTICATE":
		args, err := ss.r.ReadArgs(tag, name)
		if err != nil {
			return ss.readFailed(err)
		}
		if ss.user != "" {
			ss.status(tag, "BAD", "already authenticated")
			return true
		}
		return ss.authenticate(tag, args)
	case "STARTTLS":
		if ss.s.cfg.TLS == nil {
			break
		}
		if _, err := ss.r.ReadArgs(tag, name); err != nil {
			return ss.readFailed(err)
		}
		return ss.startTLS(tag)
	case "NOOP", "FIND", "LIST", "UPDATE", "XUPDATE", "ACTIVATE", "RESERVE", "DEACTIVATE", "DELETE":
	}
	switch name {
	case "NOOP", "FIND", "LIST", "UPDATE", "XUPDATE", "ACTIVATE", "RESERVE", "DEACTIVATE", "DELETE":
	default:
		// COMPRESS is not offered in the greeting, nor STARTTLS without
		// a certificate.
		if err := ss.r.DiscardLine(); err != nil {
			return ss.readFailed(err)
		}
		ss.status(tag, "BAD", "Unrecognized command")
		return true
	}
	if ss.user == "" {
		if err := ss.r.DiscardLine(); err != nil {
			return ss.readFailed(err)
		}
		ss.status(tag, "BAD", "Please login first")
		return true
	}
	args, err := ss.r.ReadArgs(tag, name)
	if err != nil {
		return ss.readFailed(err)
	}
	switch {
	case name == "NOOP":
		ss.queue(&item{run: func(w *session) { w.noop(tag) }})
	case ss.streaming:
		ss.status(tag, "BAD", "not legal when streaming")
	case name == "UPDATE":
		ss.wait(func(w *session) { w.update(tag, args) })
		// update ran on the writer; the wait orders its result before us.
		ss.streaming = ss.streamTag != ""
	case name == "XUPDATE":
		after, err := strconv.ParseUint(args[1], 10, 64)
		if err != nil {
			ss.status(tag, "BAD", "Badly formed arguments")
			return true
		}
		ss.wait(func(w *session) { w.xupdate(tag, args[0], after) })
		ss.streaming = ss.streamTag != ""
	case writeCommands[name]:
		ss.write(tag, name, args)
	default: // FIND, LIST
		ss.wait(func(w *session) { w.read(tag, name, args) })
	}
	return true
}

// write submits a write at once, so one connection can have many in
// flight and they share group commits; the reply waits in order.
func (ss *session) write(tag, name string, args []string) {
	if ss.s.cfg.ReadOnly || ss.s.cfg.Write == nil {
		ss.status(tag, "BAD", "read-only session")
		return
	}
	// Frontends write listed names into their clients' streams, where a CR
	// LF in one would end a response. Only RESERVE and ACTIVATE can bring
	// a name in; DEACTIVATE and DELETE of one stored before this check are
	// how it goes away.
	if err := mboxname.CheckControl(args[0]); err != nil && (name == "RESERVE" || name == "ACTIVATE") {
		ss.status(tag, "NO", "invalid mailbox name")
		ss.log.Info("mupdate: write refused", "user", ss.user, "cmd", name, "mailbox", args[0], "err", err)
		return
	}
	op := Op{Cmd: name, Name: args[0]}
	if len(args) > 1 {
		op.Location = args[1]
	}
	if len(args) > 2 {
		op.ACL = args[2]
	}
	wait := ss.s.cfg.Write(op)
	ss.queue(&item{run: func(w *session) { w.awaitWrite(tag, op, wait) }})
}

func (ss *session) awaitWrite(tag string, op Op, wait func() error) {
	err := wait()
	var ref *Refusal
	switch {
	case err == nil:
		ss.w.Status(tag, "OK", "done")
		ss.log.Debug("mupdate: write", "user", ss.user, "cmd", op.Cmd, "mailbox", op.Name)
	case errors.As(err, &ref):
		ss.w.Status(tag, "NO", ref.Text)
		ss.log.Info("mupdate: write refused", "user", ss.user, "cmd", op.Cmd, "mailbox", op.Name, "err", ref.Text)
	default:
		ss.w.Status(tag, "NO", "mailbox list update failed")
		ss.log.Error("mupdate: write failed", "user", ss.user, "cmd", op.Cmd, "mailbox", op.Name, "err", err)
	}
}

func (ss *session) read(tag, name string, args []string) {
	st := ss.s.cfg.Store
	if name == "FIND" {
		e, ok, err := st.Get(args[0])
		if err != nil {
			ss.log.Error("mupdate: find failed", "mailbox", args[0], "err", err)
			ss.w.Status(tag, "NO", "mailbox list read failed")
			return
		}
		if ok {
			ss.entry(tag, e)
		}
		ss.w.Status(tag, "OK", "Search completed")
		return
	}
	prefix := ""
	if len(args) > 0 {
		prefix = args[0]
	}
	snap := st.Snapshot()
	defer snap.Close()
	err := snap.Scan(func(e store.Entry) error {
		if strings.HasPrefix(e.Location, prefix) {
			ss.entry(tag, e)
			return ss.keepWriting()
		}
		return nil
	})
	if err != nil {
		ss.log.Warn("mupdate: list aborted", "err", err)
		ss.w.Status(tag, "NO", "mailbox list read failed")
		return
	}
	ss.w.Status(tag, "OK", "list complete")
}

// keepWriting extends the write deadline while a long answer streams out,
// and stops a scan once the server is closing.
func (ss *session) keepWriting() error {
	ss.written++
	if ss.written%256 == 0 {
		// Progress: the peer reads, it is just a long answer.
		_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.s.cfg.WriteTimeout))
		if err := ss.w.Err(); err != nil {
			return err
		}
	}
	return ss.s.ctx.Err()
}

func (ss *session) entry(tag string, e store.Entry) {
	if e.Kind == store.Reserved {
		ss.w.Entry(tag, "RESERVE", e.Name, e.Location, "")
	} else {
		ss.w.Entry(tag, "MAILBOX", e.Name, e.Location, e.ACL)
	}
}

func (ss *session) noop(tag string) {
	// A streaming peer uses NOOP as a barrier: everything durable when it
	// asked must reach it before the OK.
	if ss.streamTag != "" && !ss.catchUp() {
		return
	}
	ss.w.Status(tag, "OK", "Noop done")
}

func (ss *session) update(tag string, hosts []string) {
	ss.watch()
	snap := ss.s.cfg.Store.Snapshot()
	defer snap.Close()
	if !ss.dump(tag, snap, hosts) {
		return
	}
	ss.streamTag, ss.hosts, ss.lastSeq = tag, hosts, snap.Seq()
	ss.w.Status(tag, "OK", "streaming starts")
	ss.log.Info("mupdate: streaming", "user", ss.user, "seq", ss.lastSeq, "hosts", len(hosts))
}

// xupdate is Rookery's UPDATE for replicas that remember where they were:
// given the store epoch and the last seq they applied, it resumes from
// the change log when the log still reaches back that far, else dumps
// everything. Either way the replica learns the seq it is at from XSEQ
// lines, here and throughout the stream.
//
//	C: U01 XUPDATE "<epoch>" "<seq>"
//	S: U01 XSYNC "RESUME"|"FULL" "<epoch>"
//	S: (changes since seq, or the whole list)
//	S: U01 XSEQ "<seq>"
//	S: U01 OK "streaming starts"
func (ss *session) xupdate(tag, epoch string, after uint64) {
	st := ss.s.cfg.Store
	ss.watch()
	ss.streamTag = tag
	// From the first XSEQ on, every caught-up point gets one.
	defer func() { ss.xseq = true }()
	if epoch == st.Epoch() && after+1 >= st.OldestSeq() && after <= st.LastSeq() {
		ss.w.Line(tag + " XSYNC \"RESUME\" " + quote(st.Epoch()))
		ss.lastSeq = after
		if !ss.catchUp() {
			return
		}
		ss.w.Line(tag + " XSEQ " + quote(strconv.FormatUint(ss.lastSeq, 10)))
		ss.w.Status(tag, "OK", "streaming starts")
		ss.log.Info("mupdate: replica resumed", "user", ss.user, "from", after, "to", ss.lastSeq)
		return
	}
	ss.w.Line(tag + " XSYNC \"FULL\" " + quote(st.Epoch()))
	snap := st.Snapshot()
	defer snap.Close()
	if !ss.dump(tag, snap, nil) {
		return
	}
	ss.lastSeq = snap.Seq()
	ss.w.Line(tag + " XSEQ " + quote(strconv.FormatUint(ss.lastSeq, 10)))
	ss.w.Status(tag, "OK", "streaming starts")
	ss.log.Info("mupdate: replica loading the full list", "user", ss.user, "seq", ss.lastSeq, "asked", after)
}

// watch asks to be woken when changes become durable, and counts the
// stream until the session ends. It comes before the snapshot: a commit
// racing with the dump still wakes the stream, which resumes from the
// snapshot's seq.
func (ss *session) watch() {
	if ss.cancel != nil {
		// An UPDATE retried after a failed dump still has its watch.
		return
	}
	cancel := ss.s.cfg.Watch(func(uint64) {
		select {
		case ss.wake <- struct{}{}:
		default:
		}
	})
	ss.s.streams.Add(1)
	ss.cancel = func() {
		cancel()
		ss.s.streams.Add(-1)
	}
}

// dump writes every entry of snap on the given hosts; false if the
// session broke.
func (ss *session) dump(tag string, snap *store.Snapshot, hosts []string) bool {
	err := snap.Scan(func(e store.Entry) error {
		if len(hosts) == 0 || contains(hosts, e.Server()) {
			ss.entry(tag, e)
			return ss.keepWriting()
		}
		return nil
	})
	if err != nil {
		// Never NO/BAD here: a Cyrus slave takes any status as the end of
		// a complete list and deletes the rest of its copy.
		ss.log.Warn("mupdate: update dump aborted", "err", err)
		_ = ss.conn.Close()
		return false
	}
	return true
}

// catchUp sends every logged change after lastSeq; false ends the session.
func (ss *session) catchUp() bool {
	const page = 4096
	start := ss.lastSeq
	for {
		n := 0
		last, err := ss.s.cfg.Store.ChangesSince(ss.lastSeq, page, func(c store.Change) error {
			n++
			if ss.wants(c) {
				if c.New == nil {
					ss.w.Delete(ss.streamTag, c.Name)
				} else {
					ss.entry(ss.streamTag, *c.New)
				}
			}
			return ss.keepWriting()
		})
		if err != nil {
			if errors.Is(err, store.ErrTrimmed) {
				ss.log.Warn("mupdate: stream fell behind the change log, closing", "user", ss.user, "seq", ss.lastSeq)
				ss.w.Status("*", "BYE", "stream fell too far behind; resync")
				_ = ss.flush()
			} else {
				ss.log.Error("mupdate: reading change log", "err", err)
			}
			_ = ss.conn.Close()
			return false
		}
		ss.lastSeq = last
		if n < page {
			if ss.xseq && last > start {
				ss.w.Line(ss.streamTag + " XSEQ " + quote(strconv.FormatUint(last, 10)))
			}
			return true
		}
	}
}

// wants applies UPDATE's host filter: a change is sent when its old or new
// server is one of the hosts.
func (ss *session) wants(c store.Change) bool {
	if len(ss.hosts) == 0 {
		return true
	}
	return (c.Old != nil && contains(ss.hosts, c.Old.Server())) ||
		(c.New != nil && contains(ss.hosts, c.New.Server()))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// startTLS answers STARTTLS with Cyrus's texts, upgrades the connection
// and greets again without the STARTTLS line; false ends the session.
func (ss *session) startTLS(tag string) bool {
	raw := func(text string) {
		ss.queue(&item{run: func(w *session) { w.w.StatusRaw(tag, "BAD", text) }})
	}
	switch {
	case ss.tls:
		raw("Already did a successful Starttls")
		return true
	case ss.user != "":
		raw("Can't Starttls after authentication")
		return true
	}
	if !ss.wait(func(w *session) { w.w.StatusRaw(tag, "OK", "Begin TLS negotiation now") }) {
		return false
	}
	// The writer is idle until the reader queues again: swap the
	// connection under it. Anything pipelined after STARTTLS is dropped.
	tc := tls.Server(ss.conn, ss.s.cfg.TLS)
	_ = tc.SetDeadline(time.Now().Add(ss.s.cfg.WriteTimeout))
	if err := tc.Handshake(); err != nil {
		ss.log.Info("mupdate: tls handshake failed", "err", err)
		return false
	}
	_ = tc.SetDeadline(time.Time{})
	ss.conn, ss.tls, ss.plainOK = tc, true, true
	ss.r = NewReader(tc, ss.s.cfg.Limits)
	ss.r.SetContinuation(ss.continuation)
	ss.w = NewWriter(tc)
	ss.log.Debug("mupdate: tls started", "version", tls.VersionName(tc.ConnectionState().Version))
	return ss.queue(&item{run: func(w *session) { w.greet() }})
}

// authenticate runs a SASL PLAIN exchange (bare base64 lines, as Cyrus's
// mupdate does); false ends the session.
func (ss *session) authenticate(tag string, args []string) bool {
	if !ss.wait(func(*session) {}) {
		return false
	}
	if !strings.EqualFold(args[0], "PLAIN") {
		ss.status(tag, "NO", "unsupported mechanism")
		return true
	}
	if !ss.plainOK {
		ss.status(tag, "NO", "PLAIN only under TLS: use STARTTLS")
		return true
	}
	var user, why string
	srv := sasl.NewPlainServer(func(authzid, authcid, password string) error {
		u, err := ss.s.cfg.Login(authzid, authcid, password)
		if err != nil {
			why = fmt.Sprintf("%s (authcid %q)", err, authcid)
			return err
		}
		user = u
		return nil
	})
	var resp []byte
	if len(args) > 1 {
		var err error
		if resp, err = decode64(args[1]); err != nil {
			ss.status(tag, "BAD", "invalid base64")
			return true
		}
	}
	for {
		chal, done, err := srv.Next(resp)
		if err != nil {
			if why == "" {
				why = err.Error()
			}
			ss.log.Warn("mupdate: authentication failed", "reason", why)
			ss.s.cfg.Metrics.LoginFailed()
			select {
			case <-time.After(ss.s.cfg.FailedLoginPause):
			case <-ss.s.ctx.Done():
				return false
			}
			ss.status(tag, "NO", "authentication failed")
			return true
		}
		if done {
			ss.user = user
			ss.pre.Authenticated(user)
			ss.log = ss.log.With("user", user)
			ss.log.Info("mupdate: authenticated")
			ss.status(tag, "OK", "Authenticated")
			return true
		}
		ss.w.Line(base64.StdEncoding.EncodeToString(chal))
		if ss.flush() != nil {
			return false
		}
		line, err := ss.r.ReadLine()
		if err != nil {
			return ss.readFailed(err)
		}
		if strings.HasPrefix(line, "*") {
			ss.queue(&item{run: func(w *session) { w.w.StatusRaw(tag, "NO", "Client canceled authentication") }})
			return true
		}
		if resp, err = decode64(line); err != nil {
			ss.status(tag, "BAD", "invalid base64")
			return true
		}
	}
}

func decode64(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	return base64.StdEncoding.DecodeString(s)
}
