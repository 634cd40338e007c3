package imap

import (
	"slices"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/rookery/rookery/store/mailstore"
)

// selected is a session's view of its selected mailbox: the UIDs it has
// announced (their positions are the sequence numbers), the modseq up to
// which it has announced flag changes and new messages, the modseq up to
// which it has announced expunges (its pin's: until then the store keeps
// expunged messages readable under their UIDs), the keywords it has
// announced and the messages it gives \Recent. update brings the view up
// to date from the store's change index.
type selected struct {
	id       uint64
	name     string // internal name when selected (RENAME may change it)
	readOnly bool
	rights   rights
	uids     []uint32
	modseq   uint64
	told     uint64
	keywords []string
	recent   []uint32 // ascending
	saved    []uint32 // SEARCHRES's "$": UIDs, ascending
	contexts []*contextSearch
	pin      *mailstore.Pin
	watch    <-chan struct{}
	cancel   func()
}

// seq returns the sequence number of uid (0 if not in view).
func (v *selected) seq(uid uint32) uint32 {
	i, ok := slices.BinarySearch(v.uids, uid)
	if !ok {
		return 0
	}
	return uint32(i + 1)
}

// isRecent reports whether this session gives uid \Recent.
func (v *selected) isRecent(uid uint32) bool {
	_, ok := slices.BinarySearch(v.recent, uid)
	return ok
}

func (sess *session) unselect() {
	if v := sess.sel; v != nil {
		v.cancel()
		if err := v.pin.Release(); err != nil {
			sess.log.Warn("imap: releasing expunged messages", "mailbox", v.name, "err", err)
		}
		sess.sel = nil
	}
}

var systemFlags = []string{`\Answered`, `\Flagged`, `\Draft`, `\Deleted`, `\Seen`}

func (sess *session) writeFlags(keywords []string) {
	w := sess.w
	all := append(slices.Clone(systemFlags), keywords...)
	w.raw("* FLAGS ")
	fmtFlags(w, all)
	w.raw("\r\n* OK [PERMANENTFLAGS ")
	if sess.sel.readOnly {
		w.raw("()")
	} else {
		fmtFlags(w, append(all, `\*`))
	}
	w.raw("] Ok\r\n")
}

// writeMessageFlags writes a message's flags as FETCH shows them: the
// stored ones and, if this session gives it, \Recent.
func (sess *session) writeMessageFlags(uid uint32, flags []string) {
	if sess.sel != nil && sess.sel.isRecent(uid) {
		flags = append(slices.Clip(flags), `\Recent`)
	}
	fmtFlags(sess.w, flags)
}

// announceKeywords sends FLAGS (and PERMANENTFLAGS) when the mailbox has
// keywords the client has not been told of, before any response that
// shows one (RFC 3501 7.2.6).
func (sess *session) announceKeywords(kw []string) {
	v := sess.sel
	if len(kw) == len(v.keywords) {
		return
	}
	v.keywords = kw
	sess.writeFlags(kw)
}

