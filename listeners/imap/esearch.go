package imap

import (
	"slices"
	"strconv"
	"strings"
)

// returnOpts are SEARCH's and SORT's RETURN options: ESEARCH (RFC 4731),
// SEARCHRES's SAVE (RFC 5182) and CONTEXT's PARTIAL and UPDATE (RFC 5267).
type returnOpts struct {
	min, max, all, count, save bool
	partial, update            bool
	from, to                   uint32 // PARTIAL's positions, 1-based, from <= to
}

// returnOptions reads "RETURN (...) " when it comes next, nil otherwise.
func (r *reader) returnOptions() *returnOpts {
	if r.err != nil || !hasPrefixFold(string(r.line[r.pos:min(len(r.line), r.pos+7)]), "RETURN ") {
		return nil
	}
	r.atom()
	r.sp()
	o := &returnOpts{}
	r.list(func() {
		name := strings.ToUpper(r.atom())
		switch name {
		case "MIN":
			o.min = true
		case "MAX":
			o.max = true
		case "ALL":
			o.all = true
		case "COUNT":
			o.count = true
		case "SAVE":
			o.save = true
		case "UPDATE":
			o.update = true
		case "PARTIAL":
			r.sp()
			a := r.number(true)
			r.expect(':')
			b := r.number(true)
			if a > b {
				a, b = b, a
			}
			if b > uint64(^uint32(0)) && r.err == nil {
				r.fail(bad("PARTIAL range out of bounds"))
			}
			o.partial, o.from, o.to = true, uint32(a), uint32(b)
		default:
			if r.err == nil {
				r.fail(badf("Unknown RETURN option %s", name))
			}
		}
	})
	if o.partial && o.all && r.err == nil {
		r.fail(bad("RETURN PARTIAL and ALL exclude each other"))
	}
	// RFC 4731: an empty list means ALL.
	if !o.min && !o.max && !o.all && !o.count && !o.save && !o.partial && !o.update {
		o.all = true
	}
	r.sp()
	return o
}

// searchFailed forgets the saved result when a SEARCH or SORT that would
// have saved one fails (RFC 5182: "$" then refers to no message).
func (sess *session) searchFailed(o *returnOpts) {
	if o != nil && o.save && sess.sel != nil {
		sess.sel.saved = nil
	}
}

// esearch answers a SEARCH or SORT with RETURN options: it saves the
// result if asked and writes an ESEARCH response. hits are in result
// order: mailbox order, or sort order.
func (sess *session) esearch(tag string, uid bool, o *returnOpts, hits []hit, modseq bool) {
	// MIN and MAX are the first and last in result order: the lowest and
	// highest after a SEARCH, the first and last in sort order after a
	// SORT (RFC 5267 4.1).
	first, last := -1, len(hits)-1
	if len(hits) > 0 {
		first = 0
	}
	if o.save {
		// RFC 5182: with only MIN and/or MAX, only those are saved.
		var saved []uint32
		if (o.min || o.max) && !o.all && !o.count && !o.partial {
			if o.min && first >= 0 {
				saved = append(saved, hits[first].uid)
			}
			if o.max && last >= 0 && last != first {
				saved = append(saved, hits[last].uid)
			}
		} else {
			saved = make([]uint32, len(hits))
			for i := range hits {
				saved[i] = hits[i].uid
			}
		}
		sess.sel.setSaved(saved)
		if !o.min && !o.max && !o.all && !o.count && !o.partial && !o.update {
			return
		}
	}
	w := sess.w
	w.raw(`* ESEARCH (TAG `).str(tag).raw(")")
	if uid {
		w.raw(" UID")
	}
	var highest uint64
	if first >= 0 {
		if o.min {
			w.raw(" MIN ").num(uint64(hits[first].id(uid)))
			highest = max(highest, hits[first].modseq)
		}
		if o.max {
			w.raw(" MAX ").num(uint64(hits[last].id(uid)))
			highest = max(highest, hits[last].modseq)
		}
		if o.all {
			w.raw(" ALL ").raw(orderedSet(hits, uid))
		}
	}
	if o.count {
		w.raw(" COUNT ").num(uint64(len(hits)))
	}
	if o.partial {
		w.raw(" PARTIAL (").num(uint64(o.from)).raw(":").num(uint64(o.to)).raw(" ")
		lo, hi := int(o.from)-1, min(int(o.to), len(hits))
		if lo < hi {
			w.raw(orderedSet(hits[lo:hi], uid))
		} else {
			w.raw("NIL")
		}
		w.raw(")")
	}
	// RFC 4731 3.2: MODSEQ is the highest of the messages returned, of all
	// matched ones when ALL, COUNT or PARTIAL stand for them all.
	if modseq && first >= 0 {
		if o.all || o.count || o.partial {
			for i := range hits {
				highest = max(highest, hits[i].modseq)
			}
		}
		w.raw(" MODSEQ ").num(highest)
	}
	w.raw("\r\n")
}

// orderedSet writes message numbers as a sequence set that keeps their
// order (RFC 5267: a sorted result): only ascending runs are collapsed.
func orderedSet(hits []hit, uid bool) string {
	var b []byte
	for i := 0; i < len(hits); {
		j := i
		for j+1 < len(hits) && hits[j+1].id(uid) == hits[j].id(uid)+1 {
			j++
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(hits[i].id(uid)), 10)
		if j > i {
			b = append(b, ':')
			b = strconv.AppendUint(b, uint64(hits[j].id(uid)), 10)
		}
		i = j + 1
	}
	return string(b)
}

// setSaved keeps a SEARCH or SORT result as "$" (RFC 5182).
func (v *selected) setSaved(uids []uint32) {
	v.saved = slices.Clone(uids)
	slices.Sort(v.saved)
	v.saved = slices.Compact(v.saved)
}

// savedResult is "$": the saved UIDs still in view.
func (v *selected) savedResult() []uint32 {
	out := make([]uint32, 0, len(v.saved))
	for _, u := range v.saved {
		if v.seq(u) != 0 {
			out = append(out, u)
		}
	}
	return out
}
