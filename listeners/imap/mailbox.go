package imap

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/rookery/rookery/store/mailstore"
)

// registryTimeout bounds one registry call: a client waits at most this
// long for the master before getting NO.
const registryTimeout = 30 * time.Second

func (sess *session) registryCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(sess.srv.ctx, registryTimeout)
}

var specialUses = []string{`\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`}

// nearestAncestor returns the closest existing ancestor of name.
func (sess *session) nearestAncestor(name string) (mailstore.Mailbox, bool, error) {
	for p := parent(name); p != ""; p = parent(p) {
		m, ok, err := sess.srv.cfg.Store.Mailbox(p)
		if err != nil || ok {
			return m, ok, err
		}
	}
	return mailstore.Mailbox{}, false, nil
}

// newMailboxACL checks that the user may create name and returns the ACL
// it gets: a user INBOX (admins only) gives its owner every right, a
// mailbox under an existing one inherits its ACL, a new top-level
// hierarchy (admins only) gets the default ACL.
func (sess *session) newMailboxACL(name string) (string, error) {
	if isInbox(name) {
		if !sess.id.Admin {
			return "", no("Permission denied")
		}
		return userPart(owner(name)) + "\t" + allRights.String() + "\t", nil
	}
	anc, ok, err := sess.nearestAncestor(name)
	if err != nil {
		return "", err
	}
	if !ok {
		if !sess.id.Admin {
			return "", no("Permission denied")
		}
		if o := owner(name); o != "" {
			return o + "\t" + allRights.String() + "\t", nil
		}
		return sess.srv.cfg.DefaultACL, nil
	}
	if err := need(sess.rightsOn(&anc), rCreate); err != nil {
		return "", err
	}
	return anc.ACL, nil
}

// checkNewName refuses a name a new mailbox cannot take: one with LIST
// wildcards as the client wrote it (ext), or one the store or a Cyrus
// peer would refuse (name, internal).
func checkNewName(ext, name string) error {
	if strings.ContainsAny(ext, "%*") {
		return no("Invalid mailbox name")
	}
	return checkName(name)
}

func cmdCreate(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	ext, name := sess.mailboxArg()
	var use []string
	if r.maybeSP() {
		if r.peek() == '(' {
			r.list(func() {
				kw := strings.ToUpper(r.atom())
				r.sp()
				if kw == "USE" {
					use = r.flagList()
				} else {
					r.astring()
				}
			})
		} else {
			r.astring() // a partition: there is one here
		}
	}
	if err := r.end(); err != nil {
		return "", err
	}
	if err := checkNewName(ext, name); err != nil {
		return "", err
	}
	var specialUse string
	for _, u := range use {
		i := slices.IndexFunc(specialUses, func(s string) bool { return strings.EqualFold(s, u) })
		if i < 0 || len(use) > 1 {
			return "", noCode("USEATTR", "Invalid special-use attribute")
		}
		specialUse = specialUses[i]
	}
	srv := sess.srv
	srv.mboxMu.Lock()
	defer srv.mboxMu.Unlock()
	if _, ok, err := srv.cfg.Store.Mailbox(name); err != nil || ok {
		if err == nil {
			err = noCode("ALREADYEXISTS", "Mailbox already exists")
		}
		return "", err
	}
	acl, err := sess.newMailboxACL(name)
	if err != nil {
		return "", err
	}
	if err := sess.createRegistered(name, acl, specialUse); err != nil {
		return "", err
	}
	m, ok, err := srv.cfg.Store.Mailbox(name)
	if err != nil || !ok {
		return "", err
	}
	return "MAILBOXID (" + mailboxID(&m) + ")", nil
}

// createRegistered creates a mailbox through the registry; the caller
// holds mboxMu.
func (sess *session) createRegistered(name, acl, specialUse string) error {
	srv := sess.srv
	reg := srv.cfg.Registry
	ctx, cancel := sess.registryCtx()
	defer cancel()
	if err := reg.Reserve(ctx, name); err != nil {
		sess.log.Warn("imap: registry refused reserve", "mailbox", name, "err", err)
		return registryError(err)
	}
	if _, err := srv.cfg.Store.CreateMailbox(name, acl, specialUse); err != nil {
		sess.undo("delete", name, reg.Delete(ctx, name))
		return storeError(err)
	}
	if err := reg.Activate(ctx, name, acl); err != nil {
		sess.log.Warn("imap: registry refused activate", "mailbox", name, "err", err)
		sess.undo("local delete", name, srv.cfg.Store.DeleteMailbox(name))
		sess.undo("delete", name, reg.Delete(ctx, name))
		return registryError(err)
	}
	return nil
}

// undo logs a failed rollback step; the client already gets a NO.
func (sess *session) undo(step, name string, err error) {
	if err != nil {
		sess.log.Error("imap: rollback step failed; registry and store may disagree", "step", step, "mailbox", name, "err", err)
	}
}

