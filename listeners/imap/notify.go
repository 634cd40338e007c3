package imap

import (
	"slices"
	"strings"

	"github.com/rookery/rookery/store/mailstore"
)

// NOTIFY (RFC 5465): a client names the mailboxes it wants to hear about
// (INBOXES, PERSONAL, SUBSCRIBED, SUBTREE, MAILBOXES) and is told, as
// STATUS responses, when messages arrive in, leave or change flags in any
// of them, without selecting them; with SET STATUS, their state is sent at
// once too. The selected mailbox keeps its usual updates. The mailboxes
// watched for message events are resolved when NOTIFY SET runs.
// MailboxName and SubscriptionChange are told as LIST responses
// (notifynames.go); metadata and annotation events are not offered
// (BADEVENT names what is).
//
// One channel per session is woken by the store on a change to any
// watched mailbox or to the mailbox list; the session then compares each
// watched mailbox's counts with those it last told, and tells the name
// changes it was passed, after each command and at once while it IDLEs.

// notifyEvents are the events this server can send; rfcEvents are all
// RFC 5465 names, for their spelling.
var (
	notifyEvents = []string{"MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"}
	rfcEvents    = []string{"MessageNew", "MessageExpunge", "FlagChange", "AnnotationChange", "MailboxName",
		"SubscriptionChange", "MailboxMetadataChange", "ServerMetadataChange"}
)

// maxNotifyMailboxes bounds the mailboxes one session watches.
const maxNotifyMailboxes = 10000

// notifying is a session's NOTIFY SET.
type notifying struct {
	ch      chan struct{}
	cancels []func()
	boxes   map[uint64]*notifyBox
	names   nameEvents
}

// notifyBox is one watched mailbox and what the client was last told.
type notifyBox struct {
	flags                     bool // FlagChange asked: HIGHESTMODSEQ too
	messages, uidNext, uidVal uint32
	highestModSeq             uint64
	told                      bool
}

func (n *notifying) stop() {
	for _, c := range n.cancels {
		c()
	}
}

// notifyGroup is one event group of NOTIFY SET.
type notifyGroup struct {
	filter string   // upper case
	names  []string // internal names, for SUBTREE and MAILBOXES
	events []string
}

// cmdNotify handles NOTIFY NONE and NOTIFY SET [STATUS] groups.
func cmdNotify(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	switch verb := strings.ToUpper(r.atom()); verb {
	case "NONE":
		if err := r.end(); err != nil {
			return "", err
		}
		sess.stopNotify()
		return "", nil
	case "SET":
	default:
		if r.err == nil {
			return "", badf("Unknown NOTIFY %s", verb)
		}
		return "", r.err
	}
	r.sp()
	status := false
	if hasPrefixFold(string(r.line[r.pos:]), "STATUS ") {
		r.atom()
		r.sp()
		status = true
	}
	var groups []notifyGroup
	for r.err == nil {
		groups = append(groups, sess.notifyGroupArg())
		if !r.maybeSP() {
			break
		}
	}
	if err := r.end(); err != nil {
		return "", err
	}
	for _, g := range groups {
		for _, e := range g.events {
			if !slices.Contains(notifyEvents, e) {
				return "", noCode("BADEVENT ("+strings.Join(notifyEvents, " ")+")", "Unsupported event "+e)
			}
		}
		hasNew, hasGone := slices.Contains(g.events, "MessageNew"), slices.Contains(g.events, "MessageExpunge")
		if hasNew != hasGone || (slices.Contains(g.events, "FlagChange") && !hasNew) {
			return "", bad("MessageNew and MessageExpunge go together, and FlagChange needs them")
		}
	}
	sess.stopNotify()
	n := &notifying{ch: make(chan struct{}, 1), boxes: map[uint64]*notifyBox{}}
	st := sess.srv.cfg.Store
	watch := func(m mailstore.Mailbox, flags bool) {
		if b := n.boxes[m.ID]; b != nil {
			b.flags = b.flags || flags
			return
		}
		if len(n.boxes) >= maxNotifyMailboxes || sess.rightsOn(&m)&(rLookup|rRead) != rLookup|rRead {
			return
		}
		n.boxes[m.ID] = &notifyBox{flags: flags}
		n.cancels = append(n.cancels, st.WatchWith(m.ID, n.ch))
	}
	inbox, _ := sess.srv.ns.internal(sess.id.User, "INBOX")
	for _, g := range groups {
		if g.filter == "SELECTED" || g.filter == "SELECTED-DELAYED" {
			// Mailbox events there are not sent, as in Dovecot.
			continue
		}
		if slices.Contains(g.events, "MailboxName") || slices.Contains(g.events, "SubscriptionChange") {
			n.names.groups = append(n.names.groups, g)
		}
		if !slices.Contains(g.events, "MessageNew") {
			continue
		}
		flags := slices.Contains(g.events, "FlagChange")
		var err error
		switch g.filter {
		case "INBOXES":
			err = st.Mailboxes(inbox, func(m mailstore.Mailbox) bool {
				if m.Name == inbox {
					watch(m, flags)
				}
				return false
			})
		case "PERSONAL":
			err = st.Mailboxes(inbox, func(m mailstore.Mailbox) bool { watch(m, flags); return true })
		case "SUBSCRIBED":
			var subs []string
			if subs, err = st.Subscriptions(sess.id.User); err == nil {
				for _, name := range subs {
					if m, ok, merr := st.Mailbox(name); merr == nil && ok {
						watch(m, flags)
					}
				}
			}
		case "SUBTREE":
			for _, name := range g.names {
				if err = st.Mailboxes(name, func(m mailstore.Mailbox) bool { watch(m, flags); return true }); err != nil {
					break
				}
			}
		case "MAILBOXES":
			for _, name := range g.names {
				if m, ok, merr := st.Mailbox(name); merr == nil && ok {
					watch(m, flags)
				}
			}
		}
		if err != nil {
			n.stop()
			return "", err
		}
	}
	if len(n.names.groups) > 0 {
		n.cancels = append(n.cancels, st.WatchNames(func(cs []mailstore.NameChange) { n.names.add(cs, n.ch) }))
	}
	sess.notify = n
	if status {
		return "", sess.notifyStatus(true)
	}
	// What the client knows now is where changes count from.
	return "", sess.notifyStatus(false)
}

