package imapproxy

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/rookery/rookery/internal/imaplist"
	"github.com/rookery/rookery/store"
)

// cmdList answers LIST and XLIST. The names, \Noselect parents and
// children come from the mailbox list; subscriptions from the INBOX's
// backend, where LSUB finds them; special-use attributes and LIST-STATUS
// (RFC 5819) from the backends holding the listed mailboxes, each asked
// once per command, all at the same time. What the options select is
// decided as on a backend (internal/imaplist), so an extended LIST (RFC
// 5258) gets the same answer through the frontend as from one backend.
// Unlike a Cyrus frontend, which relays each backend's lines grouped by
// backend, the lines come in list order.
func (s *session) cmdList(c *command) error {
	o := imaplist.Options{XList: c.name == "XLIST"}
	ref, patterns, err := c.listArgs(&o)
	if err != nil {
		if errors.Is(err, errListOption) {
			s.tagged(c.tag, "BAD", "Invalid list options")
			return nil
		}
		return s.argError(c, err)
	}
	if !quotable(ref) || slices.ContainsFunc(patterns, func(p string) bool { return !quotable(p) }) {
		s.tagged(c.tag, "BAD", "Invalid arguments")
		return nil
	}
	kind := c.name // LIST or XLIST
	if !o.Extended && len(patterns) == 1 && patterns[0] == "" {
		s.untagged(kind + ` (\Noselect) "` + string(s.sep) + `" ""`)
		s.tagged(c.tag, "OK", "Completed")
		return nil
	}
	if !o.Extended && !o.XList {
		if err := s.list(ref, patterns); err != nil {
			s.log.Error("imapproxy: reading the mailbox list", "err", err)
			s.tagged(c.tag, "NO", "[SERVERBUG] Mailbox list unavailable")
			return nil
		}
		s.tagged(c.tag, "OK", "Completed")
		return nil
	}
	pats := make([]string, 0, len(patterns))
	for _, p := range patterns {
		if p != "" { // as Cyrus: an empty pattern in a list matches nothing
			pats = append(pats, canonicalPattern(ref+p, s.sep))
		}
	}
	matches := func(n string) bool {
		return slices.ContainsFunc(pats, func(p string) bool { return match(p, n, s.sep) })
	}
	mailboxes, servers, err := s.listTree()
	if err != nil {
		s.log.Error("imapproxy: reading the mailbox list", "err", err)
		s.tagged(c.tag, "NO", "[SERVERBUG] Mailbox list unavailable")
		return nil
	}
	var subs []string
	if o.WantSubscriptions() {
		var b *backend
		if subs, _, b, err = s.lsubAll(); err != nil {
			return s.backendFailed(c.tag, b, err)
		}
	}
	var answers map[string]*backendList
	failed := false
	if o.WantSpecialUse() || len(o.Status) > 0 {
		// Descendants RECURSIVEMATCH looks at need not match.
		ask := pats
		if o.RecursiveMatch && o.SpecialUse {
			ask = []string{"*"}
		}
		all := len(ask) == 1 && ask[0] == "*"
		var wanted []string
		names := map[string][]string{} // by server, what STATUS may be asked of
		for i, m := range mailboxes {
			if !m.Exists {
				continue
			}
			mt := matches(m.Name)
			if (mt || all) && !slices.Contains(wanted, servers[i]) {
				wanted = append(wanted, servers[i])
			}
			if mt {
				names[servers[i]] = append(names[servers[i]], m.Name)
			}
		}
		var lost *backend
		answers, lost, failed, err = s.askBackends(wanted, ask, &o, names)
		if lost != nil {
			return s.backendFailed(c.tag, lost, err)
		}
		for i := range mailboxes {
			if a := answers[servers[i]]; a != nil {
				mailboxes[i].Special = a.special[mailboxes[i].Name]
			}
		}
	}
	for _, l := range imaplist.List(mailboxes, subs, s.sep, matches, &o) {
		var status string
		if len(o.Status) > 0 && l.Mailbox >= 0 && mailboxes[l.Mailbox].Exists {
			if a := answers[servers[l.Mailbox]]; a != nil {
				if status = a.status[l.Name]; status == "" {
					// RFC 5819: the backend gave no STATUS, which it
					// does for a mailbox that cannot be selected.
					l.Attrs = append([]string{`\Noselect`}, l.Attrs...)
				}
			}
		}
		s.untagged(l.Format(kind, s.sep, astring(l.Name)))
		if status != "" {
			s.w.WriteString(status + "\r\n")
		}
	}
	if failed {
		s.tagged(c.tag, "NO", textUnavailable)
		return nil
	}
	s.tagged(c.tag, "OK", "Completed")
	return nil
}

