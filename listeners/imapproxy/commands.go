package imapproxy

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/rookery/rookery/internal/mboxname"
	"github.com/rookery/rookery/listeners/frontend"
)

// mailboxArg reads " <mailbox>".
func (c *command) mailboxArg() (string, error) {
	if err := c.sp(); err != nil {
		return "", err
	}
	name, err := c.astring()
	if err != nil {
		return "", err
	}
	if mboxname.Check(name) != nil {
		return "", errBadName
	}
	return name, nil
}

// forwardFailed answers a command forward could not complete, or returns
// the error that ends the session.
func (s *session) forwardFailed(c *command, b *backend, err error) error {
	var tb *tooBigError
	var be *backendError
	switch {
	case errors.As(err, &tb):
		if b.broken {
			if b == s.current {
				return &backendError{b.server, err}
			}
			s.dropBackend(b)
		}
		s.tagged(c.tag, "NO", "[TOOBIG] Literal too large")
		return nil
	case errors.As(err, &be):
		return s.backendFailed(c.tag, b, err)
	}
	return err
}

// piped sends a command on the selected mailbox to its backend as it is.
func (s *session) piped(c *command) error {
	b := s.current
	status, text, err := s.forward(c, b, c.tag+" "+c.name)
	if err != nil {
		return s.forwardFailed(c, b, err)
	}
	if status == "OK" && (c.name == "CLOSE" || c.name == "UNSELECT") {
		s.current = nil
	}
	s.tagged(c.tag, status, text)
	return nil
}

// closedByPeer reports whether err is the peer having closed the
// connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// routeOpts say how routed treats a command.
type routeOpts struct {
	tryCreate bool  // a missing mailbox is answered with [TRYCREATE] (APPEND)
	changes   bool  // success changes the mailbox list: kick the replica
	second    bool  // a second mailbox name follows (RENAME)
	ok        *bool // set when the backend said OK
}

// routed sends a command whose first argument is a mailbox to that
// mailbox's backend.
func (s *session) routed(c *command, o routeOpts) error {
	name, err := c.mailboxArg()
	if err != nil {
		return s.argError(c, err)
	}
	head := c.tag + " " + c.name + " " + quote(name)
	if o.second {
		to, err := c.mailboxArg()
		if err != nil {
			return s.argError(c, err)
		}
		head += " " + quote(to)
		// NOTIFY sessions here tell it as a rename, not the delete and
		// create the list shows.
		r := s.srv.names.beginRename(s.internal(name), s.internal(to))
		var ok bool
		o.ok = &ok
		defer func() { s.srv.names.endRename(r, ok) }()
	}
	return s.routeTo(c, s.internal(name), head, o)
}

// routeTo sends head and the rest of c to the backend of the mailbox in
// (an internal name) and relays the answer.
func (s *session) routeTo(c *command, in, head string, o routeOpts) error {
	e, err := s.routes.Lookup(s.srv.ctx, in)
	if err != nil {
		text := s.lookupErrText(err)
		if o.tryCreate && errors.Is(err, frontend.ErrNoMailbox) {
			text = "[TRYCREATE] " + text
		}
		return s.refuse(c, "NO", text)
	}
	cached := s.backends[e.Server()]
	b, err := s.backendFor(e.Server())
	if err != nil {
		return s.refuse(c, "NO", textUnavailable)
	}
	_, literal := literalAt(c.line)
	answered := b.pr.pieces
	status, text, err := s.forward(c, b, head)
	if err != nil && b == cached && b != s.current && !literal && b.pr.pieces == answered && closedByPeer(err) {
		// The backend closed the cached connection while it sat unused,
		// its FIN still in flight when alive looked, and never read the
		// command (a backend shutting down says BYE first): send it
		// again, once, on a fresh connection.
		s.dropBackend(b)
		if b, err = s.backendFor(e.Server()); err != nil {
			return s.refuse(c, "NO", textUnavailable)
		}
		status, text, err = s.forward(c, b, head)
	}
	if err != nil {
		return s.forwardFailed(c, b, err)
	}
	if o.changes && status == "OK" {
		s.kick()
	}
	if o.ok != nil {
		*o.ok = status == "OK"
	}
	s.tagged(c.tag, status, text)
	return nil
}