// notifyGroupArg reads "(" filter [SP events] ")".
func (sess *session) notifyGroupArg() notifyGroup {
	r := sess.r
	var g notifyGroup
	r.expect('(')
	g.filter = strings.ToUpper(r.atom())
	switch g.filter {
	case "SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED":
	case "SUBTREE", "MAILBOXES":
		r.sp()
		one := func() {
			_, name := sess.mailboxArg()
			if r.err == nil {
				g.names = append(g.names, name)
			}
		}
		if r.peek() == '(' {
			r.list(one)
		} else {
			one()
		}
	default:
		if r.err == nil {
			r.fail(badf("Unknown NOTIFY filter %s", g.filter))
		}
	}
	if r.maybeSP() {
		if hasPrefixFold(string(r.line[r.pos:]), "NONE") {
			r.atom()
		} else {
			r.list(func() {
				e := r.atom()
				if i := slices.IndexFunc(rfcEvents, func(k string) bool { return strings.EqualFold(k, e) }); i >= 0 {
					e = rfcEvents[i]
				}
				if strings.EqualFold(e, "MessageNew") && r.peek() == ' ' && r.pos+1 < len(r.line) && r.line[r.pos+1] == '(' {
					// MessageNew's FETCH attributes: not sent here.
					r.sp()
					r.fetchItems()
				}
				g.events = append(g.events, e)
			})
		}
	}
	r.expect(')')
	return g
}

// stopNotify ends the session's NOTIFY, if any.
func (sess *session) stopNotify() {
	if sess.notify != nil {
		sess.notify.stop()
		sess.notify = nil
	}
}

// notifyChanges tells what changed in watched mailboxes and names, if
// the store said anything did since the last look.
func (sess *session) notifyChanges() error {
	n := sess.notify
	if n == nil {
		return nil
	}
	select {
	case <-n.ch:
		return sess.notifyAll()
	default:
		return nil
	}
}

// notifyAll tells what changed in watched mailboxes, then the name
// changes the store passed on.
func (sess *session) notifyAll() error {
	if err := sess.notifyStatus(true); err != nil {
		return err
	}
	return sess.notifyNames()
}

// notifyStatus compares each watched mailbox but the selected one with
// what the client was last told and, if tell, sends a STATUS for those
// that differ; either way the current state is what it knows from now.
func (sess *session) notifyStatus(tell bool) error {
	n := sess.notify
	view := sess.srv.cfg.Store.View()
	defer view.Close()
	ids := make([]uint64, 0, len(n.boxes))
	for id := range n.boxes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		b := n.boxes[id]
		if sess.sel != nil && sess.sel.id == id {
			continue
		}
		m, ok, err := view.MailboxByID(id)
		if err != nil {
			return err
		}
		if !ok {
			delete(n.boxes, id)
			continue
		}
		same := b.told && b.messages == m.Exists && b.uidNext == m.UIDNext && b.uidVal == m.UIDValidity &&
			(!b.flags || b.highestModSeq == m.HighestModSeq)
		b.told, b.messages, b.uidNext, b.uidVal, b.highestModSeq = true, m.Exists, m.UIDNext, m.UIDValidity, m.HighestModSeq
		if same || !tell {
			continue
		}
		w := sess.w
		w.raw("* STATUS ").astr(sess.toWire(sess.srv.ns.external(sess.id.User, m.Name))).raw(" (MESSAGES ").num(uint64(m.Exists)).
			raw(" UIDNEXT ").num(uint64(m.UIDNext)).raw(" UIDVALIDITY ").num(uint64(m.UIDValidity))
		if b.flags {
			w.raw(" HIGHESTMODSEQ ").num(m.HighestModSeq)
		}
		w.raw(")\r\n")
	}
	return nil
}