func cmdSelect(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	examine := sess.cmd == "EXAMINE"
	r.sp()
	ext, name := sess.mailboxArg()
	var q *qresyncArgs
	if r.maybeSP() {
		r.list(func() {
			switch m := strings.ToUpper(r.atom()); {
			case m == "CONDSTORE":
				sess.condstore = true
			case m == "QRESYNC" && sess.qresync:
				r.sp()
				q = r.qresyncArgs()
			case m == "QRESYNC" && r.err == nil:
				r.fail(bad("QRESYNC parameter needs ENABLE QRESYNC first"))
			case r.err == nil:
				r.fail(badf("Invalid modifier %s", m))
			}
		})
	}
	if err := r.end(); err != nil {
		return "", err
	}
	if sess.sel != nil {
		sess.unselect()
		sess.w.raw("* OK [CLOSED] Ok\r\n")
	}
	m, rt, err := sess.lookup(name)
	if err != nil {
		if ie, ok := err.(*Error); ok && ie.Code == "TRYCREATE" {
			ie.Code = ""
		}
		return "", err
	}
	if err := need(rt, rRead); err != nil {
		return "", err
	}
	st := sess.srv.cfg.Store
	v := &selected{id: m.ID, name: m.Name, readOnly: examine, rights: rt}
	// Watch and pin before reading, so no change falls between them and
	// the view: every expunge after the view is kept until this session
	// has told its client.
	v.watch, v.cancel = st.Watch(m.ID)
	v.pin = st.Pin(m.ID)
	view := st.View()
	defer view.Close()
	fail := func(err error) (string, error) {
		v.cancel()
		_ = v.pin.Release()
		return "", err
	}
	m, ok, err := view.MailboxByID(m.ID)
	if err != nil || !ok {
		if err == nil {
			err = no("Mailbox does not exist")
		}
		return fail(err)
	}
	list, err := view.UIDs(m)
	if err != nil {
		return fail(err)
	}
	// The store shares the list; the session changes its own copy.
	v.uids = slices.Clone(list.UIDs)
	v.modseq, v.told = m.HighestModSeq, m.HighestModSeq
	v.keywords = m.Keywords
	if err := v.pin.Advance(m.HighestModSeq); err != nil {
		return fail(err)
	}
	if err := sess.takeRecent(v, view, v.uids); err != nil {
		return fail(err)
	}
	sess.sel = v
	w := sess.w
	sess.writeFlags(v.keywords)
	w.raw("* ").num(uint64(len(v.uids))).raw(" EXISTS\r\n")
	if sess.rev2 {
		// RFC 9051 6.3.2: the mailbox's LIST line, not RECENT or UNSEEN.
		if err := sess.selectedList(ext, &m); err != nil {
			return "", err
		}
	} else {
		w.raw("* ").num(uint64(len(v.recent))).raw(" RECENT\r\n")
		if list.FirstUnseen > 0 {
			w.raw("* OK [UNSEEN ").num(uint64(list.FirstUnseen)).raw("] Ok\r\n")
		}
	}
	w.raw("* OK [UIDVALIDITY ").num(uint64(m.UIDValidity)).raw("] Ok\r\n")
	w.raw("* OK [UIDNEXT ").num(uint64(m.UIDNext)).raw("] Ok\r\n")
	w.raw("* OK [HIGHESTMODSEQ ").num(m.HighestModSeq).raw("] Ok\r\n")
	w.raw("* OK [MAILBOXID (").raw(mailboxID(&m)).raw(")] Ok\r\n")
	w.raw("* OK [MYRIGHTS \"").raw(rt.String()).raw("\"] Ok\r\n")
	if q != nil {
		if err := sess.resync(view, m, q); err != nil {
			return "", err
		}
	}
	if examine {
		return "READ-ONLY", nil
	}
	return "READ-WRITE", nil
}

// takeRecent adds to the view's recent messages those of added (ascending
// UIDs new to the view) that no session has had \Recent for: a read-write
// session claims them for itself; EXAMINE shows them without claiming
// (RFC 3501 2.3.2, 6.3.2).
func (sess *session) takeRecent(v *selected, view *mailstore.View, added []uint32) error {
	if len(added) == 0 || sess.rev2 {
		// IMAP4rev2 has no \Recent: such a session neither shows nor
		// claims it, and IMAP4rev1 sessions still see it.
		return nil
	}
	var before uint32
	var err error
	if v.readOnly {
		before, err = view.RecentUID(v.id)
	} else {
		before, err = sess.srv.cfg.Store.ClaimRecent(v.id, added[len(added)-1])
	}
	if err != nil {
		return err
	}
	i, _ := slices.BinarySearch(added, before+1)
	v.recent = append(v.recent, added[i:]...)
	return nil
}

