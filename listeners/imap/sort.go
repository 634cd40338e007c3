package imap

import (
	"cmp"
	"slices"
	"strings"

	"github.com/rookery/rookery/store/mailstore"
)

// match runs c over the selected mailbox in one view and returns the
// messages it matches in mailbox order; with keys, each with its sort
// keys, read from the header only for messages the cache lacks; with
// record, each with its size, internal date and modseq. A search of ALL
// that needs no record, and whose keys are all cached, reads nothing from
// the store.
func (sess *session) match(c *criteria, keys, record bool) ([]hit, error) {
	v := sess.sel
	if !c.restricted && !record {
		var ks []*msgKeys
		ok := true
		if keys {
			ks, ok = sess.srv.sortKeys.all(v.id, v.uids)
		}
		if ok {
			hits := make([]hit, len(v.uids))
			for i, u := range v.uids {
				hits[i] = hit{seq: uint32(i + 1), uid: u}
				if keys {
					hits[i].keys = ks[i]
				}
			}
			return hits, nil
		}
	}
	names := map[string]bool{}
	headerNames(c, names)
	// One view: the records and the bodies read agree, and messages
	// expunged elsewhere that the client has not been told of are still
	// matched (they keep their sequence numbers until then).
	view := sess.srv.cfg.Store.View()
	defer view.Close()
	cache := &sess.srv.sortKeys
	// Room for every message: SORT and THREAD usually match them all,
	// and growing the slice would copy it a dozen times.
	hits := make([]hit, 0, len(v.uids))
	var added map[uint32]*msgKeys
	var err error
	// Messages whose keys are not cached are read together after the
	// walk (extractAllKeys), not one by one inside it.
	var missing []*mailstore.Message
	var missingAt []int
	next := 0 // Find visits v.uids in order: the sequence number follows
	serr := view.Find(v.id, v.uids, func(m *mailstore.Message, _ bool) bool {
		for next < len(v.uids) && v.uids[next] < m.UID {
			next++
		}
		if next == len(v.uids) || v.uids[next] != m.UID {
			return true
		}
		seq := uint32(next + 1)
		ev := evaluator{view: view, m: m, names: names}
		var ok bool
		if ok, err = ev.match(c, seq); err != nil || !ok {
			return err == nil
		}
		h := hit{seq: seq, uid: m.UID, modseq: m.ModSeq, size: m.Size, arrival: m.InternalDate.Unix()}
		if keys {
			if h.keys = cache.get(v.id, m.UID); h.keys == nil {
				cp := *m // Find reuses m
				missing, missingAt = append(missing, &cp), append(missingAt, len(hits))
			}
		}
		hits = append(hits, h)
		return true
	})
	if serr != nil {
		return nil, serr
	}
	if err != nil {
		return nil, err
	}
	if len(missing) > 0 {
		found, err := extractAllKeys(view, missing)
		if err != nil {
			return nil, err
		}
		added = make(map[uint32]*msgKeys, len(found))
		for i, k := range found {
			hits[missingAt[i]].keys = k
			added[missing[i].UID] = k
		}
	}
	if keys {
		cache.put(v.id, added, func(uid uint32) bool { return v.seq(uid) != 0 }, len(v.uids))
	}
	return hits, nil
}

// sortKey is one SORT criterion (RFC 5256, RFC 5957).
type sortKey struct {
	by      sortBy
	reverse bool
}

type sortBy int

const (
	byArrival sortBy = iota
	byCc
	byDate
	byFrom
	bySize
	bySubject
	byTo
	byDisplayFrom
	byDisplayTo
)

var sortKeyNames = map[string]sortBy{
	"ARRIVAL": byArrival, "CC": byCc, "DATE": byDate, "FROM": byFrom, "SIZE": bySize,
	"SUBJECT": bySubject, "TO": byTo, "DISPLAYFROM": byDisplayFrom, "DISPLAYTO": byDisplayTo,
}

