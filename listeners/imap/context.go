package imap

import (
	"fmt"
	"slices"

	"github.com/rookery/rookery/store/mailstore"
)

// CONTEXT=SEARCH (RFC 5267 4): SEARCH RETURN (UPDATE) keeps a result
// current. After each command the session re-evaluates the messages that
// changed since the result was last brought up to date and tells the
// client what joined it (ADDTO) and what left it (REMOVEFROM); messages
// leave it as their expunge is announced, before the EXPUNGE. The result
// is a UID list in mailbox order, so a position is an index in it.

// maxContexts bounds the results a session keeps updated: each costs
// a re-evaluation of every changed message after every command.
const maxContexts = 8

// contextSearch is one SEARCH or SORT kept updated.
type contextSearch struct {
	tag    string
	uid    bool // UID SEARCH: results are told as UIDs
	c      criteria
	names  map[string]bool // the header fields c needs
	uids   []uint32        // a SEARCH's result, ascending
	modseq uint64          // changes up to here are in the result
	// A SORT's (CONTEXT=SORT): its criteria and its result in sort
	// order, each hit with its keys, which no flag change moves: a
	// message's position changes only as others come and go.
	sorted   bool
	sortKeys []sortKey
	hits     []hit
}

// keepUpdated registers a SEARCH RETURN (UPDATE) with its result.
func (sess *session) keepUpdated(tag string, uid bool, c *criteria, hits []hit) error {
	v := sess.sel
	if len(v.contexts) >= maxContexts {
		return noCode(fmt.Sprintf("NOUPDATE %q", tag), fmt.Sprintf("Already %d searches kept updated", maxContexts))
	}
	ctx := &contextSearch{tag: tag, uid: uid, c: *c, names: map[string]bool{}, modseq: v.modseq}
	headerNames(c, ctx.names)
	for _, h := range hits {
		ctx.uids = append(ctx.uids, h.uid)
	}
	slices.Sort(ctx.uids)
	v.contexts = append(slices.DeleteFunc(v.contexts, func(o *contextSearch) bool { return o.tag == tag }), ctx)
	return nil
}

// keepSorted registers a SORT RETURN (UPDATE) with its result, in sort
// order.
func (sess *session) keepSorted(tag string, uid bool, c *criteria, keys []sortKey, hits []hit) error {
	v := sess.sel
	if len(v.contexts) >= maxContexts {
		return noCode(fmt.Sprintf("NOUPDATE %q", tag), fmt.Sprintf("Already %d searches kept updated", maxContexts))
	}
	ctx := &contextSearch{tag: tag, uid: uid, c: *c, names: map[string]bool{}, modseq: v.modseq,
		sorted: true, sortKeys: keys, hits: slices.Clone(hits)}
	headerNames(c, ctx.names)
	if needsKeys(keys) {
		for k := range keyFields {
			ctx.names[k] = true
		}
	}
	v.contexts = append(slices.DeleteFunc(v.contexts, func(o *contextSearch) bool { return o.tag == tag }), ctx)
	return nil
}

// sortedPos is where h belongs in ctx's sorted result, and whether that
// message is there.
func (ctx *contextSearch) sortedPos(h *hit) (int, bool) {
	i, _ := slices.BinarySearchFunc(ctx.hits, h, func(a hit, b *hit) int { return cmpSorted(&a, b, ctx.sortKeys) })
	return i, i < len(ctx.hits) && ctx.hits[i].uid == h.uid
}

// cmpSorted is compareHits with the UID breaking ties, as the sequence
// number does: it keeps its order while sequence numbers shift.
func cmpSorted(a, b *hit, keys []sortKey) int {
	x, y := *a, *b
	x.seq, y.seq = a.uid, b.uid
	return compareHits(&x, &y, keys)
}

