package imap

import (
	"cmp"
	"slices"
	"strings"
)

// tnode is a message, or a dummy standing for a message referred to but
// absent (h nil), in a thread tree.
type tnode struct {
	h        *hit
	parent   *tnode
	children []*tnode
}

// first is the message a node sorts and is named by: itself, or for a
// dummy its first child's (RFC 5256 REFERENCES steps 4 and 5).
func (n *tnode) first() *hit {
	for n.h == nil {
		if len(n.children) == 0 {
			return nil
		}
		n = n.children[0]
	}
	return n.h
}

func (n *tnode) adopt(c *tnode) {
	c.parent = n
	n.children = append(n.children, c)
}

func (n *tnode) unlink() {
	if p := n.parent; p != nil {
		p.children = slices.DeleteFunc(p.children, func(c *tnode) bool { return c == n })
		n.parent = nil
	}
}

// isAncestor reports whether a is b or one of b's ancestors.
func isAncestor(a, b *tnode) bool {
	for ; b != nil; b = b.parent {
		if a == b {
			return true
		}
	}
	return false
}

// cmdThread is THREAD and UID THREAD (RFC 5256).
func cmdThread(sess *session, _ string, uid bool) (string, error) {
	r := sess.r
	r.sp()
	alg := strings.ToUpper(r.atom())
	if alg != "ORDEREDSUBJECT" && alg != "REFERENCES" && r.err == nil {
		r.fail(badf("Unsupported threading algorithm %s", alg))
	}
	r.sp()
	r.charset()
	r.sp()
	var c criteria
	r.searchKeys(&c, sess.sel)
	if err := r.end(); err != nil {
		return "", err
	}
	hits, err := sess.match(&c, true, false)
	if err != nil {
		return "", err
	}
	var roots []*tnode
	if alg == "ORDEREDSUBJECT" {
		roots = orderedSubject(hits)
	} else {
		roots = references(hits)
	}
	w := sess.w
	w.raw("* THREAD")
	if len(roots) > 0 {
		w.raw(" ")
	}
	var b []byte
	for _, n := range roots {
		b = append(b, '(')
		b = appendThread(b, n, true, uid)
		b = append(b, ')')
		if len(b) > 32<<10 {
			w.bytes(b)
			b = b[:0]
		}
	}
	w.bytes(b).raw("\r\n")
	return "", nil
}

// appendThread writes a thread's members without the parentheses around
// it: a chain of only children as "1 2 3", branches as "1 (2)(3)", a
// dummy as its children's threads side by side.
func appendThread(b []byte, n *tnode, first, uid bool) []byte {
	if n.h == nil {
		if len(n.children) == 1 {
			return appendThread(b, n.children[0], first, uid)
		}
		if !first {
			b = append(b, ' ')
		}
		for _, c := range n.children {
			b = append(b, '(')
			b = appendThread(b, c, true, uid)
			b = append(b, ')')
		}
		return b
	}
	if !first {
		b = append(b, ' ')
	}
	b = appendUint(b, n.h.id(uid))
	switch len(n.children) {
	case 0:
	case 1:
		b = appendThread(b, n.children[0], false, uid)
	default:
		b = append(b, ' ')
		for _, c := range n.children {
			b = append(b, '(')
			b = appendThread(b, c, true, uid)
			b = append(b, ')')
		}
	}
	return b
}

func appendUint(b []byte, n uint32) []byte {
	var d [10]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, d[i:]...)
}

