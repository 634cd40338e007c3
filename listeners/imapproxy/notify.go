package imapproxy

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/rookery/rookery/store"
)

// NOTIFY (RFC 5465) through the frontend. For message events, the
// mailboxes a client names may live on several backends, Cyrus ones
// among them, which have no NOTIFY. So the frontend watches them itself:
// it asks each mailbox's backend for STATUS, on connections of its own
// (the session's are left alone, the selected one may be in IDLE), and
// tells the client what changed as STATUS responses, merged from every
// backend. It asks after a command once the poll interval has passed,
// and every interval while the client IDLEs (the selected mailbox is
// then polled with NOOP too). The selected mailbox's own updates come
// the usual way. Mailbox and subscription events come from the
// frontend's own list (notifynames.go).

// notifyEvents are the events the frontend can tell of.
var notifyEvents = []string{"MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"}

// rfcEvents are every RFC 5465 event, for their spelling.
var rfcEvents = []string{"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange", "MailboxName",
	"SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange"}

// maxWatched bounds the mailboxes one session watches.
const maxWatched = 1000

// notifier is a session's NOTIFY SET.
type notifier struct {
	boxes []*watched          // by name
	conns map[string]*backend // the notifier's own, by server
	last  time.Time           // the last poll
	names map[string]*watched // by internal name
	list  *nameWatch          // mailbox events, if asked for
}

// watched is one mailbox and what the client was last told of it.
type watched struct {
	ext, in, server string
	flags           bool // FlagChange asked: HIGHESTMODSEQ too
	told            bool
	state           string // the STATUS items as the backend gave them
}

// notifyGroup is one event group of NOTIFY SET.
type notifyGroup struct {
	filter string
	names  []string // client names, for SUBTREE and MAILBOXES
	events []string
}

// cmdNotify handles NOTIFY NONE and NOTIFY SET [STATUS] groups.
func (s *session) cmdNotify(c *command) error {
	if err := c.sp(); err != nil {
		return s.argError(c, err)
	}
	verb, err := c.atom()
	if err != nil {
		return s.argError(c, err)
	}
	switch strings.ToUpper(verb) {
	case "NONE":
		if !c.atEnd() {
			return s.refuse(c, "BAD", "Unexpected extra arguments")
		}
		s.stopNotify()
		s.tagged(c.tag, "OK", "Completed")
		return nil
	case "SET":
	default:
		return s.refuse(c, "BAD", "Unknown NOTIFY "+verb)
	}
	if err := c.sp(); err != nil {
		return s.argError(c, err)
	}
	status := false
	if len(c.line) > 7 && strings.EqualFold(string(c.line[:7]), "STATUS ") {
		status, c.line = true, c.line[7:]
	}
	var groups []notifyGroup
	for {
		g, err := c.notifyGroup()
		if err != nil {
			return s.argError(c, err)
		}
		groups = append(groups, g)
		if c.atEnd() {
			break
		}
		if err := c.sp(); err != nil {
			return s.argError(c, err)
		}
	}
	for _, g := range groups {
		for _, e := range g.events {
			if !slices.Contains(notifyEvents, e) {
				return s.refuse(c, "NO", "[BADEVENT ("+strings.Join(notifyEvents, " ")+")] Unsupported event "+e)
			}
		}
		hasNew, hasGone := slices.Contains(g.events, "MessageNew"), slices.Contains(g.events, "MessageExpunge")
		if hasNew != hasGone || (slices.Contains(g.events, "FlagChange") && !hasNew) {
			return s.refuse(c, "BAD", "MessageNew and MessageExpunge go together, and FlagChange needs them")
		}
	}
	n, err := s.watch(groups)
	if err != nil {
		return err
	}
	s.stopNotify()
	s.notify = n
	if err := s.watchNames(groups); err != nil {
		return err
	}
	s.pollNotify(status)
	s.tagged(c.tag, "OK", "NOTIFY completed")
	return nil
}

