package imap

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/rookery/rookery/store/mailstore"
)

// QRESYNC (RFC 7162 3.2) rests on the store's change index: it keeps every
// expunged UID at the modseq of its expunge, so the UIDs a client missed
// since any modseq are known exactly, and seq-match data is read but not
// needed.

// qresyncArgs is the QRESYNC parameter of SELECT and EXAMINE (RFC 7162
// 3.2.5).
type qresyncArgs struct {
	uidValidity uint32
	modseq      uint64
	known       uidRanges // nil: every UID
}

// qresyncArgs reads "(uidvalidity modseq [known-uids] [(seq-set uid-set)])".
// None of the sets may use "*", and the seq-match sets must pair up
// (RFC 7162 3.2.5).
func (r *reader) qresyncArgs() *qresyncArgs {
	q := &qresyncArgs{}
	r.expect('(')
	uv := r.number(true)
	if uv > math.MaxUint32 {
		r.syntax("UIDVALIDITY out of range")
	}
	q.uidValidity = uint32(uv)
	r.sp()
	if q.modseq = r.number(true); q.modseq > math.MaxInt64 {
		r.syntax("mod-sequence out of range")
	}
	more := r.maybeSP()
	if more && r.peek() != '(' {
		q.known = r.knownUIDs()
		more = r.maybeSP()
	}
	if more {
		// seq-match data helps servers that forget expunges; the change
		// index does not, so it is only checked.
		r.expect('(')
		seqs := r.knownUIDs()
		r.sp()
		uids := r.knownUIDs()
		r.expect(')')
		if r.err == nil && seqs.count() != uids.count() {
			r.fail(bad("QRESYNC sequence match data pairs unequal sets"))
		}
	}
	r.expect(')')
	return q
}

// knownUIDs reads a set the client builds from what it knows, which
// cannot hold "*" (RFC 7162 3.2.5).
func (r *reader) knownUIDs() uidRanges {
	start := r.pos
	s := r.uidRanges()
	if r.err == nil && strings.Contains(string(r.line[start:r.pos]), "*") {
		r.fail(bad(`QRESYNC sets cannot use "*"`))
	}
	return s
}

// uidRanges is a set of UIDs as ranges, "*" standing for the largest.
type uidRanges [][2]uint32

// count is how many UIDs s names, each range once.
func (s uidRanges) count() uint64 {
	var n uint64
	for _, rg := range s {
		n += uint64(rg[1]-rg[0]) + 1
	}
	return n
}

func (s uidRanges) contains(uid uint32) bool {
	for _, rg := range s {
		if uid >= rg[0] && uid <= rg[1] {
			return true
		}
	}
	return false
}

// uidRanges reads a sequence set of UIDs without resolving it against the
// view: it may name UIDs the view no longer has.
func (r *reader) uidRanges() uidRanges {
	text := r.seqSetText()
	if r.err != nil {
		return nil
	}
	s, ok := parseUIDRanges(text)
	if !ok {
		r.fail(badf("Invalid UID set %q", text))
	}
	return s
}

func parseUIDRanges(text string) (uidRanges, bool) {
	var s uidRanges
	// "*" as the top of every UID: a set reaching past the largest UID in
	// use names no more messages for it.
	top := &selected{uids: []uint32{math.MaxUint32}}
	for _, part := range strings.Split(text, ",") {
		lo, hi, ok := parseRange(part, top, true)
		if !ok {
			return nil, false
		}
		s = append(s, [2]uint32{lo, hi})
	}
	return s, true
}

// resync answers SELECT's QRESYNC parameter (RFC 7162 3.2.5.1) once the
// usual responses are out: the known UIDs expunged since q.modseq as
// VANISHED (EARLIER), then the flags of known messages changed since as
// FETCH; messages new to the client it learns from EXISTS and UIDNEXT.
// Nothing is sent if the mailbox's UIDVALIDITY changed. The cost follows
// the changes since q.modseq.
func (sess *session) resync(view *mailstore.View, m mailstore.Mailbox, q *qresyncArgs) error {
	v := sess.sel
	if q.uidValidity != m.UIDValidity || q.modseq >= m.HighestModSeq {
		return nil
	}
	var vanished, changed []uint32
	if err := view.Changes(v.id, q.modseq, func(c mailstore.Change) bool {
		switch {
		case q.known != nil && !q.known.contains(c.UID):
		case c.Expunged:
			vanished = append(vanished, c.UID)
		case v.seq(c.UID) != 0:
			changed = append(changed, c.UID)
		}
		return true
	}); err != nil {
		return err
	}
	slices.Sort(vanished)
	sess.writeVanished(vanished, true)
	slices.Sort(changed)
	w := sess.w
	return view.Find(v.id, changed, func(msg *mailstore.Message, _ bool) bool {
		w.raw("* ").num(uint64(v.seq(msg.UID))).raw(" FETCH (UID ").num(uint64(msg.UID)).raw(" FLAGS ")
		sess.writeMessageFlags(msg.UID, msg.Flags)
		w.raw(" MODSEQ (").num(msg.ModSeq).raw("))\r\n")
		return true
	})
}

