package imap

import (
	"bufio"
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
	fBinary     // BINARY[...], BINARY.PEEK[...]
	fBinarySize // BINARY.SIZE[...]
	fEmailID
	fThreadID
	fSaveDate
)

// hasSection tells the kinds a FETCH may ask for more than once, with
// different sections.
func (k fetchKind) hasSection() bool { return k == fSection || k == fBinary || k == fBinarySize }

type fetchItem struct {
	kind fetchKind
	// For the kinds with a section: what to send and under which name.
	sec  imap.FetchItemBodySection
	name string // reply name, e.g. "BODY[HEADER]", "RFC822.TEXT", "BINARY[1]<0>"
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
	case "EMAILID":
		return simple(fEmailID)
	case "THREADID":
		return simple(fThreadID)
	case "SAVEDATE":
		return simple(fSaveDate)
	case "RFC822":
		return []fetchItem{{kind: fSection, name: "RFC822", setsSeen: true}}
	case "RFC822.PEEK":
		// Not in RFC 3501, but Cyrus takes it (RFC822 without setting
		// \Seen) and a Cyrus 3.6 frontend's cross-backend COPY sends it.
		return []fetchItem{{kind: fSection, name: "RFC822", sec: imap.FetchItemBodySection{Peek: true}}}
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
		r.partial(&it)
		return []fetchItem{it}
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		it := fetchItem{kind: fBinary, setsSeen: name == "BINARY"}
		if name == "BINARY.SIZE" {
			it.kind = fBinarySize
		}
		it.name = strings.TrimSuffix(name, ".PEEK") + "[" + r.binarySection(&it) + "]"
		if it.kind == fBinary {
			r.partial(&it)
		}
		return []fetchItem{it}
	}
	if len(name) > 40 {
		name = name[:40] + "..."
	}
	r.syntax("unknown fetch item " + strconv.Quote(name))
	return nil
}