// cmdCancelUpdate handles CANCELUPDATE (RFC 5267 4.3).
func cmdCancelUpdate(sess *session, _ string, _ bool) (string, error) {
	r := sess.r
	var tags []string
	for r.err == nil && r.maybeSP() {
		tags = append(tags, r.astring())
	}
	if err := r.end(); err != nil {
		return "", err
	}
	if len(tags) == 0 {
		return "", bad("CANCELUPDATE needs a tag")
	}
	v := sess.sel
	for _, tag := range tags {
		i := slices.IndexFunc(v.contexts, func(c *contextSearch) bool { return c.tag == tag })
		if i < 0 {
			return "", badf("No search %q is kept updated", tag)
		}
		v.contexts = slices.Delete(v.contexts, i, i+1)
	}
	return "", nil
}

// refreshContexts brings the kept results up to date with the messages
// changed since, all of which the client knows by now (update announced
// new ones first).
func (sess *session) refreshContexts(view *mailstore.View, m mailstore.Mailbox) error {
	v := sess.sel
	from := m.HighestModSeq
	for _, ctx := range v.contexts {
		from = min(from, ctx.modseq)
	}
	if from >= m.HighestModSeq {
		return nil
	}
	var changed []uint32
	if err := view.Changes(v.id, from, func(c mailstore.Change) bool {
		if !c.Expunged && v.seq(c.UID) != 0 {
			changed = append(changed, c.UID)
		}
		return true
	}); err != nil {
		return err
	}
	slices.Sort(changed)
	changed = slices.Compact(changed)
	for _, ctx := range v.contexts {
		if ctx.sorted {
			if err := sess.refreshSorted(ctx, view, changed); err != nil {
				return err
			}
			ctx.modseq = m.HighestModSeq
			continue
		}
		var add, remove []uint32
		var err error
		ferr := view.Find(v.id, changed, func(msg *mailstore.Message, _ bool) bool {
			if msg.ModSeq <= ctx.modseq {
				return true
			}
			ev := evaluator{view: view, m: msg, names: ctx.names}
			var ok bool
			if ok, err = ev.match(&ctx.c, v.seq(msg.UID)); err != nil {
				return false
			}
			_, in := slices.BinarySearch(ctx.uids, msg.UID)
			switch {
			case ok && !in:
				add = append(add, msg.UID)
			case !ok && in:
				remove = append(remove, msg.UID)
			}
			return true
		})
		if ferr != nil {
			return ferr
		}
		if err != nil {
			return err
		}
		sess.removeFrom(ctx, remove)
		sess.addTo(ctx, add)
		ctx.modseq = m.HighestModSeq
	}
	return nil
}

// refreshSorted brings a sorted result up to date with the changed
// messages: REMOVEFROM for those that left it, then ADDTO for those that
// joined, one position and message per pair, in the order applied.
func (sess *session) refreshSorted(ctx *contextSearch, view *mailstore.View, changed []uint32) error {
	v := sess.sel
	cache := &sess.srv.sortKeys
	var removed, added []hit
	var err error
	ferr := view.Find(v.id, changed, func(msg *mailstore.Message, _ bool) bool {
		if msg.ModSeq <= ctx.modseq {
			return true
		}
		seq := v.seq(msg.UID)
		ev := evaluator{view: view, m: msg, names: ctx.names}
		var ok bool
		if ok, err = ev.match(&ctx.c, seq); err != nil {
			return false
		}
		h := hit{seq: seq, uid: msg.UID, modseq: msg.ModSeq, size: msg.Size, arrival: msg.InternalDate.Unix()}
		if needsKeys(ctx.sortKeys) {
			if h.keys = cache.get(v.id, msg.UID); h.keys == nil {
				if h.keys, err = extractKeys(view, msg); err != nil {
					return false
				}
			}
		}
		switch _, in := ctx.sortedPos(&h); {
		case ok && !in:
			added = append(added, h)
		case !ok && in:
			removed = append(removed, h)
		}
		return true
	})
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return err
	}
	sess.sortedChange(ctx, "REMOVEFROM", removed)
	sess.sortedChange(ctx, "ADDTO", added)
	return nil
}