// errListOption is a LIST option that is unknown or misused; the client
// gets BAD.
var errListOption = errors.New("imapproxy: invalid list option")

// listArgs reads LIST's arguments: selection options, reference, one
// pattern or a list, return options (RFC 5258 6, RFC 5819 2).
func (c *command) listArgs(o *imaplist.Options) (ref string, patterns []string, err error) {
	if err := c.sp(); err != nil {
		return "", nil, err
	}
	if !c.atEnd() && c.line[0] == '(' {
		o.Extended = true
		opts, err := c.optionList(nil)
		if err != nil {
			return "", nil, err
		}
		for _, opt := range opts {
			if !o.Select(opt) {
				return "", nil, errListOption
			}
		}
		if err := c.sp(); err != nil {
			return "", nil, err
		}
	}
	if ref, err = c.astring(); err != nil {
		return "", nil, err
	}
	if err := c.sp(); err != nil {
		return "", nil, err
	}
	if !c.atEnd() && c.line[0] == '(' {
		o.Extended = true
		c.line = c.line[1:]
		for {
			p, err := c.listMailbox()
			if err != nil {
				return "", nil, err
			}
			patterns = append(patterns, p)
			if !c.atEnd() && c.line[0] == ')' {
				c.line = c.line[1:]
				break
			}
			if err := c.sp(); err != nil {
				return "", nil, err
			}
		}
	} else {
		p, err := c.listMailbox()
		if err != nil {
			return "", nil, err
		}
		patterns = append(patterns, p)
	}
	if !c.atEnd() {
		o.Extended = true
		if err := c.sp(); err != nil {
			return "", nil, err
		}
		word, err := c.atom()
		if err != nil || !strings.EqualFold(word, "RETURN") {
			return "", nil, errSyntax
		}
		if err := c.sp(); err != nil {
			return "", nil, err
		}
		opts, err := c.optionList(func(opt string) error {
			if opt != "STATUS" {
				return errListOption
			}
			items, err := c.optionList(nil)
			if err != nil {
				return err
			}
			for _, it := range items {
				if !slices.Contains(imaplist.StatusItems, it) {
					return errListOption
				}
			}
			o.Status = append(o.Status, items...)
			return nil
		})
		if err != nil {
			return "", nil, err
		}
		for _, opt := range opts {
			if opt != "STATUS" && !o.Return(opt) {
				return "", nil, errListOption
			}
		}
	}
	if err := c.end(); err != nil {
		return "", nil, err
	}
	if o.Check() != nil {
		return "", nil, errListOption
	}
	return ref, patterns, nil
}

// optionList reads a parenthesised list of atoms, upper-cased; after an
// atom followed by a space and a list, nested reads that list.
func (c *command) optionList(nested func(opt string) error) ([]string, error) {
	if c.atEnd() || c.line[0] != '(' {
		return nil, errSyntax
	}
	c.line = c.line[1:]
	var opts []string
	for {
		if !c.atEnd() && c.line[0] == ')' {
			c.line = c.line[1:]
			return opts, nil
		}
		if len(opts) > 0 {
			if err := c.sp(); err != nil {
				return nil, err
			}
		}
		if !c.atEnd() && c.line[0] == '(' {
			if nested == nil || len(opts) == 0 {
				return nil, errSyntax
			}
			if err := nested(opts[len(opts)-1]); err != nil {
				return nil, err
			}
			continue
		}
		a, err := c.atom()
		if err != nil {
			return nil, err
		}
		opts = append(opts, strings.ToUpper(a))
	}
}