// cmdSelect switches to the mailbox's backend: the backend of the
// previous selection, if another, is told to UNSELECT first, so it stops
// sending updates, and the client gets [CLOSED] as RFC 7162 asks.
func (s *session) cmdSelect(c *command) error {
	name, err := c.mailboxArg()
	if err != nil {
		return s.argError(c, err)
	}
	// Refused here, as a backend would, but before the selected mailbox
	// is closed for a switch.
	if bytes.Contains(bytes.ToUpper(c.line), []byte("QRESYNC")) && !slices.Contains(s.enabled, "QRESYNC") {
		return s.refuse(c, "BAD", "QRESYNC parameter needs ENABLE QRESYNC first")
	}
	e, lerr := s.routes.Lookup(s.srv.ctx, s.internal(name))
	var b *backend
	if lerr == nil {
		b, err = s.backendFor(e.Server())
	}
	if s.current != nil && s.current != b {
		if err := s.unselect(); err != nil {
			return err
		}
	}
	switch {
	case lerr != nil:
		return s.refuse(c, "NO", s.lookupErrText(lerr))
	case err != nil:
		return s.refuse(c, "NO", textUnavailable)
	}
	if err := s.enable(b); err != nil {
		if err := c.drain(); err != nil {
			return err
		}
		return s.backendFailed(c.tag, b, err)
	}
	// b's updates are the client's from now on; a failed SELECT leaves
	// nothing selected.
	s.current = b
	// SELECT (CONDSTORE) enables CONDSTORE for the session (RFC 7162), so
	// backends selected later must get it too.
	condstore := bytes.Contains(bytes.ToUpper(c.line), []byte("CONDSTORE")) && s.passthrough("CONDSTORE")
	status, text, err := s.forward(c, b, c.tag+" "+c.name+" "+quote(name))
	if err != nil {
		// A SELECT that fails, however, leaves nothing selected: the
		// session can go on without b, unless b's answer was cut in the
		// middle of a response.
		s.current = nil
		s.routes.Selected("", "")
		return s.forwardFailed(c, b, err)
	}
	if status != "OK" {
		s.current = nil
		s.routes.Selected("", "")
	} else {
		s.routes.Selected(name, b.server)
		s.selected = s.internal(name)
		if condstore && !slices.Contains(s.enabled, "CONDSTORE") {
			s.enabled = append(s.enabled, "CONDSTORE")
			b.enabled["CONDSTORE"] = true
		}
	}
	s.tagged(c.tag, status, text)
	return nil
}

// unselect closes the selected mailbox on its backend (without
// expunging), relays what the backend still had to say about it, and
// tells the client it is closed.
func (s *session) unselect() error {
	b := s.current
	s.current = nil
	if b.caps["UNSELECT"] {
		untagged, status, _, err := b.simple("UNSELECT")
		if err != nil {
			s.log.Warn("imapproxy: backend failed UNSELECT", "backend", b.server, "err", err)
			s.dropBackend(b)
		} else {
			for _, u := range untagged {
				if !strings.HasPrefix(u, "* BYE") {
					s.w.WriteString(u + "\r\n")
				}
			}
			if status != "OK" {
				s.log.Warn("imapproxy: backend refused UNSELECT", "backend", b.server)
			}
		}
	} else {
		// Without UNSELECT the backend keeps the mailbox open; its
		// updates are dropped as those of a backend not selected.
		s.log.Debug("imapproxy: backend lacks UNSELECT", "backend", b.server)
	}
	s.untagged("OK [CLOSED] Previous mailbox closed")
	return nil
}

// inboxBackend returns the backend of the user's INBOX, where Cyrus keeps
// subscriptions.
func (s *session) inboxBackend() (*backend, error) {
	e, err := s.routes.LookupNoKick(frontend.UserInbox(s.user))
	if err != nil {
		if !errors.Is(err, frontend.ErrNoMailbox) {
			s.log.Warn("imapproxy: INBOX lookup failed", "err", err)
		}
		return nil, err
	}
	return s.backendFor(e.Server())
}

// cmdLsub asks the INBOX's backend for every subscription, which marks
// those it does not hold \Noselect; that mark is dropped for mailboxes
// that exist elsewhere in the murder. The pattern is applied here, so
// that the parents a '%' stops at are listed \Noselect (RFC 3501 6.3.9):
// from a backend's answer to the pattern itself they could not be told
// from subscriptions it does not hold. Unlike Cyrus 3.6.1, a missing
// INBOX backend is a NO, not an empty list that clients take as "no
// subscriptions".
func (s *session) cmdLsub(c *command) error {
	var ref, pat string
	err := c.sp()
	if err == nil {
		ref, err = c.astring()
	}
	if err == nil {
		err = c.sp()
	}
	if err == nil {
		pat, err = c.listMailbox()
	}
	if err == nil {
		err = c.end()
	}
	if err != nil {
		return s.argError(c, err)
	}
	if !quotable(ref) || !quotable(pat) {
		s.tagged(c.tag, "BAD", "Invalid arguments")
		return nil
	}
	subs, lines, b, err := s.lsubAll()
	if err != nil {
		return s.backendFailed(c.tag, b, err)
	}
	s.writeLsub(canonicalPattern(ref+pat, s.sep), subs, lines)
	s.tagged(c.tag, "OK", "Completed")
	return nil
}

