package imap

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/rookery/rookery/store/mailstore"
)

type fetchKind int

const (
	fUID fetchKind = iota
	fFlags
	fInternalDate
	fSize
	fEnvelope
	fBody          // BODY (non-extensible structure)
	fBodyStructure // BODYSTRUCTURE
	fSection       // BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT
	fModSeq
)

type fetchItem struct {
	kind fetchKind
	// For fSection: what to send and under which name.
	sec  imap.FetchItemBodySection
	name string // reply name, e.g. "BODY[HEADER]", "RFC822.TEXT"
	// setsSeen: reading it sets \Seen (not PEEK, not RFC822.HEADER)
	setsSeen bool
}

// fetchItems reads a fetch item, macro or parenthesised list.
func (r *reader) fetchItems() []fetchItem {
	var items []fetchItem
	if r.peek() == '(' {
		r.list(func() { items = append(items, r.fetchItem(false)...) })
	} else {
		items = r.fetchItem(true)
	}
	return items
}

func (r *reader) fetchName() string {
	start := r.pos
	for r.pos < len(r.line) {
		c := r.line[r.pos]
		if c == '[' || c == ' ' || c == ')' || c == '<' {
			break
		}
		r.pos++
	}
	if r.pos == start {
		r.syntax("expected a fetch item")
	}
	return strings.ToUpper(string(r.line[start:r.pos]))
}

func (r *reader) fetchItem(macros bool) []fetchItem {
	name := r.fetchName()
	if r.err != nil {
		return nil
	}
	simple := func(k fetchKind) []fetchItem { return []fetchItem{{kind: k}} }
	switch name {
	case "ALL", "FAST", "FULL":
		if !macros {
			r.syntax(name + " is a macro, not an item")
			return nil
		}
		items := []fetchItem{{kind: fFlags}, {kind: fInternalDate}, {kind: fSize}}
		if name != "FAST" {
			items = append(items, fetchItem{kind: fEnvelope})
		}
		if name == "FULL" {
			items = append(items, fetchItem{kind: fBody})
		}
		return items
	case "UID":
		return simple(fUID)
	case "FLAGS":
		return simple(fFlags)
	case "INTERNALDATE":
		return simple(fInternalDate)
	case "RFC822.SIZE":
		return simple(fSize)
	case "ENVELOPE":
		return simple(fEnvelope)
	case "BODYSTRUCTURE":
		return simple(fBodyStructure)
	case "MODSEQ":
		return simple(fModSeq)
	case "RFC822":
		return []fetchItem{{kind: fSection, name: "RFC822", setsSeen: true}}
	case "RFC822.HEADER":
		return []fetchItem{{kind: fSection, name: "RFC822.HEADER", sec: imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}}}
	case "RFC822.TEXT":
		return []fetchItem{{kind: fSection, name: "RFC822.TEXT", setsSeen: true, sec: imap.FetchItemBodySection{Specifier: imap.PartSpecifierText}}}
	case "BODY", "BODY.PEEK":
		if r.peek() != '[' {
			if name == "BODY" {
				return simple(fBody)
			}
			r.syntax("BODY.PEEK needs a section")
			return nil
		}
		it := fetchItem{kind: fSection, setsSeen: name == "BODY"}
		it.sec.Peek = name == "BODY.PEEK"
		text := r.section(&it.sec)
		it.name = "BODY[" + text + "]"
		if r.maybe('<') {
			off := r.number(false)
			r.expect('.')
			n := r.number(true)
			r.expect('>')
			it.sec.Partial = &imap.SectionPartial{Offset: int64(off), Size: int64(n)}
			it.name += "<" + strconv.FormatUint(off, 10) + ">"
		}
		return []fetchItem{it}
	}
	if len(name) > 40 {
		name = name[:40] + "..."
	}
	r.syntax("unknown fetch item " + strconv.Quote(name))
	return nil
}