// listTree returns every name the user may see, with the parents of
// visible mailboxes that are none, INBOX first, then in list order; and
// each one's server ("" for a parent).
func (s *session) listTree() ([]imaplist.Mailbox, []string, error) {
	server := map[string]string{}
	var names []string
	err := s.visible(func(e *store.Entry, ext string) {
		server[ext] = e.Server()
		names = append(names, ext)
	})
	if err != nil {
		return nil, nil, err
	}
	parents := map[string]bool{}
	for _, n := range names {
		for i := 0; i < len(n); i++ {
			if n[i] == s.sep {
				if !parents[n[:i]] {
					parents[n[:i]] = true
					if _, ok := server[n[:i]]; !ok {
						names = append(names, n[:i])
					}
				}
			}
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		if (a == "INBOX") != (b == "INBOX") {
			if a == "INBOX" {
				return -1
			}
			return 1
		}
		return bytes.Compare(s.sortKey(a), s.sortKey(b))
	})
	mailboxes := make([]imaplist.Mailbox, len(names))
	servers := make([]string, len(names))
	for i, n := range names {
		_, exists := server[n]
		mailboxes[i] = imaplist.Mailbox{Name: n, Exists: exists, Children: parents[n]}
		servers[i] = server[n]
	}
	return mailboxes, servers, nil
}

// listCommand is what a backend is asked: every mailbox of its own that
// matches, with its special-use attributes and, if listStatus, its
// status as o wants them; the reference is already in the patterns.
func listCommand(pats []string, o *imaplist.Options, listStatus bool) string {
	quoted := make([]string, len(pats))
	for i, p := range pats {
		quoted[i] = quote(p)
	}
	var ret []string
	if o.WantSpecialUse() {
		ret = append(ret, "SPECIAL-USE")
	}
	if listStatus && len(o.Status) > 0 {
		ret = append(ret, "STATUS ("+strings.Join(o.Status, " ")+")")
	}
	return `LIST "" (` + strings.Join(quoted, " ") + ") RETURN (" + strings.Join(ret, " ") + ")"
}

// backendList is what one backend answered about its own mailboxes.
type backendList struct {
	special map[string][]string
	status  map[string]string // name to the whole STATUS response
	updates []string          // the selected backend's message updates
	refused string            // the LIST's NO or BAD
	err     error
}

// askBackends asks each server's backend at once what it knows of its
// own mailboxes matching pats, and reads the answers in parallel: each
// backend is one connection used by one goroutine, and the session waits
// for all. A backend gets one LIST command, or, if it lacks LIST-STATUS,
// STATUS commands for its mailboxes in names, pipelined behind it.
// failed says some backend could not answer; lost is the selected
// backend if it failed, which ends the session (err says why).
func (s *session) askBackends(servers, pats []string, o *imaplist.Options, names map[string][]string) (answers map[string]*backendList, lost *backend, failed bool, err error) {
	var bs []*backend
	for _, server := range servers {
		b, err := s.backendFor(server) // which logs why it fails
		if err != nil {
			failed = true
			continue
		}
		bs = append(bs, b)
	}
	got := make([]*backendList, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i] = b.list(pats, o, names[b.server], b == s.current)
		}()
	}
	wg.Wait()
	answers = make(map[string]*backendList, len(bs))
	for i, b := range bs {
		a := got[i]
		for _, u := range a.updates {
			s.w.WriteString(u + "\r\n")
		}
		switch {
		case a.err != nil && b == s.current:
			lost, err = b, a.err
		case a.err != nil:
			s.log.Warn("imapproxy: backend failed", "backend", b.server, "err", a.err)
			s.dropBackend(b)
			failed = true
		case a.refused != "":
			s.log.Warn("imapproxy: backend refused LIST", "backend", b.server, "answer", a.refused)
			failed = true
		default:
			answers[b.server] = a
		}
	}
	return answers, lost, failed, err
}

