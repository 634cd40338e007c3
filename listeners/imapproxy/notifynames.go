package imapproxy

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/rookery/rookery/internal/imaplist"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/store"
)

// NOTIFY's mailbox events (RFC 5465 5.4, 5.5) through the frontend. A
// create, delete or rename anywhere in the murder reaches the node's
// copy of the mailbox list, so the frontend tells them without asking
// any backend: after each command and at each poll while the client
// IDLEs, a session reads the list's change log from where it last
// stopped (nothing to read costs one atomic load) and tells, as
// unsolicited LIST responses, each name the client may see ('l') that
// came or went, with its parent, for the names its groups cover.
//
// The list shows a rename as a delete and a create. Renames made through
// this frontend are remembered (nameHub) and told as such, with OLDNAME,
// for each mailbox they moved; renames made elsewhere are told
// as the delete and create the list has. Subscriptions live on the
// user's INBOX backend, so SubscriptionChange tells only the SUBSCRIBE
// and UNSUBSCRIBE commands made through this frontend.

// maxNameChanges bounds the names told at once; past it the client gets
// NOTIFICATIONOVERFLOW and its NOTIFY ends (RFC 5465 5.8).
const maxNameChanges = 10000

// maxRenames is how many renames made here are remembered.
const maxRenames = 64

// nameHub is what this frontend's sessions did to names that the list
// does not show, for the NOTIFY sessions of the others.
type nameHub struct {
	mu       sync.Mutex
	renames  []*renaming // the latest, oldest first
	inFlight int
	watchers map[string]map[*nameWatch]struct{} // by user
}

// renaming is one RENAME through this frontend (internal names).
type renaming struct {
	from, to string
	done     bool // the backend said OK and the list has it
}

// beginRename notes a RENAME about to be sent: until it ends, sessions
// leave the change log alone, so that they do not see half of it.
func (h *nameHub) beginRename(from, to string) *renaming {
	r := &renaming{from: from, to: to}
	h.mu.Lock()
	h.inFlight++
	if len(h.renames) == maxRenames {
		h.renames = h.renames[1:]
	}
	h.renames = append(h.renames, r)
	h.mu.Unlock()
	return r
}

// endRename ends a RENAME; one that failed is forgotten.
func (h *nameHub) endRename(r *renaming, ok bool) {
	h.mu.Lock()
	h.inFlight--
	r.done = ok
	if !ok {
		h.renames = slices.DeleteFunc(h.renames, func(x *renaming) bool { return x == r })
	}
	h.mu.Unlock()
}

// renamed returns the name a deleted name got from a rename made here.
func (h *nameHub) renamed(name string) (to string, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(h.renames) - 1; i >= 0; i-- {
		r := h.renames[i]
		if !r.done {
			continue
		}
		if name == r.from {
			return r.to, true
		}
		if rest, ok := strings.CutPrefix(name, r.from+"."); ok {
			return r.to + "." + rest, true
		}
	}
	return "", false
}

func (h *nameHub) busy() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.inFlight > 0
}

func (h *nameHub) watch(user string, w *nameWatch) {
	h.mu.Lock()
	if h.watchers == nil {
		h.watchers = map[string]map[*nameWatch]struct{}{}
	}
	if h.watchers[user] == nil {
		h.watchers[user] = map[*nameWatch]struct{}{}
	}
	h.watchers[user][w] = struct{}{}
	h.mu.Unlock()
}

func (h *nameHub) unwatch(user string, w *nameWatch) {
	h.mu.Lock()
	delete(h.watchers[user], w)
	if len(h.watchers[user]) == 0 {
		delete(h.watchers, user)
	}
	h.mu.Unlock()
}

// subscribed passes a subscription change made here to the user's NOTIFY
// sessions.
func (h *nameHub) subscribed(user, name string, on bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers[user] {
		w.mu.Lock()
		if len(w.subChanges) < maxNameChanges {
			w.subChanges = append(w.subChanges, subChange{name, on})
		}
		w.mu.Unlock()
	}
}

// nameWatch is a session's NOTIFY for mailbox events.
type nameWatch struct {
	groups     []notifyGroup   // those with mailbox events; names internal
	seq        uint64          // the change log is told up to here
	subs       map[string]bool // the user's subscriptions; nil: unknown
	mu         sync.Mutex      // guards subChanges, which the hub fills
	subChanges []subChange
}

type subChange struct {
	name string
	on   bool
}

// watchNames starts the mailbox events of a NOTIFY SET, if it asks for
// any; changes from now on are told. Its error is the selected backend's
// failure, which ends the session.
func (s *session) watchNames(groups []notifyGroup) error {
	w := &nameWatch{seq: s.srv.cfg.DB.LastSeq()}
	for _, g := range groups {
		if g.filter == "SELECTED" || g.filter == "SELECTED-DELAYED" ||
			!slices.Contains(g.events, "MailboxName") && !slices.Contains(g.events, "SubscriptionChange") {
			continue
		}
		in := g
		in.names = make([]string, len(g.names))
		for i, n := range g.names {
			in.names[i] = s.internal(n)
		}
		w.groups = append(w.groups, in)
	}
	if len(w.groups) == 0 {
		return nil
	}
	// The subscriptions, for SUBSCRIBED and \Subscribed; without them
	// (INBOX backend down) those are told for changes made here only.
	subs, _, b, err := s.lsubAll()
	var refused *refusedError
	switch {
	case err == nil:
		w.subs = make(map[string]bool, len(subs))
		for _, n := range subs {
			w.subs[s.internal(n)] = true
		}
	case b != nil && b == s.current && !errors.As(err, &refused):
		return err
	default:
		s.log.Warn("imapproxy: NOTIFY could not read the subscriptions", "err", err)
		if b != nil && !errors.As(err, &refused) {
			s.dropBackend(b)
		}
	}
	s.notify.list = w
	s.srv.names.watch(s.user, w)
	return nil
}