// sortedChange tells, and applies, hits leaving (REMOVEFROM) or joining
// (ADDTO) a sorted result.
func (sess *session) sortedChange(ctx *contextSearch, what string, hits []hit) {
	if len(hits) == 0 {
		return
	}
	w := sess.w
	w.raw("* ESEARCH (TAG ").str(ctx.tag).raw(")")
	if ctx.uid {
		w.raw(" UID")
	}
	w.raw(" ").raw(what).raw(" (")
	for i := range hits {
		h := &hits[i]
		pos, in := ctx.sortedPos(h)
		if what == "ADDTO" {
			ctx.hits = slices.Insert(ctx.hits, pos, *h)
		} else if in {
			ctx.hits = slices.Delete(ctx.hits, pos, pos+1)
		}
		if i > 0 {
			w.raw(" ")
		}
		id := h.uid
		if !ctx.uid {
			id = sess.sel.seq(h.uid)
		}
		w.num(uint64(pos + 1)).raw(" ").num(uint64(id))
	}
	w.raw(")\r\n")
}

// contextsExpunged takes expunged messages out of the kept results; it
// runs before their EXPUNGE (or VANISHED), while their sequence numbers
// still stand.
func (sess *session) contextsExpunged(uids []uint32) {
	for _, ctx := range sess.sel.contexts {
		if ctx.sorted {
			var gone []hit
			for _, h := range ctx.hits {
				if slices.Contains(uids, h.uid) {
					gone = append(gone, h)
				}
			}
			sess.sortedChange(ctx, "REMOVEFROM", gone)
			continue
		}
		var gone []uint32
		for _, u := range uids {
			if _, in := slices.BinarySearch(ctx.uids, u); in {
				gone = append(gone, u)
			}
		}
		slices.Sort(gone)
		sess.removeFrom(ctx, gone)
	}
}

// removeFrom tells, and applies, uids (ascending, all in the result)
// leaving ctx. A SEARCH result is in mailbox order, so the set alone
// says where each message was: one pair, positioned at the first
// (imaptest expects one; RFC 5267 4.3 lets the client place them).
func (sess *session) removeFrom(ctx *contextSearch, uids []uint32) {
	if len(uids) == 0 {
		return
	}
	pos, _ := slices.BinarySearch(ctx.uids, uids[0])
	sess.contextChange(ctx, "REMOVEFROM", pos, uids)
	ctx.uids = slices.DeleteFunc(ctx.uids, func(u uint32) bool {
		_, gone := slices.BinarySearch(uids, u)
		return gone
	})
}

// addTo tells, and applies, uids (ascending, none in the result) joining
// ctx, as removeFrom does.
func (sess *session) addTo(ctx *contextSearch, uids []uint32) {
	if len(uids) == 0 {
		return
	}
	ctx.uids = append(ctx.uids, uids...)
	slices.Sort(ctx.uids)
	pos, _ := slices.BinarySearch(ctx.uids, uids[0])
	sess.contextChange(ctx, "ADDTO", pos, uids)
}

// contextChange writes an ESEARCH telling uids joined or left ctx from
// the 0-based position pos.
func (sess *session) contextChange(ctx *contextSearch, what string, pos int, uids []uint32) {
	w := sess.w
	w.raw("* ESEARCH (TAG ").str(ctx.tag).raw(")")
	if ctx.uid {
		w.raw(" UID")
	}
	w.raw(" ").raw(what).raw(" (").num(uint64(pos + 1)).raw(" ").raw(sess.contextSet(ctx, uids)).raw(")\r\n")
}

// contextSet writes uids as the result's kind of numbers.
func (sess *session) contextSet(ctx *contextSearch, uids []uint32) string {
	if ctx.uid {
		return uidSetString(uids)
	}
	seqs := make([]uint32, len(uids))
	for i, u := range uids {
		seqs[i] = sess.sel.seq(u)
	}
	return uidSetString(seqs)
}