func cmdDelete(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	_, name := sess.mailboxArg()
	if err := r.end(); err != nil {
		return "", err
	}
	srv := sess.srv
	srv.mboxMu.Lock()
	defer srv.mboxMu.Unlock()
	m, rt, err := sess.lookup(name)
	if err != nil {
		return "", err
	}
	if err := need(rt, rDeleteMbox); err != nil {
		return "", err
	}
	victims := []mailstore.Mailbox{m}
	if isInbox(name) {
		if !sess.id.Admin {
			return "", no("Operation is not supported on mailbox")
		}
		// An admin deleting a user's INBOX deletes the user's mailboxes.
		if err := srv.cfg.Store.Mailboxes(name, func(c mailstore.Mailbox) bool {
			if c.Name != name {
				victims = append(victims, c)
			}
			return true
		}); err != nil {
			return "", err
		}
		slices.Reverse(victims) // children first
	}
	reg := srv.cfg.Registry
	ctx, cancel := sess.registryCtx()
	defer cancel()
	for _, v := range victims {
		if err := reg.Delete(ctx, v.Name); err != nil {
			sess.log.Warn("imap: registry refused delete", "mailbox", v.Name, "err", err)
			return "", registryError(err)
		}
		if sess.sel != nil && sess.sel.id == v.ID {
			sess.unselect()
		}
		if err := srv.cfg.Store.DeleteMailbox(v.Name); err != nil {
			sess.undo("activate", v.Name, reg.Activate(ctx, v.Name, v.ACL))
			return "", storeError(err)
		}
	}
	return "", nil
}

func cmdRename(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	_, oldName := sess.mailboxArg()
	r.sp()
	newExt, newName := sess.mailboxArg()
	if r.maybeSP() {
		r.astring() // a partition
		if r.err == nil {
			r.fail(no("Cross-server or cross-partition move w/rename not supported"))
		}
	}
	if err := r.end(); err != nil {
		return "", err
	}
	if strings.ContainsAny(newExt, "%*") {
		return "", no("Invalid mailbox name")
	}
	if err := checkName(newName); err != nil {
		return "", err
	}
	srv := sess.srv
	st := srv.cfg.Store
	srv.mboxMu.Lock()
	defer srv.mboxMu.Unlock()
	m, rt, err := sess.lookup(oldName)
	if err != nil {
		return "", err
	}
	if err := need(rt, rDeleteMbox); err != nil {
		return "", err
	}
	if oldName == newName || strings.HasPrefix(newName, oldName+".") {
		return "", no("Invalid mailbox name")
	}
	if _, ok, err := st.Mailbox(newName); err != nil || ok {
		if err == nil {
			err = noCode("ALREADYEXISTS", "Mailbox already exists")
		}
		return "", err
	}
	if isInbox(newName) && !sess.id.Admin {
		return "", no("Permission denied")
	}
	if !isInbox(newName) {
		anc, ok, err := sess.nearestAncestor(newName)
		if err != nil {
			return "", err
		}
		if ok && anc.Name != oldName {
			if err := need(sess.rightsOn(&anc), rCreate); err != nil {
				return "", err
			}
		} else if !ok && !sess.id.Admin {
			return "", no("Permission denied")
		}
	}
	if isInbox(oldName) {
		return "", sess.renameInbox(m, newName)
	}
	// The mailbox and its descendants, parents first.
	var moves []mailstore.Mailbox
	if err := st.Mailboxes(oldName, func(c mailstore.Mailbox) bool {
		moves = append(moves, c)
		return true
	}); err != nil {
		return "", err
	}
	reg := srv.cfg.Registry
	ctx, cancel := sess.registryCtx()
	defer cancel()
	for _, c := range moves {
		to := newName + strings.TrimPrefix(c.Name, oldName)
		if err := reg.Reserve(ctx, to); err != nil {
			sess.log.Warn("imap: registry refused reserve", "mailbox", to, "err", err)
			return "", registryError(err)
		}
		if err := st.RenameMailbox(c.Name, to); err != nil {
			sess.undo("delete", to, reg.Delete(ctx, to))
			return "", storeError(err)
		}
		if err := reg.Activate(ctx, to, c.ACL); err != nil {
			sess.log.Warn("imap: registry refused activate", "mailbox", to, "err", err)
			sess.undo("local rename back", c.Name, st.RenameMailbox(to, c.Name))
			sess.undo("delete", to, reg.Delete(ctx, to))
			return "", registryError(err)
		}
		if err := reg.Delete(ctx, c.Name); err != nil {
			// The mailbox is where it should be and registered there; the
			// old name stays registered until the next full push.
			sess.log.Warn("imap: registry kept the old name after a rename", "mailbox", c.Name, "err", err)
		}
	}
	return "", nil
}

// renameInbox moves every message of the INBOX into a new mailbox; the
// INBOX stays, empty, with its children (RFC 3501 6.3.5).
func (sess *session) renameInbox(m mailstore.Mailbox, newName string) error {
	acl, err := sess.newMailboxACL(newName)
	if err != nil {
		return err
	}
	if err := sess.createRegistered(newName, acl, ""); err != nil {
		return err
	}
	var uids []uint32
	if err := sess.srv.cfg.Store.Messages(m.ID, 1, ^uint32(0), func(msg *mailstore.Message) bool {
		uids = append(uids, msg.UID)
		return true
	}); err != nil {
		return err
	}
	if len(uids) == 0 {
		return nil
	}
	_, err = sess.srv.cfg.Store.Move(m.ID, uids, newName)
	return storeError(err)
}