// refusedError is a backend's NO or BAD to a command the proxy made up,
// or the NO for a backend that cannot be reached.
type refusedError struct{ status, text string }

func (e *refusedError) Error() string { return "imapproxy: backend said " + e.status + " " + e.text }

// lsubAll asks the INBOX's backend for every subscription: the names and
// its LSUB lines for them, in its order. A user without an INBOX has no
// subscriptions. On an error b is the backend that failed, if any.
func (s *session) lsubAll() (subs, lines []string, b *backend, err error) {
	b, err = s.inboxBackend()
	switch {
	case errors.Is(err, frontend.ErrNoMailbox):
		// No INBOX, nowhere to keep subscriptions: there are none.
		return nil, nil, nil, nil
	case err != nil:
		return nil, nil, nil, &refusedError{"NO", textUnavailable}
	}
	tag := b.nextTag()
	b.w.WriteString(tag + ` LSUB "" *` + "\r\n")
	if err := b.flush(); err != nil {
		return nil, nil, b, err
	}
	for {
		resp, err := b.readResponse()
		if err != nil {
			return nil, nil, b, err
		}
		if rest, ok := strings.CutPrefix(resp, tag+" "); ok {
			if status, text := splitStatus(rest); status != "OK" {
				return nil, nil, b, &refusedError{status, text}
			}
			return subs, lines, b, nil
		}
		if b != s.current && isMessageUpdate([]byte(resp)) || strings.HasPrefix(resp, "* BYE") {
			continue
		}
		if rest, ok := strings.CutPrefix(resp, "* LSUB ("); ok {
			if _, after, ok := strings.Cut(rest, ")"); ok {
				if name, ok := lsubName(after); ok {
					subs, lines = append(subs, name), append(lines, resp)
					continue
				}
			}
		}
		s.w.WriteString(resp + "\r\n")
	}
}

// writeLsub answers LSUB for pattern from every subscription (names, and
// the backend's lines for them).
func (s *session) writeLsub(pattern string, subs, lines []string) {
	subscribed := make(map[string]bool, len(subs))
	for _, n := range subs {
		subscribed[n] = true
	}
	listed := map[string]bool{}
	for i, n := range subs {
		if match(pattern, n, s.sep) {
			s.w.WriteString(s.fixListAttrs(lines[i], "* LSUB (") + "\r\n")
			continue
		}
		for j := strings.LastIndexByte(n, s.sep); j > 0; j = strings.LastIndexByte(n[:j], s.sep) {
			if p := n[:j]; !subscribed[p] && !listed[p] && match(pattern, p, s.sep) {
				listed[p] = true
				s.untagged(`LSUB (\Noselect) "` + string(s.sep) + `" ` + astring(p))
			}
		}
	}
}

// fixListAttrs drops \Noselect (and \NonExistent) from a backend's
// LIST or LSUB line (prefix "* LIST (" or "* LSUB (") naming a mailbox
// the murder has: the backend only knows it holds none of that name.
func (s *session) fixListAttrs(resp, prefix string) string {
	rest, ok := strings.CutPrefix(resp, prefix)
	if !ok {
		return resp
	}
	flags, after, ok := strings.Cut(rest, ")")
	if !ok {
		return resp
	}
	name, ok := lsubName(after)
	if !ok {
		return resp
	}
	if _, err := s.routes.LookupNoKick(s.internal(name)); err != nil {
		return resp
	}
	var keep []string
	for _, f := range strings.Fields(flags) {
		if !strings.EqualFold(f, `\Noselect`) && !strings.EqualFold(f, `\NonExistent`) {
			keep = append(keep, f)
		}
	}
	return prefix + strings.Join(keep, " ") + ")" + after
}