// partial reads a section's "<offset.size>", if it comes next, into it.
func (r *reader) partial(it *fetchItem) {
	if !r.maybe('<') {
		return
	}
	off := r.number(false)
	r.expect('.')
	n := r.number(true)
	r.expect('>')
	it.sec.Partial = &imap.SectionPartial{Offset: int64(off), Size: int64(n)}
	it.name += "<" + strconv.FormatUint(off, 10) + ">"
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
	vanished := false
	if r.maybeSP() {
		r.list(func() {
			switch m := strings.ToUpper(r.atom()); m {
			case "CHANGEDSINCE":
				r.sp()
				changedSince = r.number(false)
			case "VANISHED":
				vanished = true
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
	if vanished && (!uid || changedSince == 0 || !sess.qresync) {
		return "", bad("VANISHED needs UID FETCH with CHANGEDSINCE, after ENABLE QRESYNC")
	}
	v := sess.sel
	uids, err := v.resolve(set, uid)
	if err != nil {
		return "", err
	}
	st := sess.srv.cfg.Store
	// One view for the whole command: records, summaries and bodies agree,
	// and messages expunged elsewhere that this session has not yet
	// announced are still found (its pin keeps them).
	view := st.View()
	defer view.Close()
	if vanished {
		if err := sess.vanishedSince(view, set, changedSince); err != nil {
			return "", err
		}
	}
	// Once QRESYNC is on every FETCH response carries the UID (RFC 7162
	// 3.2.4), so the client can key it without sequence numbers.
	if uid || sess.qresync {
		items = append([]fetchItem{{kind: fUID}}, items...)
	}
	if changedSince > 0 || slices.ContainsFunc(items, func(it fetchItem) bool { return it.kind == fModSeq }) {
		sess.enableCondstore()
	}
	if changedSince > 0 {
		items = append(items, fetchItem{kind: fModSeq})
	}
	// RFC 7162 3.1: with CONDSTORE on, UID and MODSEQ come unasked only
	// with a flag change, here a FETCH that may set \Seen; a plain FLAGS
	// fetch gets no MODSEQ. A Cyrus 3.6 frontend's cross-backend COPY
	// depends on that: it parses the answer to "FETCH <set> (Flags
	// Internaldate)", knows no MODSEQ item, and drops the session on one.
	if sess.condstore && !v.readOnly && v.rights&rSeen != 0 &&
		slices.ContainsFunc(items, func(it fetchItem) bool { return it.setsSeen }) {
		items = append(append([]fetchItem{{kind: fUID}}, items...), fetchItem{kind: fModSeq})
	}
	items = dedupe(items)
	if len(uids) == 0 {
		return "", nil
	}
	setSeen := !v.readOnly && v.rights&rSeen != 0 && slices.ContainsFunc(items, func(it fetchItem) bool { return it.setsSeen })
	var msgs []mailstore.Message
	if err := view.Find(v.id, uids, func(m *mailstore.Message, _ bool) bool {
		if m.ModSeq > changedSince {
			msgs = append(msgs, *m)
		}
		return true
	}); err != nil {
		return "", err
	}
	if h := sess.srv.fetchHook; h != nil {
		h()
	}
	if slices.ContainsFunc(items, func(it fetchItem) bool { return it.kind == fFlags }) || setSeen {
		// Another session may have added a keyword these flags show.
		m, ok, err := view.MailboxByID(v.id)
		if err != nil {
			return "", err
		}
		if ok {
			sess.announceKeywords(m.Keywords)
		}
	}
	if setSeen {
		var unseen []uint32
		for _, m := range msgs {
			if !slices.Contains(m.Flags, `\Seen`) {
				unseen = append(unseen, m.UID)
			}
		}
		if len(unseen) > 0 {
			before := v.modseq
			res, err := st.SetFlags(v.id, unseen, mailstore.FlagsAdd, []string{`\Seen`}, 0)
			if err != nil {
				return "", err
			}
			// This reply shows the change: update need not again,
			// unless someone else changed the mailbox in between.
			if res.Changed && res.ModSeq == before+1 {
				v.modseq = res.ModSeq
			}
			for _, u := range res.Messages {
				i := slices.IndexFunc(msgs, func(m mailstore.Message) bool { return m.UID == u.UID })
				msgs[i].Flags, msgs[i].ModSeq = u.Flags, u.ModSeq
			}
			// Show the flag change in this reply.
			if !slices.ContainsFunc(items, func(it fetchItem) bool { return it.kind == fFlags }) {
				items = append(items, fetchItem{kind: fFlags})
			}
		}
	}
	for i := range msgs {
		if err := sess.fetchOne(view, &msgs[i], items); err != nil {
			return "", err
		}
	}
	return "", nil
}

func dedupe(items []fetchItem) []fetchItem {
	var out []fetchItem
	for _, it := range items {
		if !it.kind.hasSection() && slices.ContainsFunc(out, func(o fetchItem) bool { return o.kind == it.kind }) {
			continue
		}
		out = append(out, it)
	}
	return out
}

// fetchReply is one FETCH response, prepared before its first byte is
// written so that whatever can fail (summaries, sections, the start of a
// body) fails while a clean NO can still be sent. It is text to write as
// is, interleaved with body ranges to stream from the view.
type fetchReply struct {
	buf    bytes.Buffer
	chunks []fetchChunk
}

// fetchChunk is text followed, if body is set, by n bytes streamed from it
// (already positioned), or from r, which reads it, when set.
type fetchChunk struct {
	text []byte
	body *mailstore.Body
	r    io.Reader
	n    int64
}

// stream ends the current text with a body range, sent in a plain
// literal.
func (fr *fetchReply) stream(b *mailstore.Body, n int64) {
	fr.chunks = append(fr.chunks, fetchChunk{text: bytes.Clone(fr.buf.Bytes()), body: b, n: n})
	fr.buf.Reset()
}

// streamFrom ends the current text with n bytes read from r, which reads
// b, sent as they are.
func (fr *fetchReply) streamFrom(b *mailstore.Body, r io.Reader, n int64) {
	fr.chunks = append(fr.chunks, fetchChunk{text: bytes.Clone(fr.buf.Bytes()), body: b, r: r, n: n})
	fr.buf.Reset()
}

func (fr *fetchReply) close() {
	for _, c := range fr.chunks {
		if c.body != nil {
			c.body.Close()
		}
	}
}

// fetchOne prepares and writes one FETCH response. Once its first byte is
// out, a failure (a body that cannot be read to the size announced) ends
// the connection: the response cannot be finished.
func (sess *session) fetchOne(view *mailstore.View, m *mailstore.Message, items []fetchItem) error {
	seq := sess.sel.seq(m.UID)
	if seq == 0 {
		return nil
	}
	fr := &fetchReply{}
	defer fr.close()
	if err := sess.prepareFetch(fr, view, seq, m, items); err != nil {
		return err
	}
	w := sess.w
	w.open = true
	for _, c := range fr.chunks {
		w.bytes(c.text)
		if c.body == nil {
			continue
		}
		var dst io.Writer = nulReplacer{w.bw}
		var src io.Reader = c.body
		if c.r != nil {
			dst, src = w.bw, c.r
		}
		if _, err := io.CopyN(dst, src, c.n); err != nil {
			return fmt.Errorf("imap: message %d body: %w: %w", m.UID, err, errClose)
		}
	}
	w.bytes(fr.buf.Bytes())
	w.open = false
	return nil
}

func (sess *session) prepareFetch(fr *fetchReply, view *mailstore.View, seq uint32, m *mailstore.Message, items []fetchItem) error {
	w := &writer{bw: bufio.NewWriter(&fr.buf)}
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
			flags := m.Flags
			if sess.sel.isRecent(m.UID) {
				flags = append(slices.Clip(flags), `\Recent`)
			}
			fmtFlags(w, flags)
		case fInternalDate:
			w.raw(`INTERNALDATE "`).raw(m.InternalDate.Format("02-Jan-2006 15:04:05 -0700")).raw(`"`)
		case fSize:
			w.raw("RFC822.SIZE ").num(uint64(m.Size))
		case fModSeq:
			w.raw("MODSEQ (").num(m.ModSeq).raw(")")
		case fEmailID:
			w.raw("EMAILID (").raw(emailID(m)).raw(")")
		case fThreadID:
			w.raw("THREADID NIL")
		case fSaveDate:
			// RFC 8514 4.1: NIL where it is not known, for messages
			// stored before save dates were kept.
			if m.SaveDate.IsZero() {
				w.raw("SAVEDATE NIL")
			} else {
				w.raw(`SAVEDATE "`).raw(m.SaveDate.Format("02-Jan-2006 15:04:05 -0700")).raw(`"`)
			}
		case fEnvelope, fBody, fBodyStructure:
			if sum == nil {
				var err error
				if sum, err = summaryOf(view, m); err != nil {
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
			if err := prepareSection(fr, w, view, m, &it); err != nil {
				return err
			}
		case fBinary, fBinarySize:
			if err := prepareBinary(fr, w, view, m, &it); err != nil {
				return err
			}
		}
	}
	w.raw(")\r\n")
	return w.flush()
}

// summaryOf returns the stored summary, or computes it for a message
// stored without one.
func summaryOf(view *mailstore.View, m *mailstore.Message) ([]byte, error) {
	sum, err := view.Summary(m)
	if err != nil {
		return nil, err
	}
	if _, _, _, ok := summaryParts(sum); ok {
		return sum, nil
	}
	b := view.OpenBody(m)
	defer b.Close()
	sum, err = Summarize(b)
	if err != nil {
		return nil, fmt.Errorf("imap: summarize message %d: %w", m.UID, err)
	}
	return sum, nil
}

// prepareSection adds one body section to fr: a byte range of the message
// (the whole of it, its header or text, a part), streamed from the view
// when written, or bytes built now (HEADER.FIELDS), or NIL for a part the
// message does not have.
func prepareSection(fr *fetchReply, w *writer, view *mailstore.View, m *mailstore.Message, it *fetchItem) error {
	w.raw(it.name).raw(" ")
	sec := &it.sec
	b := view.OpenBody(m)
	var start, end int64
	if len(sec.Part) == 0 && len(sec.HeaderFields) == 0 && len(sec.HeaderFieldsNot) == 0 {
		// Whole message, header or text: known without parsing.
		start, end = 0, m.Size
		switch sec.Specifier {
		case imap.PartSpecifierHeader:
			end = m.HeaderSize
		case imap.PartSpecifierText:
			start = m.HeaderSize
		}
	} else {
		s, err := findSection(b, sec)
		if err != nil {
			b.Close()
			return fmt.Errorf("imap: message %d section: %w", m.UID, err)
		}
		switch {
		case s.missing:
			b.Close()
			w.raw("NIL")
			return nil
		case s.data != nil:
			b.Close()
			data := s.data
			if p := sec.Partial; p != nil {
				data = data[min(p.Offset, int64(len(data))):]
				data = data[:min(p.Size, int64(len(data)))]
			}
			w.raw("{").num(uint64(len(data))).raw("}\r\n").bytes(data)
			return nil
		}
		start, end = s.start, s.end
	}
	if p := sec.Partial; p != nil {
		start = min(start+p.Offset, end)
		end = min(start+p.Size, end)
	}
	w.raw("{").num(uint64(end - start)).raw("}\r\n")
	if end == start {
		b.Close()
		return nil
	}
	if _, err := b.Seek(start, io.SeekStart); err != nil {
		b.Close()
		return err
	}
	if err := w.flush(); err != nil {
		b.Close()
		return err
	}
	fr.stream(b, end-start)
	return nil
}
