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
// which it has announced flag changes, the keywords it has announced.
// update brings the view up to date by diffing the store against it.
type selected struct {
	id       uint64
	name     string // internal name when selected (RENAME may change it)
	readOnly bool
	rights   rights
	uids     []uint32
	modseq   uint64
	keywords []string
	// stale is set when expunges could not be announced yet (during a
	// FETCH, STORE or SEARCH by sequence number).
	stale  bool
	watch  <-chan struct{}
	cancel func()
}

// seq returns the sequence number of uid (0 if not in view).
func (v *selected) seq(uid uint32) uint32 {
	i, ok := slices.BinarySearch(v.uids, uid)
	if !ok {
		return 0
	}
	return uint32(i + 1)
}

func (sess *session) unselect() {
	if sess.sel != nil {
		sess.sel.cancel()
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

func cmdSelect(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	examine := sess.cmd == "EXAMINE"
	r.sp()
	_, name := sess.mailboxArg()
	if r.maybeSP() {
		r.list(func() {
			if m := strings.ToUpper(r.atom()); m == "CONDSTORE" {
				sess.condstore = true
			} else if r.err == nil {
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
	v := &selected{id: m.ID, name: m.Name, readOnly: examine, rights: rt, keywords: m.Keywords}
	v.watch, v.cancel = sess.srv.cfg.Store.Watch(m.ID)
	// Re-read after watching, so no change falls between the two.
	m, ok, err := sess.srv.cfg.Store.MailboxByID(m.ID)
	if err != nil || !ok {
		v.cancel()
		if err == nil {
			err = no("Mailbox does not exist")
		}
		return "", err
	}
	list, err := sess.srv.cfg.Store.UIDs(m)
	if err != nil {
		v.cancel()
		return "", err
	}
	// The store shares the list; the session changes its own copy.
	v.uids = slices.Clone(list.UIDs)
	firstUnseen := list.FirstUnseen
	v.modseq = m.HighestModSeq
	v.keywords = m.Keywords
	sess.sel = v
	w := sess.w
	sess.writeFlags(v.keywords)
	w.raw("* ").num(uint64(len(v.uids))).raw(" EXISTS\r\n* 0 RECENT\r\n")
	if firstUnseen > 0 {
		w.raw("* OK [UNSEEN ").num(uint64(firstUnseen)).raw("] Ok\r\n")
	}
	w.raw("* OK [UIDVALIDITY ").num(uint64(m.UIDValidity)).raw("] Ok\r\n")
	w.raw("* OK [UIDNEXT ").num(uint64(m.UIDNext)).raw("] Ok\r\n")
	w.raw("* OK [HIGHESTMODSEQ ").num(m.HighestModSeq).raw("] Ok\r\n")
	w.raw("* OK [MYRIGHTS \"").raw(rt.String()).raw("\"] Ok\r\n")
	if examine {
		return "READ-ONLY", nil
	}
	return "READ-WRITE", nil
}

// update tells the client what changed in the selected mailbox since it
// was last told: expunges (when allowed), new messages, flag changes.
func (sess *session) update(allowExpunge bool) error {
	v := sess.sel
	if v == nil {
		return nil
	}
	st := sess.srv.cfg.Store
	m, ok, err := st.MailboxByID(v.id)
	if err != nil {
		return err
	}
	if !ok {
		sess.w.raw("* BYE Mailbox has been deleted\r\n")
		sess.closing = true
		return errClose
	}
	if m.HighestModSeq == v.modseq && !(v.stale && allowExpunge) {
		return nil
	}
	type cur struct {
		uid    uint32
		modseq uint64
		flags  []string
	}
	var now []cur
	if err := st.Messages(v.id, 1, ^uint32(0), func(msg *mailstore.Message) bool {
		now = append(now, cur{msg.UID, msg.ModSeq, msg.Flags})
		return true
	}); err != nil {
		return err
	}
	w := sess.w
	// Expunges, highest sequence number first so each number is valid as
	// sent.
	present := make(map[uint32]struct{}, len(now))
	for _, c := range now {
		present[c.uid] = struct{}{}
	}
	v.stale = false
	for i := len(v.uids) - 1; i >= 0; i-- {
		if _, ok := present[v.uids[i]]; ok {
			continue
		}
		if !allowExpunge {
			v.stale = true
			break
		}
		w.raw("* ").num(uint64(i + 1)).raw(" EXPUNGE\r\n")
		v.uids = append(v.uids[:i], v.uids[i+1:]...)
	}
	if kw := m.Keywords; len(kw) != len(v.keywords) {
		v.keywords = kw
		sess.writeFlags(kw)
	}
	// Flag changes of messages in view.
	last := uint32(0)
	if len(v.uids) > 0 {
		last = v.uids[len(v.uids)-1]
	}
	for _, c := range now {
		if c.uid > last || c.modseq <= v.modseq {
			continue
		}
		seq := v.seq(c.uid)
		if seq == 0 {
			continue
		}
		w.raw("* ").num(uint64(seq)).raw(" FETCH (UID ").num(uint64(c.uid)).raw(" FLAGS ")
		fmtFlags(w, c.flags)
		if sess.condstore {
			w.raw(" MODSEQ (").num(c.modseq).raw(")")
		}
		w.raw(")\r\n")
	}
	// New messages.
	added := false
	for _, c := range now {
		if c.uid > last {
			v.uids = append(v.uids, c.uid)
			added = true
		}
	}
	if added {
		w.raw("* ").num(uint64(len(v.uids))).raw(" EXISTS\r\n")
	}
	v.modseq = m.HighestModSeq
	return nil
}

// resolve turns a sequence or UID set into the UIDs in view, ascending.
// "*" is the last message; a set naming none gives none.
func (v *selected) resolve(set string, uid bool) ([]uint32, error) {
	var out []uint32
	if len(v.uids) == 0 {
		if !uid && set != "" && !strings.Contains(set, "*") {
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
			return nil, badf("Invalid sequence number %d", hi)
		}
		out = append(out, v.uids[lo-1:hi]...)
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
	_, err := sess.expungeDeleted(set, false)
	return "", err
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
	v := sess.sel
	for i := len(uids) - 1; i >= 0; i-- {
		seq := v.seq(uids[i])
		if seq == 0 {
			continue
		}
		sess.w.raw("* ").num(uint64(seq)).raw(" EXPUNGE\r\n")
		v.uids = slices.Delete(v.uids, int(seq-1), int(seq))
	}
}