func cmdSubscribe(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	_, name := sess.mailboxArg()
	if err := r.end(); err != nil {
		return "", err
	}
	st := sess.srv.cfg.Store
	if sess.cmd == "UNSUBSCRIBE" {
		return "", st.Unsubscribe(sess.id.User, name)
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	// In a murder subscriptions live with the INBOX and may name a mailbox
	// on any backend: the frontend checks that it exists in the murder.
	if _, alone := sess.srv.cfg.Registry.(NopRegistry); alone && !sess.srv.cfg.AllowAllSubscribe {
		if _, _, err := sess.lookup(name); err != nil {
			if ie, ok := err.(*Error); ok {
				ie.Code = ""
			}
			return "", err
		}
	}
	return "", st.Subscribe(sess.id.User, name)
}

// listMailbox reads a LIST pattern: astring characters plus '%' and '*'.
func (r *reader) listMailbox() string {
	switch r.peek() {
	case '"', '{':
		return r.str()
	}
	start := r.pos
	for r.pos < len(r.line) {
		c := r.line[r.pos]
		if !isAtomChar(c, true) && c != '%' && c != '*' {
			break
		}
		r.pos++
	}
	if r.pos == start {
		r.syntax("expected a mailbox pattern")
	}
	return string(r.line[start:r.pos])
}

func (sess *session) writeList(kind string, attrs []string, name string) {
	w := sess.w
	w.raw("* ").raw(kind).raw(" (").raw(strings.Join(attrs, " ")).raw(`) "`).raw(string(sess.srv.ns.sep)).raw(`" `)
	w.astr(sess.toWire(name)).raw("\r\n")
}

// matchAny matches a name against LIST patterns, INBOX case-insensitively.
func matchAny(name string, sep byte, ref string, patterns []string) bool {
	ref = canonicalInbox(ref, sep)
	for _, p := range patterns {
		if imapserver.MatchList(name, rune(sep), ref, canonicalInbox(p, sep)) {
			return true
		}
	}
	return false
}

// canonicalInbox spells a leading "inbox" level as "INBOX".
func canonicalInbox(s string, sep byte) string {
	if len(s) >= 5 && strings.EqualFold(s[:5], "INBOX") && (len(s) == 5 || s[5] == sep) {
		return "INBOX" + s[5:]
	}
	return s
}

func cmdLsub(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	ref := sess.fromWire(r.listMailbox())
	r.sp()
	pattern := sess.fromWire(r.listMailbox())
	if err := r.end(); err != nil {
		return "", err
	}
	names, err := sess.srv.cfg.Store.Subscriptions(sess.id.User)
	if err != nil {
		return "", err
	}
	ns := sess.srv.ns
	subscribed := make(map[string]bool, len(names))
	for _, n := range names {
		subscribed[ns.external(sess.id.User, n)] = true
	}
	listed := make(map[string]bool)
	for _, n := range names {
		ext := ns.external(sess.id.User, n)
		if !matchAny(ext, ns.sep, ref, []string{pattern}) {
			// A '%' that stops above a subscribed name lists the parent
			// it stops at, unless subscribed itself, as \Noselect (RFC
			// 3501 6.3.9).
			for i := strings.LastIndexByte(ext, ns.sep); i > 0; i = strings.LastIndexByte(ext[:i], ns.sep) {
				if p := ext[:i]; !subscribed[p] && !listed[p] && matchAny(p, ns.sep, ref, []string{pattern}) {
					listed[p] = true
					sess.writeList("LSUB", []string{`\Noselect`}, p)
				}
			}
			continue
		}
		var attrs []string
		if _, _, err := sess.lookup(n); err != nil {
			var ie *Error
			if !errors.As(err, &ie) {
				return "", err
			}
			attrs = append(attrs, `\Noselect`)
		}
		sess.writeList("LSUB", attrs, ext)
	}
	return "", nil
}

func cmdStatus(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	r.sp()
	ext, name := sess.mailboxArg()
	r.sp()
	var items []string
	r.list(func() { items = append(items, strings.ToUpper(r.atom())) })
	if err := r.end(); err != nil {
		return "", err
	}
	for _, it := range items {
		if !slices.Contains(statusItems, it) {
			return "", badf("Invalid status attribute %s", it)
		}
	}
	m, rt, err := sess.lookup(name)
	if err != nil {
		if ie, ok := err.(*Error); ok {
			ie.Code = ""
		}
		return "", err
	}
	if err := need(rt, rRead); err != nil {
		return "", err
	}
	// One view, so the counts agree with each other.
	view := sess.srv.cfg.Store.View()
	defer view.Close()
	ok, err := sess.writeStatus(view, ext, m.ID, items)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", no("Mailbox does not exist")
	}
	return "", nil
}