// notifyGroup reads "(" filter [SP events] ")".
func (c *command) notifyGroup() (notifyGroup, error) {
	var g notifyGroup
	if len(c.line) == 0 || c.line[0] != '(' {
		return g, errSyntax
	}
	c.line = c.line[1:]
	f, err := c.atom()
	if err != nil {
		return g, err
	}
	g.filter = strings.ToUpper(f)
	switch g.filter {
	case "SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED":
	case "SUBTREE", "MAILBOXES":
		if err := c.sp(); err != nil {
			return g, err
		}
		if len(c.line) > 0 && c.line[0] == '(' {
			c.line = c.line[1:]
			for len(c.line) > 0 && c.line[0] != ')' {
				if len(g.names) > 0 {
					if err := c.sp(); err != nil {
						return g, err
					}
				}
				name, err := c.astring()
				if err != nil {
					return g, err
				}
				g.names = append(g.names, name)
			}
			if len(c.line) == 0 {
				return g, errSyntax
			}
			c.line = c.line[1:]
		} else {
			name, err := c.astring()
			if err != nil {
				return g, err
			}
			g.names = append(g.names, name)
		}
	default:
		return g, errSyntax
	}
	if len(c.line) > 0 && c.line[0] == ' ' {
		c.line = c.line[1:]
		if len(c.line) >= 4 && strings.EqualFold(string(c.line[:4]), "NONE") {
			c.line = c.line[4:]
		} else {
			if len(c.line) == 0 || c.line[0] != '(' {
				return g, errSyntax
			}
			c.line = c.line[1:]
			for len(c.line) > 0 && c.line[0] != ')' {
				if len(g.events) > 0 {
					if err := c.sp(); err != nil {
						return g, err
					}
				}
				e, err := c.atom()
				if err != nil {
					return g, err
				}
				if i := slices.IndexFunc(rfcEvents, func(k string) bool { return strings.EqualFold(k, e) }); i >= 0 {
					e = rfcEvents[i]
				}
				g.events = append(g.events, e)
				if bytes.HasPrefix(c.line, []byte(" (")) {
					// MessageNew's FETCH attributes: not sent here.
					end := bytes.IndexByte(c.line, ')')
					if end < 0 {
						return g, errSyntax
					}
					c.line = c.line[end+1:]
				}
			}
			if len(c.line) == 0 {
				return g, errSyntax
			}
			c.line = c.line[1:]
		}
	}
	if len(c.line) == 0 || c.line[0] != ')' {
		return g, errSyntax
	}
	c.line = c.line[1:]
	return g, nil
}

// watch resolves the groups' mailboxes from the mailbox list: those the
// user may read, each with its backend.
func (s *session) watch(groups []notifyGroup) (*notifier, error) {
	n := &notifier{conns: map[string]*backend{}, names: map[string]*watched{}}
	inbox := s.internal("INBOX")
	type want struct{ flags bool }
	wanted := map[string]want{}
	var subtrees []string
	subtreeFlags := map[string]bool{}
	personal, personalFlags := false, false
	for _, g := range groups {
		if !slices.Contains(g.events, "MessageNew") {
			continue
		}
		flags := slices.Contains(g.events, "FlagChange")
		switch g.filter {
		case "INBOXES":
			wanted[inbox] = want{flags || wanted[inbox].flags}
		case "PERSONAL":
			personal, personalFlags = true, personalFlags || flags
		case "MAILBOXES":
			for _, name := range g.names {
				in := s.internal(name)
				wanted[in] = want{flags || wanted[in].flags}
			}
		case "SUBTREE":
			for _, name := range g.names {
				in := s.internal(name)
				subtrees = append(subtrees, in)
				subtreeFlags[in] = subtreeFlags[in] || flags
			}
		}
	}
	snap := s.srv.cfg.DB.Snapshot()
	defer snap.Close()
	err := s.candidates(snap, func(e *store.Entry) {
		// An admin's come in list order, so the first maxWatched are
		// known without holding the rest.
		if s.admin && len(n.boxes) >= maxWatched || !strings.Contains(s.rights(e), "r") {
			return
		}
		w, ok := wanted[e.Name]
		flags := w.flags
		if personal && (e.Name == inbox || strings.HasPrefix(e.Name, inbox+".")) {
			ok, flags = true, flags || personalFlags
		}
		for _, st := range subtrees {
			if e.Name == st || strings.HasPrefix(e.Name, st+".") {
				ok, flags = true, flags || subtreeFlags[st]
			}
		}
		if ok {
			n.boxes = append(n.boxes, &watched{ext: s.external(e.Name), in: e.Name, server: e.Server(), flags: flags})
		}
	})
	// In list order, the first maxWatched.
	slices.SortFunc(n.boxes, func(a, b *watched) int { return bytes.Compare(store.DBName(a.in), store.DBName(b.in)) })
	if len(n.boxes) > maxWatched {
		n.boxes = n.boxes[:maxWatched]
	}
	for _, b := range n.boxes {
		n.names[b.in] = b
	}
	return n, err
}