// section reads "[...]" into sec and returns its canonical text.
func (r *reader) section(sec *imap.FetchItemBodySection) string {
	r.expect('[')
	var text []string
	for r.err == nil && r.peek() >= '0' && r.peek() <= '9' {
		n := r.number(true)
		sec.Part = append(sec.Part, int(n))
		text = append(text, strconv.FormatUint(n, 10))
		if !r.maybe('.') {
			break
		}
	}
	if r.err == nil && r.peek() != ']' {
		start := r.pos
		for r.pos < len(r.line) && (isAlpha(r.line[r.pos]) || r.line[r.pos] == '.') {
			r.pos++
		}
		spec := strings.ToUpper(string(r.line[start:r.pos]))
		switch spec {
		case "HEADER":
			sec.Specifier = imap.PartSpecifierHeader
		case "TEXT":
			sec.Specifier = imap.PartSpecifierText
		case "MIME":
			if len(sec.Part) == 0 {
				r.syntax("MIME needs a part number")
			}
			sec.Specifier = imap.PartSpecifierMIME
		case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
			sec.Specifier = imap.PartSpecifierHeader
			r.sp()
			var names []string
			r.list(func() { names = append(names, r.astring()) })
			if spec == "HEADER.FIELDS" {
				sec.HeaderFields = names
			} else {
				sec.HeaderFieldsNot = names
			}
			spec += " (" + strings.ToUpper(strings.Join(names, " ")) + ")"
		default:
			r.syntax("bad section")
		}
		text = append(text, spec)
	}
	r.expect(']')
	return strings.Join(text, ".")
}