// update tells the client what changed in the selected mailbox since it
// was last told: expunges (when allowed), keywords, flag changes, new
// messages. It reads the store's change index from one view, so its cost
// follows what changed.
func (sess *session) update(allowExpunge bool) error {
	v := sess.sel
	// SELECT has just told its view's state; what changed since comes
	// with the next command, not inside SELECT's reply, where a QRESYNC
	// client is still merging its cache with VANISHED (EARLIER) and the
	// EXISTS it was given (imaptest miscounted otherwise).
	if v == nil || sess.cmd == "SELECT" || sess.cmd == "EXAMINE" {
		return nil
	}
	st := sess.srv.cfg.Store
	view := st.View()
	defer view.Close()
	m, ok, err := view.MailboxByID(v.id)
	if err != nil {
		return err
	}
	if !ok {
		sess.w.raw("* BYE Mailbox has been deleted\r\n")
		sess.closing = true
		return errClose
	}
	if m.HighestModSeq == v.modseq && v.told == v.modseq {
		sess.announceKeywords(m.Keywords)
		return sess.refreshContexts(view, m)
	}
	var gone []uint32
	var changed []uint32 // live messages changed after v.modseq
	var firstGone uint64 // modseq of the first expunge in gone
	last := uint32(0)
	if len(v.uids) > 0 {
		last = v.uids[len(v.uids)-1]
	}
	if err := view.Changes(v.id, min(v.modseq, v.told), func(c mailstore.Change) bool {
		switch {
		case c.Expunged && c.ModSeq > v.told && v.seq(c.UID) != 0:
			gone = append(gone, c.UID)
			if firstGone == 0 {
				firstGone = c.ModSeq
			}
		case !c.Expunged && c.ModSeq > v.modseq:
			changed = append(changed, c.UID)
		}
		return true
	}); err != nil {
		return err
	}
	w := sess.w
	told := allowExpunge || len(gone) == 0
	if told {
		slices.Sort(gone)
		sess.announceExpunged(gone)
		v.told = m.HighestModSeq
		if err := v.pin.Advance(v.told); err != nil {
			return err
		}
	}
	sess.announceKeywords(m.Keywords)
	slices.Sort(changed)
	var added []uint32
	var flagged []uint32
	for _, u := range changed {
		if u > last {
			added = append(added, u)
		} else if v.seq(u) != 0 {
			flagged = append(flagged, u)
		}
	}
	if err := view.Find(v.id, flagged, func(msg *mailstore.Message, _ bool) bool {
		w.raw("* ").num(uint64(v.seq(msg.UID))).raw(" FETCH (UID ").num(uint64(msg.UID)).raw(" FLAGS ")
		sess.writeMessageFlags(msg.UID, msg.Flags)
		if sess.condstore {
			w.raw(" MODSEQ (").num(msg.ModSeq).raw(")")
		}
		w.raw(")\r\n")
		return true
	}); err != nil {
		return err
	}
	if len(added) > 0 {
		v.uids = append(v.uids, added...)
		if err := sess.takeRecent(v, view, added); err != nil {
			return err
		}
		w.raw("* ").num(uint64(len(v.uids))).raw(" EXISTS\r\n")
		if !sess.rev2 {
			w.raw("* ").num(uint64(len(v.recent))).raw(" RECENT\r\n")
		}
	}
	if sess.qresync && len(gone) > 0 {
		sess.noteHighestModSeq(told, firstGone, m.HighestModSeq)
	}
	v.modseq = m.HighestModSeq
	return sess.refreshContexts(view, m)
}

// enableCondstore turns CONDSTORE on for a command that uses it (RFC 7162
// 3.1); the first such command on a selected mailbox is told the
// HIGHESTMODSEQ its later MODSEQ items count from.
func (sess *session) enableCondstore() {
	if sess.condstore {
		return
	}
	sess.condstore = true
	if v := sess.sel; v != nil {
		sess.w.raw("* OK [HIGHESTMODSEQ ").num(v.modseq).raw("] Ok\r\n")
	}
}

// resolve turns a sequence or UID set into the UIDs in view, ascending.
// "*" is the last message; a set naming none gives none.
func (v *selected) resolve(set string, uid bool) ([]uint32, error) {
	return v.resolveSet(set, uid, false)
}