// stopNotify ends the session's NOTIFY and its connections.
func (s *session) stopNotify() {
	if n := s.notify; n != nil {
		for _, b := range n.conns {
			b.logout()
		}
		if n.list != nil {
			s.srv.names.unwatch(s.user, n.list)
		}
		s.notify = nil
	}
}

// notifyDue tells the name changes the list shows, which costs little
// when there are none, and polls the backends if the interval has
// passed since the last poll.
func (s *session) notifyDue() {
	s.notifyNames()
	if n := s.notify; n != nil && time.Since(n.last) >= s.srv.cfg.Limits.NotifyPoll {
		s.pollNotify(true)
	}
}

// pollNotify asks every watched mailbox's backend for its STATUS and,
// when tell, sends the client a STATUS for each that changed since it
// was last told (every one, the first time). A backend that fails is
// skipped until the next poll, and its mailboxes keep their last state.
func (s *session) pollNotify(tell bool) {
	n := s.notify
	n.last = time.Now()
	byServer := map[string][]*watched{}
	var servers []string
	for _, b := range n.boxes {
		if s.current != nil && b.server == s.current.server && b.in == s.selected {
			continue // its updates come the usual way
		}
		if _, ok := byServer[b.server]; !ok {
			servers = append(servers, b.server)
		}
		byServer[b.server] = append(byServer[b.server], b)
	}
	for _, server := range servers {
		boxes := byServer[server]
		conn := n.conns[server]
		if conn == nil || !conn.alive() {
			var err error
			if conn, err = s.dialFor(server); err != nil {
				continue
			}
			n.conns[server] = conn
		}
		if err := s.askStatus(conn, boxes, tell); err != nil {
			s.log.Warn("imapproxy: NOTIFY poll failed", "backend", server, "err", err)
			conn.logout()
			delete(n.conns, server)
		}
	}
}

// askStatus sends one STATUS per mailbox to b at once and reads the
// answers in order.
func (s *session) askStatus(b *backend, boxes []*watched, tell bool) error {
	tags := make([]string, len(boxes))
	for i, w := range boxes {
		items := "MESSAGES UIDNEXT UIDVALIDITY"
		if w.flags {
			items += " HIGHESTMODSEQ"
		}
		tags[i] = b.nextTag()
		b.w.WriteString(tags[i] + " STATUS " + quote(w.ext) + " (" + items + ")\r\n")
	}
	if err := b.flush(); err != nil {
		return err
	}
	for i, w := range boxes {
		state := ""
		for {
			resp, err := b.readResponse()
			if err != nil {
				return err
			}
			if strings.HasPrefix(resp, tags[i]+" ") {
				break
			}
			if strings.HasPrefix(strings.ToUpper(resp), "* STATUS ") {
				if j := strings.LastIndexByte(resp, '('); j >= 0 {
					state = strings.TrimSuffix(resp[j+1:], ")")
				}
			}
		}
		if state == "" || (w.told && state == w.state) {
			continue
		}
		first := !w.told
		w.told, w.state = true, state
		if tell || !first {
			s.untagged("STATUS " + quote(w.ext) + " (" + state + ")")
		}
	}
	return nil
}