func isAlpha(c byte) bool { return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' }

func cmdFetch(sess *session, _ string, uid bool) (string, error) {
	r := sess.r
	r.sp()
	set := r.seqSetText()
	r.sp()
	items := r.fetchItems()
	var changedSince uint64
	if r.maybeSP() {
		r.list(func() {
			switch m := strings.ToUpper(r.atom()); m {
			case "CHANGEDSINCE":
				r.sp()
				changedSince = r.number(false)
			default:
				if r.err == nil {
					r.fail(badf("Invalid fetch modifier %s", m))
				}
			}
		})
	}
	if err := r.end(); err != nil {
		return "", err
	}
	v := sess.sel
	uids, err := v.resolve(set, uid)
	if err != nil {
		return "", err
	}
	if uid {
		items = append([]fetchItem{{kind: fUID}}, items...)
	}
	if changedSince > 0 {
		sess.condstore = true
		items = append(items, fetchItem{kind: fModSeq})
	}
	if sess.condstore && !slices.ContainsFunc(items, func(it fetchItem) bool { return it.kind == fModSeq }) &&
		slices.ContainsFunc(items, func(it fetchItem) bool { return it.kind == fFlags }) {
		items = append(items, fetchItem{kind: fModSeq})
	}
	items = dedupe(items)
	if len(uids) == 0 {
		return "", nil
	}
	st := sess.srv.cfg.Store
	setSeen := !v.readOnly && v.rights&rSeen != 0 && slices.ContainsFunc(items, func(it fetchItem) bool { return it.setsSeen })
	var msgs []mailstore.Message
	if err := st.Messages(v.id, uids[0], uids[len(uids)-1], func(m *mailstore.Message) bool {
		if _, ok := slices.BinarySearch(uids, m.UID); ok && m.ModSeq > changedSince {
			msgs = append(msgs, *m)
		}
		return true
	}); err != nil {
		return "", err
	}
	if setSeen {
		var unseen []uint32
		for _, m := range msgs {
			if !slices.Contains(m.Flags, `\Seen`) {
				unseen = append(unseen, m.UID)
			}
		}
		if len(unseen) > 0 {
			res, err := st.SetFlags(v.id, unseen, mailstore.FlagsAdd, []string{`\Seen`}, 0)
			if err != nil {
				return "", err
			}
			for _, u := range res.Messages {
				i := slices.IndexFunc(msgs, func(m mailstore.Message) bool { return m.UID == u.UID })
				msgs[i] = u
			}
			// Show the flag change in this reply.
			if !slices.ContainsFunc(items, func(it fetchItem) bool { return it.kind == fFlags }) {
				items = append(items, fetchItem{kind: fFlags})
			}
		}
	}
	for i := range msgs {
		if err := sess.fetchOne(&msgs[i], items); err != nil {
			return "", err
		}
	}
	return "", nil
}

func dedupe(items []fetchItem) []fetchItem {
	var out []fetchItem
	for _, it := range items {
		if it.kind != fSection && slices.ContainsFunc(out, func(o fetchItem) bool { return o.kind == it.kind }) {
			continue
		}
		out = append(out, it)
	}
	return out
}

// fetchOne writes one FETCH response. A body that cannot be read after
// its size was sent ends the connection (the reply cannot be finished).
func (sess *session) fetchOne(m *mailstore.Message, items []fetchItem) error {
	w := sess.w
	v := sess.sel
	seq := v.seq(m.UID)
	if seq == 0 {
		return nil
	}
	w.raw("* ").num(uint64(seq)).raw(" FETCH (")
	var sum []byte
	for i, it := range items {
		if i > 0 {
			w.raw(" ")
		}
		switch it.kind {
		case fUID:
			w.raw("UID ").num(uint64(m.UID))
		case fFlags:
			w.raw("FLAGS ")
			fmtFlags(w, m.Flags)
		case fInternalDate:
			w.raw(`INTERNALDATE "`).raw(m.InternalDate.Format("02-Jan-2006 15:04:05 -0700")).raw(`"`)
		case fSize:
			w.raw("RFC822.SIZE ").num(uint64(m.Size))
		case fModSeq:
			w.raw("MODSEQ (").num(m.ModSeq).raw(")")
		case fEnvelope, fBody, fBodyStructure:
			if sum == nil {
				var err error
				if sum, err = sess.summary(m); err != nil {
					return err
				}
			}
			env, body, ext, _ := summaryParts(sum)
			switch it.kind {
			case fEnvelope:
				w.raw("ENVELOPE ").bytes(env)
			case fBody:
				w.raw("BODY ").bytes(body)
			default:
				w.raw("BODYSTRUCTURE ").bytes(ext)
			}
		case fSection:
			if err := sess.fetchSection(m, &it); err != nil {
				return err
			}
		}
	}
	w.raw(")\r\n")
	return nil
}

// summary returns the stored summary, or computes it for a message stored
// without one.
func (sess *session) summary(m *mailstore.Message) ([]byte, error) {
	st := sess.srv.cfg.Store
	sum, err := st.Summary(m)
	if err != nil {
		return nil, err
	}
	if _, _, _, ok := summaryParts(sum); ok {
		return sum, nil
	}
	b := st.OpenBody(m)
	defer b.Close()
	sum, err = Summarize(b)
	if err != nil {
		return nil, fmt.Errorf("imap: summarize message %d: %w", m.UID, err)
	}
	return sum, nil
}

// fetchSection writes one body section, streaming whole bodies and texts
// from the store.
func (sess *session) fetchSection(m *mailstore.Message, it *fetchItem) error {
	w := sess.w
	st := sess.srv.cfg.Store
	w.raw(it.name).raw(" ")
	sec := &it.sec
	if len(sec.Part) == 0 && len(sec.HeaderFields) == 0 && len(sec.HeaderFieldsNot) == 0 {
		// Whole message, header or text: a byte range of the body.
		start, end := int64(0), m.Size
		switch sec.Specifier {
		case imap.PartSpecifierHeader:
			end = m.HeaderSize
		case imap.PartSpecifierText:
			start = m.HeaderSize
		}
		if p := sec.Partial; p != nil {
			start = min(start+p.Offset, end)
			end = min(start+p.Size, end)
		}
		b := st.OpenBody(m)
		defer b.Close()
		if _, err := b.Seek(start, io.SeekStart); err != nil {
			return err
		}
		w.raw("{").num(uint64(end - start)).raw("}\r\n")
		if _, err := io.CopyN(w.bw, b, end-start); err != nil {
			return fmt.Errorf("imap: message %d body: %w: %w", m.UID, err, errClose)
		}
		return nil
	}
	var data []byte
	b := st.OpenBody(m)
	if len(sec.Part) == 0 {
		// HEADER.FIELDS (.NOT) of the message: filter the raw header.
		h := make([]byte, m.HeaderSize)
		if _, err := io.ReadFull(b, h); err != nil {
			b.Close()
			return err
		}
		data = filterHeader(h, sec.HeaderFields, sec.HeaderFieldsNot)
	} else {
		defer b.Close()
		s, err := findSection(b, sec)
		if err != nil {
			return err
		}
		return s.write(w, b, sec.Partial)
	}
	b.Close()
	if p := sec.Partial; p != nil {
		data = data[min(p.Offset, int64(len(data))):]
		data = data[:min(p.Size, int64(len(data)))]
	}
	w.raw("{").num(uint64(len(data))).raw("}\r\n").bytes(data)
	return nil
}

// filterHeader keeps (or, with not, drops) the named fields of a raw
// header, byte for byte, and ends it with an empty line.
func filterHeader(h []byte, names, not []string) []byte {
	var out bytes.Buffer
	for _, f := range splitHeader(h) {
		match := func(l []string) bool {
			return slices.ContainsFunc(l, func(n string) bool { return strings.EqualFold(n, f.name) })
		}
		if (len(names) > 0 && match(names)) || (len(not) > 0 && !match(not)) {
			out.Write(f.raw)
		}
	}
	out.WriteString("\r\n")
	return out.Bytes()
}
