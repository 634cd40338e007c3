package imap

import (
	"slices"
	"strings"

	"github.com/rookery/rookery/internal/imaplist"
	"github.com/rookery/rookery/store/mailstore"
)

type listEntry struct {
	ext      string
	exists   bool // exists and is visible (else an implied parent)
	children bool
	special  string
	mbox     mailstore.Mailbox // when exists
}

// visible returns the names user can see, in the order to list them
// (INBOX and its children first, then Cyrus order), with implied parents
// of visible names as non-existent entries.
func (sess *session) visible() ([]*listEntry, error) {
	ns := sess.srv.ns
	var own, other []*listEntry
	byName := make(map[string]*listEntry)
	ib := inbox(sess.id.User)
	err := sess.srv.cfg.Store.Mailboxes("", func(m mailstore.Mailbox) bool {
		if sess.rightsOn(&m)&rLookup == 0 {
			return true
		}
		add := func(name string, exists bool, m mailstore.Mailbox) {
			if e, ok := byName[name]; ok {
				if exists {
					e.exists, e.special, e.mbox = true, m.SpecialUse, m
				}
				return
			}
			e := &listEntry{ext: ns.external(sess.id.User, name), exists: exists}
			if exists {
				e.special, e.mbox = m.SpecialUse, m
			}
			byName[name] = e
			if name == ib || strings.HasPrefix(name, ib+".") {
				own = append(own, e)
			} else {
				other = append(other, e)
			}
		}
		// Implied parents first, so they come before their children; the
		// INBOX has none ("user" above it is not the user's).
		mine := m.Name == ib || strings.HasPrefix(m.Name, ib+".")
		var anc []string
		for p := parent(m.Name); p != "" && !(mine && strings.HasPrefix(ib, p+".")); p = parent(p) {
			anc = append(anc, p)
		}
		for i := len(anc) - 1; i >= 0; i-- {
			add(anc[i], false, mailstore.Mailbox{})
			byName[anc[i]].children = true
		}
		add(m.Name, true, m)
		return true
	})
	return append(own, other...), err
}

// cmdList answers LIST and XLIST, with the options of LIST-EXTENDED (RFC
// 5258), LIST-STATUS (RFC 5819) and SPECIAL-USE (RFC 6154). XLIST, which
// Apple clients still send, is LIST with special-use attributes and
// \Inbox on the INBOX, as Cyrus answers it.
func cmdList(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	o := imaplist.Options{XList: sess.cmd == "XLIST"}
	r.sp()
	if r.peek() == '(' {
		o.Extended = true
		r.list(func() {
			if !o.Select(r.atom()) && r.err == nil {
				r.fail(bad("Invalid list selection option"))
			}
		})
		r.sp()
	}
	ref := sess.fromWire(r.listMailbox())
	r.sp()
	var patterns []string
	if r.peek() == '(' {
		o.Extended = true
		r.list(func() { patterns = append(patterns, sess.fromWire(r.listMailbox())) })
	} else {
		patterns = append(patterns, sess.fromWire(r.listMailbox()))
	}
	if r.maybeSP() {
		o.Extended = true
		if !strings.EqualFold(r.atom(), "RETURN") && r.err == nil {
			r.syntax("expected RETURN")
		}
		r.sp()
		r.list(func() {
			opt := r.atom()
			if strings.EqualFold(opt, "STATUS") {
				r.sp()
				r.list(func() {
					it := strings.ToUpper(r.atom())
					if !slices.Contains(statusItems, it) && r.err == nil {
						r.fail(badf("Invalid status attribute %s", it))
					}
					o.Status = append(o.Status, it)
				})
				return
			}
			if !o.Return(opt) && r.err == nil {
				r.fail(bad("Invalid list return option"))
			}
		})
	}
	if err := r.end(); err != nil {
		return "", err
	}
	if err := o.Check(); err != nil {
		return "", bad("Invalid list selection options: " + err.Error())
	}
	kind := "LIST"
	if o.XList {
		kind = "XLIST"
	}
	sep := string(sess.srv.ns.sep)
	if !o.Extended && len(patterns) == 1 && patterns[0] == "" {
		root := ""
		if i := strings.Index(ref, sep); i >= 0 {
			root = ref[:i+1]
		}
		sess.w.raw("* " + kind + ` (\Noselect) "` + sep + `" `).str(root).raw("\r\n")
		return "", nil
	}
	entries, err := sess.visible()
	if err != nil {
		return "", err
	}
	var subs []string
	if o.WantSubscriptions() {
		if subs, err = sess.subscriptionNames(); err != nil {
			return "", err
		}
	}
	mailboxes := make([]imaplist.Mailbox, len(entries))
	for i, e := range entries {
		mailboxes[i] = imaplist.Mailbox{Name: e.ext, Exists: e.exists, Children: e.children}
		if e.special != "" {
			mailboxes[i].Special = []string{e.special}
		}
	}
	ns := sess.srv.ns
	lines := imaplist.List(mailboxes, subs, ns.sep, func(name string) bool {
		return matchAny(name, ns.sep, ref, patterns)
	}, &o)
	// One view for every STATUS of the command, so they are of one moment.
	var view *mailstore.View
	if len(o.Status) > 0 {
		view = sess.srv.cfg.Store.View()
		defer view.Close()
	}
	for _, l := range lines {
		var e *listEntry
		if l.Mailbox >= 0 {
			e = entries[l.Mailbox]
		}
		status := view != nil && e != nil && e.exists
		if status && sess.rightsOn(&e.mbox)&rRead == 0 {
			// RFC 5819: no STATUS where it may not be read, and such a
			// mailbox is not selectable.
			status = false
			l.Attrs = append([]string{`\Noselect`}, l.Attrs...)
		}
		sess.w.raw("* ").raw(l.Format(kind, ns.sep, astring(sess.toWire(l.Name)))).raw("\r\n")
		if status {
			if _, err := sess.writeStatus(view, l.Name, e.mbox.ID, o.Status); err != nil {
				return "", err
			}
		}
	}
	return "", nil
}