// statusWindow bounds the STATUS commands sent ahead of their answers: a
// backend blocked writing answers the proxy does not read yet would stop
// reading commands, and the proxy blocked writing them would never read.
const statusWindow = 64

// list asks b about its own mailboxes matching pats (see askBackends) and
// keeps what it says of them.
func (b *backend) list(pats []string, o *imaplist.Options, names []string, selected bool) *backendList {
	a := &backendList{special: map[string][]string{}, status: map[string]string{}}
	listStatus := b.caps["LIST-STATUS"]
	var listTag string
	pending := map[string]bool{}
	if o.WantSpecialUse() || listStatus {
		listTag = b.nextTag()
		pending[listTag] = true
		b.w.WriteString(listTag + " " + listCommand(pats, o, listStatus) + "\r\n")
	}
	if listStatus || len(o.Status) == 0 {
		names = nil
	}
	items := " (" + strings.Join(o.Status, " ") + ")\r\n"
	sendStatus := func() error {
		for ; len(names) > 0 && len(pending) < statusWindow; names = names[1:] {
			name := quote(names[0])
			if !quotable(names[0]) {
				// A name stored before names were checked; without
				// LITERAL+ it goes without STATUS.
				if !b.caps["LITERAL+"] {
					continue
				}
				name = "{" + strconv.Itoa(len(names[0])) + "+}\r\n" + names[0]
			}
			tag := b.nextTag()
			pending[tag] = true
			b.w.WriteString(tag + " STATUS " + name + items)
		}
		return b.flush()
	}
	if a.err = sendStatus(); a.err != nil {
		return a
	}
	for len(pending) > 0 {
		resp, err := b.readResponse()
		if err != nil {
			a.err = err
			return a
		}
		if tag, rest, ok := strings.Cut(resp, " "); ok && pending[tag] {
			delete(pending, tag)
			// A STATUS refused leaves its mailbox without one, which
			// the answer shows as RFC 5819 says.
			if status, _ := splitStatus(rest); status != "OK" && tag == listTag {
				a.refused = rest
			}
			if len(names) > 0 && len(pending) <= statusWindow/2 {
				if a.err = sendStatus(); a.err != nil {
					return a
				}
			}
			continue
		}
		if name, attrs, ok := parseListLine(resp); ok {
			a.special[name] = specialUse(attrs)
			continue
		}
		if name, ok := statusName(resp); ok {
			a.status[name] = resp
			continue
		}
		if selected && isMessageUpdate([]byte(resp)) {
			a.updates = append(a.updates, resp)
		}
	}
	return a
}

// parseListLine reads a backend's "* LIST (attrs) delim name" line.
func parseListLine(resp string) (name string, attrs []string, ok bool) {
	rest, ok := strings.CutPrefix(resp, "* LIST (")
	if !ok {
		return "", nil, false
	}
	flags, after, ok := strings.Cut(rest, ")")
	if !ok {
		return "", nil, false
	}
	name, ok = lsubName(after)
	return name, strings.Fields(flags), ok
}

// statusName reads the mailbox name of a "* STATUS name (...)" response.
func statusName(resp string) (string, bool) {
	rest, ok := strings.CutPrefix(resp, "* STATUS ")
	if !ok {
		return "", false
	}
	// lsubName reads a name after a delimiter.
	return lsubName(` NIL ` + rest)
}

// specialUse keeps the special-use attributes (RFC 6154, RFC 8457's
// \Important) of a LIST line's attributes.
func specialUse(attrs []string) []string {
	var out []string
	for _, a := range attrs {
		switch strings.ToLower(a) {
		case `\all`, `\archive`, `\drafts`, `\flagged`, `\junk`, `\sent`, `\trash`, `\important`:
			out = append(out, a)
		}
	}
	return out
}