// lsubName reads the mailbox name from the rest of an LSUB or LIST
// response after its attributes (` "." name` or ` NIL name`), the name an
// atom, a quoted string or a literal (inline, as readResponse returns it).
func lsubName(after string) (string, bool) {
	c := &command{line: []byte(after)}
	if c.sp() != nil {
		return "", false
	}
	if c.atEnd() {
		return "", false
	}
	if c.line[0] == '"' {
		if _, err := c.quotedString(); err != nil {
			return "", false
		}
	} else if !strings.EqualFold(c.token(isAtomChar), "NIL") {
		return "", false
	}
	if c.sp() != nil || c.atEnd() {
		return "", false
	}
	var name string
	switch c.line[0] {
	case '"':
		n, err := c.quotedString()
		if err != nil {
			return "", false
		}
		name = n
	case '{':
		digits, rest, ok := strings.Cut(string(c.line[1:]), "}\r\n")
		size, err := strconv.Atoi(digits)
		if !ok || err != nil || size < 0 || size > len(rest) {
			return "", false
		}
		name, c.line = rest[:size], []byte(rest[size:])
	default:
		if name = c.token(isListChar); name == "" {
			return "", false
		}
	}
	// LIST-EXTENDED data may follow the name.
	return name, c.atEnd() || bytes.HasPrefix(c.line, []byte(" ("))
}

// cmdSubscribe changes a subscription on the INBOX's backend; SUBSCRIBE
// first checks that the mailbox exists in the murder.
func (s *session) cmdSubscribe(c *command, subscribe bool) error {
	name, err := c.mailboxArg()
	if err != nil {
		return s.argError(c, err)
	}
	if subscribe {
		if _, err := s.routes.Lookup(s.srv.ctx, s.internal(name)); err != nil {
			return s.refuse(c, "NO", s.lookupErrText(err))
		}
	}
	b, err := s.inboxBackend()
	if err != nil {
		return s.refuse(c, "NO", textUnavailable)
	}
	status, text, err := s.forward(c, b, c.tag+" "+c.name+" "+quote(name))
	if err != nil {
		return s.forwardFailed(c, b, err)
	}
	if status == "OK" {
		s.srv.names.subscribed(s.user, s.internal(name), subscribe)
	}
	s.tagged(c.tag, status, text)
	return nil
}

// cmdCreate places a new mailbox on its nearest existing ancestor's
// backend, or, for a new top-level one, on the candidate server holding
// the fewest mailboxes that answers.
func (s *session) cmdCreate(c *command) error {
	name, err := c.mailboxArg()
	if err != nil {
		return s.argError(c, err)
	}
	in := strings.TrimSuffix(s.internal(name), ".")
	if _, found, err := s.srv.cfg.DB.Get(in); err == nil && found {
		return s.refuse(c, "NO", "[ALREADYEXISTS] Mailbox already exists")
	}
	var b *backend
	if server, ok := s.parentServer(in); ok {
		if b, err = s.backendFor(server); err != nil {
			return s.refuse(c, "NO", textUnavailable)
		}
	} else {
		for _, server := range s.placement() {
			if b, err = s.backendFor(server); err == nil {
				break
			}
		}
		if b == nil {
			return s.refuse(c, "NO", textUnavailable)
		}
	}
	status, text, err := s.forward(c, b, c.tag+" CREATE "+quote(name))
	if err != nil {
		return s.forwardFailed(c, b, err)
	}
	if status == "OK" {
		s.kick()
	}
	s.tagged(c.tag, status, text)
	return nil
}

// parentServer returns the server of in's nearest ancestor in the list.
func (s *session) parentServer(in string) (string, bool) {
	for i := strings.LastIndexByte(in, '.'); i > 0; i = strings.LastIndexByte(in[:i], '.') {
		if e, found, err := s.srv.cfg.DB.Get(in[:i]); err == nil && found {
			return e.Server(), true
		}
	}
	return "", false
}

// placement orders the candidate servers for a new top-level mailbox,
// fewest mailboxes first (ties keep the configured order).
func (s *session) placement() []string {
	counts := map[string]int{}
	var servers []string
	for _, sv := range s.srv.cfg.ServerList {
		if _, dup := counts[sv]; !dup {
			counts[sv] = 0
			servers = append(servers, sv)
		}
	}
	fixed := len(servers) > 0
	if !fixed && s.srv.cfg.Backends != nil {
		// Backends known to be up but holding nothing yet are the best
		// places of all.
		for _, sv := range s.srv.cfg.Backends() {
			if _, dup := counts[sv]; !dup {
				counts[sv] = 0
				servers = append(servers, sv)
			}
		}
	}
	// Servers only the list names come after, in name order.
	listed := s.srv.cfg.DB.ServerCounts()
	for _, sv := range slices.Sorted(maps.Keys(listed)) {
		n := listed[sv]
		if _, ok := counts[sv]; !ok {
			if fixed {
				continue
			}
			servers = append(servers, sv)
		}
		counts[sv] += int(n)
	}
	slices.SortStableFunc(servers, func(a, b string) int { return counts[a] - counts[b] })
	return servers
}