// subscriptionNames returns the user's subscriptions by external name.
func (sess *session) subscriptionNames() ([]string, error) {
	names, err := sess.srv.cfg.Store.Subscriptions(sess.id.User)
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		names[i] = sess.srv.ns.external(sess.id.User, n)
	}
	return names, nil
}

// writeStatus writes the STATUS response for the mailbox id, named ext,
// as view sees it; ok is false if it is not there.
func (sess *session) writeStatus(view *mailstore.View, ext string, id uint64, items []string) (ok bool, err error) {
	m, ok, err := view.MailboxByID(id)
	if err != nil || !ok {
		return ok, err
	}
	var unseen, recent, deleted uint32
	if slices.Contains(items, "UNSEEN") || slices.Contains(items, "RECENT") || slices.Contains(items, "DELETED") {
		recentUID, err := view.RecentUID(m.ID)
		if err != nil {
			return false, err
		}
		if err := view.Messages(m, 1, ^uint32(0), func(msg *mailstore.Message) bool {
			if !slices.Contains(msg.Flags, `\Seen`) {
				unseen++
			}
			if slices.Contains(msg.Flags, `\Deleted`) {
				deleted++
			}
			if msg.UID > recentUID {
				recent++
			}
			return true
		}); err != nil {
			return false, err
		}
	}
	w := sess.w
	w.raw("* STATUS ").astr(sess.toWire(ext)).raw(" (")
	for i, it := range items {
		if i > 0 {
			w.raw(" ")
		}
		w.raw(it).raw(" ")
		switch it {
		case "MESSAGES":
			w.num(uint64(m.Exists))
		case "RECENT":
			w.num(uint64(recent))
		case "UIDNEXT":
			w.num(uint64(m.UIDNext))
		case "UIDVALIDITY":
			w.num(uint64(m.UIDValidity))
		case "UNSEEN":
			w.num(uint64(unseen))
		case "SIZE":
			w.num(uint64(m.Size))
		case "HIGHESTMODSEQ":
			w.num(m.HighestModSeq)
		case "DELETED":
			w.num(uint64(deleted))
		case "MAILBOXID":
			w.raw("(").raw(mailboxID(&m)).raw(")")
		}
	}
	w.raw(")\r\n")
	return true, nil
}

// astring is s as an IMAP astring: an atom when it can be one.
func astring(s string) string {
	if isAtom(s) {
		return s
	}
	return string(appendString(nil, s))
}