// bySent orders messages by sent date, then by sequence number.
func bySent(a, b *hit) int {
	if c := cmp.Compare(a.keys.sent, b.keys.sent); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

func byFirstSent(a, b *tnode) int { return bySent(a.first(), b.first()) }

// orderedSubject threads by base subject (RFC 5256 ORDEREDSUBJECT): the
// messages of one subject, by sent date, hang flat under the first; the
// threads are in order of their first message's sent date.
func orderedSubject(hits []hit) []*tnode {
	sorted := make([]*hit, len(hits))
	for i := range hits {
		sorted[i] = &hits[i]
	}
	slices.SortFunc(sorted, func(a, b *hit) int {
		if c := strings.Compare(a.keys.subject, b.keys.subject); c != 0 {
			return c
		}
		return bySent(a, b)
	})
	var roots []*tnode
	var root *tnode
	for _, h := range sorted {
		if root != nil && root.h.keys.subject == h.keys.subject {
			root.adopt(&tnode{h: h})
			continue
		}
		root = &tnode{h: h}
		roots = append(roots, root)
	}
	slices.SortFunc(roots, byFirstSent)
	return roots
}

// references threads by the References and In-Reply-To fields, then
// gathers threads by base subject (RFC 5256 REFERENCES). hits are in
// mailbox order, which decides which of two messages with one Message-ID
// keeps it.
func references(hits []hit) []*tnode {
	ids := make(map[string]*tnode, len(hits))
	all := make([]*tnode, 0, len(hits))
	// (1) Link messages to their references.
	for i := range hits {
		h := &hits[i]
		var n *tnode
		if id := h.keys.id; id != "" {
			if have := ids[id]; have == nil {
				n = &tnode{h: h}
				ids[id] = n
				all = append(all, n)
			} else if have.h == nil {
				n = have
				n.h = h
			}
		}
		if n == nil {
			// No Message-ID, or a duplicate: a message of its own.
			n = &tnode{h: h}
			all = append(all, n)
		}
		// (A) Each reference is the parent of the next, unless that one
		// has a parent already or the link would close a loop.
		var prev *tnode
		for _, ref := range h.keys.refs {
			rn := ids[ref]
			if rn == nil {
				rn = &tnode{}
				ids[ref] = rn
				all = append(all, rn)
			}
			if prev != nil && rn.parent == nil && !isAncestor(rn, prev) {
				prev.adopt(rn)
			}
			prev = rn
		}
		// (B) The last reference is the message's parent, replacing the
		// parent a truncated References elsewhere may have given it; the
		// old link goes even when the new one would close a loop.
		n.unlink()
		if prev != nil && !isAncestor(n, prev) {
			prev.adopt(n)
		}
	}
	// (2) The root set.
	var roots []*tnode
	for _, n := range all {
		if n.parent == nil {
			roots = append(roots, n)
		}
	}
	// (3) Prune dummies, (4) sort siblings by sent date.
	roots = prune(roots, true)
	sortThreads(roots)
	// (5) Gather threads whose roots share a base subject.
	subjects := map[string]*tnode{}
	for _, n := range roots {
		s := n.first().keys.subject
		if s == "" {
			continue
		}
		have := subjects[s]
		if have == nil || (have.h != nil && (n.h == nil || (have.h.keys.refwd && !n.h.keys.refwd))) {
			subjects[s] = n
		}
	}
	merged := roots[:0]
	for _, n := range roots {
		s := n.first().keys.subject
		t := subjects[s]
		if s == "" || t == n {
			merged = append(merged, n)
			continue
		}
		switch {
		case t.h == nil && n.h == nil:
			for _, c := range n.children {
				t.adopt(c)
			}
		case t.h == nil:
			t.adopt(n)
		case n.h.keys.refwd && !t.h.keys.refwd:
			t.adopt(n)
		default:
			// Both real and neither a reply to the other: a dummy
			// holds them, in the table's place.
			d := &tnode{}
			i := slices.Index(merged, t)
			merged[i] = d
			d.adopt(t)
			d.adopt(n)
			subjects[s] = d
		}
	}
	// (6) Sort again, the gathered threads included.
	sortThreads(merged)
	return merged
}

// prune removes dummies without children and puts a dummy's children in
// its place, except at the root where it keeps two or more together.
func prune(nodes []*tnode, root bool) []*tnode {
	var out []*tnode
	for _, n := range nodes {
		n.children = prune(n.children, false)
		if n.h == nil {
			if len(n.children) == 0 {
				continue
			}
			if !root || len(n.children) == 1 {
				for _, c := range n.children {
					c.parent = n.parent
				}
				out = append(out, n.children...)
				continue
			}
		}
		out = append(out, n)
	}
	return out
}

// sortThreads orders siblings at every level by sent date, a dummy by
// its first child's.
func sortThreads(nodes []*tnode) {
	for _, n := range nodes {
		sortThreads(n.children)
	}
	slices.SortStableFunc(nodes, byFirstSent)
}