// vanishedSince answers UID FETCH's VANISHED modifier (RFC 7162 3.2.6):
// the UIDs of set expunged after since, as VANISHED (EARLIER). UIDs still
// in the session's view are left out: the client has not been told they
// are gone, and will be by VANISHED.
func (sess *session) vanishedSince(view *mailstore.View, set string, since uint64) error {
	v := sess.sel
	var in uidRanges
	if set == "$" {
		// The result as saved, expunged UIDs included: those are the
		// ones to tell of (RFC 5182 with RFC 7162 3.2.6).
		for _, u := range v.saved {
			in = append(in, [2]uint32{u, u})
		}
	} else if s, ok := parseUIDRanges(set); ok {
		in = s
	} else {
		return badf("Invalid UID set %q", set)
	}
	var gone []uint32
	if err := view.Changes(v.id, since, func(c mailstore.Change) bool {
		if c.Expunged && in.contains(c.UID) && v.seq(c.UID) == 0 {
			gone = append(gone, c.UID)
		}
		return true
	}); err != nil {
		return err
	}
	slices.Sort(gone)
	sess.writeVanished(gone, true)
	return nil
}

// announceVanished is announceExpunged once QRESYNC is on: one VANISHED
// for the uids in view instead of an EXPUNGE each (RFC 7162 3.2.10).
func (sess *session) announceVanished(uids []uint32) {
	v := sess.sel
	sess.contextsExpunged(uids)
	uids = slices.Sorted(slices.Values(uids))
	var gone []uint32
	kept := v.uids[:0]
	j := 0
	for _, u := range v.uids {
		for j < len(uids) && uids[j] < u {
			j++
		}
		if j < len(uids) && uids[j] == u {
			gone = append(gone, u)
			continue
		}
		kept = append(kept, u)
	}
	v.uids = kept
	v.recent = slices.DeleteFunc(v.recent, func(u uint32) bool {
		_, ok := slices.BinarySearch(gone, u)
		return ok
	})
	sess.writeVanished(gone, false)
}

// vanishedPerLine bounds the ranges of one VANISHED line, keeping lines
// near the 8 KiB RFC 7162 4 lets clients expect.
const vanishedPerLine = 500

// writeVanished sends uids (ascending) as VANISHED responses.
func (sess *session) writeVanished(uids []uint32, earlier bool) {
	w := sess.w
	n := 0
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		switch {
		case n == 0 && earlier:
			w.raw("* VANISHED (EARLIER) ")
		case n == 0:
			w.raw("* VANISHED ")
		default:
			w.raw(",")
		}
		w.num(uint64(uids[i]))
		if j > i {
			w.raw(":").num(uint64(uids[j]))
		}
		if n++; n == vanishedPerLine {
			w.raw("\r\n")
			n = 0
		}
		i = j + 1
	}
	if n > 0 {
		w.raw("\r\n")
	}
}

// noteHighestModSeq follows unsolicited VANISHED responses with the modseq
// up to which the client now knows the mailbox, which no FETCH MODSEQ
// tells it for an expunge. Expunges held back (told false, firstGone the
// modseq of the first) cap it below them: FETCH MODSEQ sent meanwhile may
// be higher, and a client resynchronising from there would miss them
// (RFC 7162 3.2).
func (sess *session) noteHighestModSeq(told bool, firstGone, highest uint64) {
	if !told {
		highest = firstGone - 1
	}
	sess.w.raw("* OK [HIGHESTMODSEQ ").num(highest).raw("] Ok\r\n")
}

// highestModSeqCode is the tagged OK's code after EXPUNGE once QRESYNC is
// on (RFC 7162 3.2.7). Read after the expunge and before update tells
// the client the rest, it is never above what the client will know.
func (sess *session) highestModSeqCode() (string, error) {
	m, ok, err := sess.srv.cfg.Store.MailboxByID(sess.sel.id)
	if err != nil || !ok {
		return "", err
	}
	return "HIGHESTMODSEQ " + strconv.FormatUint(m.HighestModSeq, 10), nil
}