// resolveSet is resolve; with lenient, sequence numbers past the last
// message name none instead of being an error, as SEARCH takes them
// (Dovecot and Cyrus do; imaptest's ESEARCH tests expect it).
func (v *selected) resolveSet(set string, uid, lenient bool) ([]uint32, error) {
	if set == "$" {
		return v.savedResult(), nil
	}
	var out []uint32
	if len(v.uids) == 0 {
		if !uid && !lenient && set != "" && !strings.Contains(set, "*") {
			return nil, bad("Invalid sequence number: mailbox is empty")
		}
		return nil, nil
	}
	for _, part := range strings.Split(set, ",") {
		lo, hi, ok := parseRange(part, v, uid)
		if !ok {
			return nil, badf("Invalid sequence set %q", set)
		}
		if uid {
			i := sort.Search(len(v.uids), func(i int) bool { return v.uids[i] >= lo })
			for ; i < len(v.uids) && v.uids[i] <= hi; i++ {
				out = append(out, v.uids[i])
			}
			continue
		}
		if hi > uint32(len(v.uids)) {
			if !lenient {
				return nil, badf("Invalid sequence number %d", hi)
			}
			hi = uint32(len(v.uids))
		}
		if lo <= hi {
			out = append(out, v.uids[lo-1:hi]...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// parseRange parses "n", "n:m" or with "*"; the result is ordered.
func parseRange(s string, v *selected, uid bool) (uint32, uint32, bool) {
	num := func(t string) (uint32, bool) {
		if t == "*" {
			if uid {
				return v.uids[len(v.uids)-1], true
			}
			return uint32(len(v.uids)), true
		}
		var n uint64
		if t == "" || len(t) > 10 {
			return 0, false
		}
		for _, c := range []byte(t) {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + uint64(c-'0')
		}
		if n == 0 || n > uint64(^uint32(0)) {
			return 0, false
		}
		return uint32(n), true
	}
	a, b, isRange := strings.Cut(s, ":")
	lo, ok := num(a)
	if !ok {
		return 0, 0, false
	}
	hi := lo
	if isRange {
		if hi, ok = num(b); !ok {
			return 0, 0, false
		}
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi, true
}

// uidSetString formats UIDs compactly ("1:3,7").
func uidSetString(uids []uint32) string {
	var s imap.UIDSet
	for _, u := range uids {
		s.AddNum(imap.UID(u))
	}
	return s.String()
}

func cmdClose(sess *session, _ string, _ bool) (string, error) {
	if err := sess.r.end(); err != nil {
		return "", err
	}
	v := sess.sel
	if sess.cmd == "CLOSE" && !v.readOnly && v.rights&rExpunge != 0 {
		if _, err := sess.expungeDeleted(nil, true); err != nil {
			return "", err
		}
	}
	sess.unselect()
	return "", nil
}

func cmdExpunge(sess *session, _ string, uid bool) (string, error) {
	r := sess.r
	var set []uint32
	if uid {
		r.sp()
		text := r.seqSetText()
		if err := r.end(); err != nil {
			return "", err
		}
		var err error
		if set, err = sess.sel.resolve(text, true); err != nil {
			return "", err
		}
		if len(set) == 0 {
			return "", nil
		}
	} else if err := r.end(); err != nil {
		return "", err
	}
	if sess.sel.readOnly {
		return "", no("Mailbox is read-only")
	}
	if err := need(sess.sel.rights, rExpunge); err != nil {
		return "", err
	}
	if _, err := sess.expungeDeleted(set, false); err != nil || !sess.qresync {
		return "", err
	}
	return sess.highestModSeqCode()
}

// expungeDeleted removes the \Deleted messages in view (only those in
// only, if given) and announces them unless silent.
func (sess *session) expungeDeleted(only []uint32, silent bool) ([]uint32, error) {
	v := sess.sel
	st := sess.srv.cfg.Store
	var victims []uint32
	if err := st.Messages(v.id, 1, ^uint32(0), func(msg *mailstore.Message) bool {
		if slices.Contains(msg.Flags, `\Deleted`) && v.seq(msg.UID) != 0 {
			if only == nil || slices.Contains(only, msg.UID) {
				victims = append(victims, msg.UID)
			}
		}
		return true
	}); err != nil {
		return nil, err
	}
	if len(victims) == 0 {
		return nil, nil
	}
	done, err := st.Expunge(v.id, victims)
	if err != nil {
		return nil, err
	}
	if !silent {
		sess.announceExpunged(done)
	}
	return done, nil
}

// announceExpunged sends EXPUNGE for uids (ascending) and drops them from
// the view.
func (sess *session) announceExpunged(uids []uint32) {
	if sess.qresync {
		sess.announceVanished(uids)
		return
	}
	v := sess.sel
	sess.contextsExpunged(uids)
	for i := len(uids) - 1; i >= 0; i-- {
		seq := v.seq(uids[i])
		if seq == 0 {
			continue
		}
		sess.w.raw("* ").num(uint64(seq)).raw(" EXPUNGE\r\n")
		v.uids = slices.Delete(v.uids, int(seq-1), int(seq))
		if j, ok := slices.BinarySearch(v.recent, uids[i]); ok {
			v.recent = slices.Delete(v.recent, j, j+1)
		}
	}
}