// sortCriteria reads "(" sort-criterion *(SP sort-criterion) ")".
func (r *reader) sortCriteria() []sortKey {
	var keys []sortKey
	r.list(func() {
		name := strings.ToUpper(r.atom())
		rev := name == "REVERSE"
		if rev {
			r.sp()
			name = strings.ToUpper(r.atom())
		}
		by, ok := sortKeyNames[name]
		if !ok && r.err == nil {
			r.fail(badf("Invalid sort criterion %s", name))
		}
		keys = append(keys, sortKey{by: by, reverse: rev})
	})
	if len(keys) == 0 && r.err == nil {
		r.fail(bad("Empty sort criteria"))
	}
	return keys
}

// charset reads a SORT or THREAD charset: the search strings are
// compared as UTF-8, which US-ASCII is part of.
func (r *reader) charset() {
	cs := strings.ToUpper(r.astring())
	if cs != "US-ASCII" && cs != "UTF-8" && r.err == nil {
		r.fail(noCode("BADCHARSET (US-ASCII UTF-8)", "Unsupported charset"))
	}
}

// needsRecord reports whether sorting by keys reads message records
// (ARRIVAL and SIZE are there; the header keys are cached apart).
func needsRecord(keys []sortKey) bool {
	return slices.ContainsFunc(keys, func(k sortKey) bool { return k.by == byArrival || k.by == bySize })
}

// needsKeys reports whether sorting by keys reads message headers
// (ARRIVAL and SIZE are in the message record).
func needsKeys(keys []sortKey) bool {
	for _, k := range keys {
		if k.by != byArrival && k.by != bySize {
			return true
		}
	}
	return false
}

func compareHits(a, b *hit, keys []sortKey) int {
	for _, k := range keys {
		var c int
		switch k.by {
		case byArrival:
			c = cmp.Compare(a.arrival, b.arrival)
		case bySize:
			c = cmp.Compare(a.size, b.size)
		case byDate:
			c = cmp.Compare(a.keys.sent, b.keys.sent)
		case bySubject:
			c = strings.Compare(a.keys.subject, b.keys.subject)
		case byFrom:
			c = strings.Compare(a.keys.from, b.keys.from)
		case byTo:
			c = strings.Compare(a.keys.to, b.keys.to)
		case byCc:
			c = strings.Compare(a.keys.cc, b.keys.cc)
		case byDisplayFrom:
			c = strings.Compare(a.keys.dispFrom, b.keys.dispFrom)
		case byDisplayTo:
			c = strings.Compare(a.keys.dispTo, b.keys.dispTo)
		}
		if k.reverse {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	// RFC 5256: the sequence number breaks ties, never reversed.
	return cmp.Compare(a.seq, b.seq)
}

// cmdSort is SORT and UID SORT (RFC 5256), with ESORT's RETURN
// (RFC 5267).
func cmdSort(sess *session, tag string, uid bool) (string, error) {
	r := sess.r
	r.sp()
	ret := r.returnOptions()
	keys := r.sortCriteria()
	r.sp()
	r.charset()
	r.sp()
	var c criteria
	r.searchKeys(&c, sess.sel)
	if err := r.end(); err != nil {
		sess.searchFailed(ret)
		return "", err
	}
	hits, err := sess.match(&c, needsKeys(keys), needsRecord(keys))
	if err != nil {
		sess.searchFailed(ret)
		return "", err
	}
	slices.SortFunc(hits, func(a, b hit) int { return compareHits(&a, &b, keys) })
	if ret != nil && ret.update {
		if err := sess.keepSorted(tag, uid, &c, keys, hits); err != nil {
			return "", err
		}
	}
	if ret != nil {
		sess.esearch(tag, uid, ret, hits, c.ModSeq != nil)
		return "", nil
	}
	w := sess.w
	w.raw("* SORT")
	for i := range hits {
		w.raw(" ").num(uint64(hits[i].id(uid)))
	}
	w.raw("\r\n")
	return "", nil
}

// id is the number a reply gives the message: its UID or its sequence
// number.
func (h *hit) id(uid bool) uint32 {
	if uid {
		return h.uid
	}
	return h.seq
}