// wants reports whether a group asks for event on the internal name;
// subscribed is whether the user is subscribed to it.
func (w *nameWatch) wants(event, name, inbox string, subscribed bool) bool {
	for _, g := range w.groups {
		if !slices.Contains(g.events, event) {
			continue
		}
		if imaplist.Covers(g.filter, g.names, name, inbox, subscribed) {
			return true
		}
	}
	return false
}

// sees reports whether e is a mailbox the user may look up.
func (s *session) sees(e *store.Entry) bool {
	return e != nil && e.Kind == store.Active && !strings.HasPrefix(e.Name, deletedPrefix) &&
		strings.ContainsRune(s.rights(e), 'l')
}

// nameTell is one LIST to send: the name, the name before a rename, and
// the subscription state when a change told it.
type nameTell struct {
	name, old string
	sub       *bool
}

// notifyNames tells the client the name changes the list and this
// frontend's sessions show since it was last told.
func (s *session) notifyNames() {
	n := s.notify
	if n == nil || n.list == nil {
		return
	}
	w := n.list
	w.mu.Lock()
	subChanges := w.subChanges
	w.subChanges = nil
	w.mu.Unlock()
	type change struct{ before, after, paired bool }
	changed := map[string]*change{}
	var order []string
	db := s.srv.cfg.DB
	if db.LastSeq() < w.seq {
		w.seq = db.LastSeq() // a list made anew (a replica's full resync)
	}
	if db.LastSeq() != w.seq && !s.srv.names.busy() {
		last, err := db.ChangesSince(w.seq, 0, func(c store.Change) error {
			ch := changed[c.Name]
			if ch == nil {
				before := s.sees(c.Old)
				if !before && !s.sees(c.New) {
					return nil
				}
				ch = &change{before: before}
				changed[c.Name] = ch
				order = append(order, c.Name)
			}
			ch.after = s.sees(c.New)
			return nil
		})
		switch {
		case errors.Is(err, store.ErrTrimmed):
			s.log.Warn("imapproxy: NOTIFY fell behind the list's change log", "err", err)
			last = db.LastSeq()
		case err != nil:
			s.log.Warn("imapproxy: NOTIFY could not read the list's change log", "err", err)
		}
		w.seq = last
	}
	inbox := frontend.UserInbox(s.user)
	var out []nameTell
	told := map[string]int{} // index in out
	add := func(event, name, old string, sub *bool) {
		if name == "" {
			return
		}
		subscribed := w.subs[name] || sub != nil
		if !w.wants(event, name, inbox, subscribed) && (old == "" || !w.wants(event, old, inbox, w.subs[old])) {
			return
		}
		if i, ok := told[name]; ok {
			if sub != nil {
				out[i].sub = sub
			}
			return
		}
		told[name] = len(out)
		out = append(out, nameTell{name, old, sub})
	}
	// A deleted name whose new one came in the same changes was renamed
	// here: told as a rename, where the new name came, for each mailbox
	// the rename moved, so a client that may see or asked for only part
	// of the tree hears of that part.
	renamedFrom := map[string]string{}
	for _, name := range order {
		ch := changed[name]
		if !ch.before || ch.after {
			continue
		}
		to, ok := s.srv.names.renamed(name)
		if c := changed[to]; ok && c != nil && !c.before && c.after {
			ch.paired, c.paired = true, true
			renamedFrom[to] = name
		}
	}
	for _, name := range order {
		switch ch := changed[name]; {
		case renamedFrom[name] != "":
			add("MailboxName", name, renamedFrom[name], nil)
		case ch.paired || ch.before == ch.after:
		default:
			add("MailboxName", name, "", nil)
			if i := strings.LastIndexByte(name, '.'); i > 0 {
				add("MailboxName", name[:i], "", nil)
			}
		}
	}
	for _, c := range subChanges {
		if w.subs != nil {
			if w.subs[c.name] == c.on {
				continue // no change: already so
			}
			w.subs[c.name] = c.on
		}
		on := c.on
		add("SubscriptionChange", c.name, "", &on)
	}
	if len(out) > maxNameChanges {
		s.untagged("OK [NOTIFICATIONOVERFLOW] Too many changes at once; NOTIFY is off")
		s.stopNotify()
		return
	}
	if len(out) == 0 {
		return
	}
	snap := db.Snapshot()
	defer snap.Close()
	for _, t := range out {
		m, err := s.nameState(snap, t.name)
		if err != nil {
			s.log.Warn("imapproxy: NOTIFY could not read the list", "err", err)
			return
		}
		sub := w.subs[t.name]
		if t.sub != nil {
			sub = *t.sub
		}
		old := ""
		if t.old != "" {
			old = astring(s.external(t.old))
		}
		s.untagged(imaplist.Change(m, sub, s.sep, astring(s.external(t.name)), old))
	}
}

// nameState is an internal name as the user may see it in snap.
func (s *session) nameState(snap *store.Snapshot, name string) (imaplist.Mailbox, error) {
	var m imaplist.Mailbox
	e, found, err := snap.Get(name)
	if err != nil {
		return m, err
	}
	m.Exists = found && s.sees(&e)
	errFound := errors.New("found")
	err = snap.Subtree(name, func(e store.Entry) error {
		if e.Name != name && s.sees(&e) {
			return errFound
		}
		return nil
	})
	m.Children = errors.Is(err, errFound)
	if m.Children {
		err = nil
	}
	return m, err
}
