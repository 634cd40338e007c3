package imap

import (
	"slices"
	"strings"
	"sync"

	"github.com/rookery/rookery/internal/imaplist"
	"github.com/rookery/rookery/store/mailstore"
)

// NOTIFY's mailbox events (RFC 5465 5.4, 5.5): the store passes every
// change to the mailbox list and to subscriptions to each session that
// asked for MailboxName or SubscriptionChange; the session keeps those
// for names its groups cover and tells them as unsolicited LIST
// responses, with the attributes the name has when they are told. A
// mailbox created or deleted affects its parent too (\HasChildren); a
// mailbox that becomes visible or invisible to the user (the 'l' right,
// RFC 4314) counts as created or deleted; a rename is told with OLDNAME
// for each mailbox it moved (the store passes each descendant's rename
// on its own), so a client watching only part of a tree still hears of
// the part it watches.

// maxNameChanges bounds the changes waiting for one session; past it
// the session gets NOTIFICATIONOVERFLOW and its NOTIFY ends, as RFC 5465
// 5.8 lets a server do.
const maxNameChanges = 10000

// nameEvents is what a session's NOTIFY keeps for mailbox events.
type nameEvents struct {
	groups []notifyGroup // those with MailboxName or SubscriptionChange

	mu       sync.Mutex
	pending  []mailstore.NameChange // under mu
	overflow bool                   // under mu
}

// add is the store's WatchNames callback: it queues the changes and
// wakes the session. It runs on the store's writer and must not block.
func (e *nameEvents) add(cs []mailstore.NameChange, wake chan struct{}) {
	e.mu.Lock()
	if len(e.pending)+len(cs) > maxNameChanges {
		e.overflow = true
		e.pending = nil
	} else if !e.overflow {
		e.pending = append(e.pending, cs...)
	}
	e.mu.Unlock()
	select {
	case wake <- struct{}{}:
	default:
	}
}

// wants reports whether a group asks for event on the internal name;
// subscribed is whether the user is subscribed to it (before or after
// the change).
func (e *nameEvents) wants(event, name, inbox string, subscribed bool) bool {
	for _, g := range e.groups {
		if !slices.Contains(g.events, event) {
			continue
		}
		if imaplist.Covers(g.filter, g.names, name, inbox, subscribed) {
			return true
		}
	}
	return false
}

// notifyNames tells the client the name changes the store passed on
// that its NOTIFY SET covers.
func (sess *session) notifyNames() error {
	n := sess.notify
	if n == nil || len(n.names.groups) == 0 {
		return nil
	}
	e := &n.names
	e.mu.Lock()
	changes, overflow := e.pending, e.overflow
	e.pending, e.overflow = nil, false
	e.mu.Unlock()
	if overflow {
		sess.w.raw("* OK [NOTIFICATIONOVERFLOW] Too many changes at once; NOTIFY is off\r\n")
		sess.stopNotify()
		return nil
	}
	if len(changes) == 0 {
		return nil
	}
	st := sess.srv.cfg.Store
	user := sess.id.User
	list, err := st.Subscriptions(user)
	if err != nil {
		return err
	}
	subs := make(map[string]bool, len(list))
	for _, s := range list {
		subs[s] = true
	}
	ib := inbox(user)
	sees := func(acl, name string) bool { return myRights(acl, name, user, sess.id.Admin)&rLookup != 0 }
	// Each name is told once, with its state when told: the changes to
	// it in between are summed up in that state, but for renames, which
	// carry the names told before them along (renamed).
	var out []nameTell
	told := map[string]bool{}
	add := func(event, name, old string, created, subChange bool) {
		if name == "" || told[name] {
			return
		}
		if !e.wants(event, name, ib, subChange || subs[name]) && (old == "" || !e.wants(event, old, ib, subs[old])) {
			return
		}
		told[name] = true
		out = append(out, nameTell{name, old, created})
	}
	for _, c := range changes {
		switch c.Event {
		case mailstore.MailboxCreated, mailstore.MailboxDeleted, mailstore.ACLChanged:
			if now := sees(c.ACL, c.Name); now || sees(c.OldACL, c.Name) {
				if c.Event == mailstore.ACLChanged && now == sees(c.OldACL, c.Name) {
					continue
				}
				add("MailboxName", c.Name, "", now, false)
				add("MailboxName", parent(c.Name), "", false, false)
			}
		case mailstore.MailboxRenamed:
			if !sees(c.ACL, c.Name) {
				continue
			}
			var merged bool
			var at int
			out, merged, at = renamed(out, c.OldName, c.Name)
			clear(told)
			for _, t := range out {
				told[t.name] = true
			}
			if !merged {
				add("MailboxName", c.Name, c.OldName, false, false)
				if n := len(out); n > 0 && out[n-1].name == c.Name && at < n-1 {
					// Before the names it moved.
					out = slices.Insert(out[:n-1], at, out[n-1])
				}
			}
		case mailstore.Subscribed, mailstore.Unsubscribed:
			if c.User == user {
				add("SubscriptionChange", c.Name, "", false, true)
			}
		}
	}
	ns := sess.srv.ns
	for _, t := range out {
		m, err := sess.nameState(t.name)
		if err != nil {
			return err
		}
		old := ""
		if t.old != "" {
			old = astring(sess.toWire(ns.external(user, t.old)))
		}
		line := imaplist.Change(m, subs[t.name], ns.sep, astring(sess.toWire(ns.external(user, t.name))), old)
		sess.w.raw("* ").raw(line).raw("\r\n")
	}
	return nil
}

// nameTell is a name to tell: old is its name before a rename, created
// whether it came into the user's sight among the changes being told.
type nameTell struct {
	name, old string
	created   bool
}

// renamed carries the names to tell that a rename from old to new moved
// along: those below old take new's place; old itself, if the client is
// to hear of it as created or renamed, is told so under new, which
// merges the rename into it; told of otherwise, it is dropped, as the
// rename tells what became of it. Unless merged, the rename is to be told
// at index at, before the names it moved.
func renamed(out []nameTell, old, new string) (_ []nameTell, merged bool, at int) {
	at = -1
	kept := out[:0]
	seen := map[string]bool{}
	for _, t := range out {
		if rest, ok := strings.CutPrefix(t.name, old+"."); ok {
			t.name = new + "." + rest
			if at < 0 {
				at = len(kept)
			}
		} else if t.name == old {
			if !t.created && t.old == "" {
				continue
			}
			t.name, merged = new, true
		}
		if !seen[t.name] {
			seen[t.name] = true
			kept = append(kept, t)
		}
	}
	if at < 0 {
		at = len(kept)
	}
	return kept, merged, at
}

// nameState is an internal name as the user may see it now: whether it
// is a mailbox the user may look up, with its special use, and whether
// it has such a descendant.
func (sess *session) nameState(name string) (imaplist.Mailbox, error) {
	var m imaplist.Mailbox
	err := sess.srv.cfg.Store.Mailboxes(name, func(mb mailstore.Mailbox) bool {
		if sess.rightsOn(&mb)&rLookup == 0 {
			return true
		}
		if mb.Name != name {
			m.Children = true
			return false
		}
		m.Exists = true
		if mb.SpecialUse != "" {
			m.Special = []string{mb.SpecialUse}
		}
		return true
	})
	return m, err
}
