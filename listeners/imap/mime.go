package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"strings"
)

// Limits of the MIME parser. They bound the memory a message's structure
// takes whatever the message holds; past them the structure stays right
// (offsets, sizes and lines of what is reported) but less detailed.
const (
	// maxMIMEDepth bounds how deeply multiparts and message/rfc822 parts
	// nest; a deeper one is reported as an APPLICATION/OCTET-STREAM leaf.
	// Dovecot's message parser nests 100 deep by default
	// (MESSAGE_PARSER_DEFAULT_MAX_NESTED_MIME_PARTS), Cyrus's
	// boundary_limit is 1000; mail does not come near either.
	maxMIMEDepth = 100
	// maxMIMEParts bounds the parts of a message, as Dovecot's default
	// of 10000 (MESSAGE_PARSER_DEFAULT_MAX_TOTAL_MIME_PARTS): the rest
	// of a multipart past it is not split.
	maxMIMEParts = 10000
	// maxFieldValue caps each header field value kept (the ones ENVELOPE
	// and BODYSTRUCTURE use); the field is cut there.
	maxFieldValue = 64 << 10
	// maxKept caps the field values kept for a whole message; past it
	// further fields are dropped.
	maxKept = 1 << 20
)

// keptFields are the header fields the parser keeps: ENVELOPE's and
// BODYSTRUCTURE's. The first of each name is kept.
var keptFields = map[string]bool{
	"date": true, "subject": true, "from": true, "sender": true, "reply-to": true,
	"to": true, "cc": true, "bcc": true, "in-reply-to": true, "message-id": true,
	"content-type": true, "content-transfer-encoding": true, "content-id": true,
	"content-description": true, "content-disposition": true, "content-language": true,
	"content-location": true, "content-md5": true,
}

// part is one MIME entity of a message: the message itself, a part of a
// multipart, or the message a message/rfc822 part holds. Offsets are in
// the message; the header includes its empty line, the body excludes the
// line end before a boundary delimiter (RFC 2046 5.1.1).
type part struct {
	headerStart, bodyStart, bodyEnd int64
	lines                           int64 // line ends in the body
	fields                          []field
	mediaType, subtype              string // lower case
	params                          map[string]string
	children                        []*part // multipart
	message                         *part   // message/rfc822
	done                            bool    // parsed to its end
}

func (p *part) get(name string) string {
	v, _ := headerValue(p.fields, name)
	return v
}

// parseMIME reads a message to its end and returns its structure,
// streaming: the memory it takes is bounded by the limits above, not by
// the size of the message or of any header.
func parseMIME(r io.Reader) (*part, error) {
	return parseMIMEUntil(r, nil)
}

// parseMIMEUntil is parseMIME that stops reading as soon as enough,
// called with the root each time a part is complete, says so; the parts
// not complete then are left as they are.
func parseMIMEUntil(r io.Reader, enough func(root *part) bool) (*part, error) {
	root := &part{}
	p := &mimeParser{br: bufio.NewReaderSize(r, 64<<10), root: root, enough: enough}
	p.parts = 1
	p.parsePart(root, 0, false)
	if p.err != nil {
		return nil, p.err
	}
	return root, nil
}

type mimeParser struct {
	br  *bufio.Reader
	err error
	off int64 // offset of the next byte
	lf  int64 // line feeds read so far
	// midLine: the last piece read did not end its line; full: it was
	// cut because the line is longer than the buffer.
	midLine, full bool
	// eol is the length of the line end of the last line read (0 if it
	// had none).
	eol    int
	bounds []string // open multipart boundaries, innermost last
	parts  int
	kept   int
	// keep names the fields kept, in lower case (keptFields if nil);
	// repeats keeps each occurrence, not only the first.
	keep    map[string]bool
	repeats bool
	root    *part
	enough  func(root *part) bool
	stopped bool // enough said so: read nothing more
}

// readFields reads a message's header from r and returns every
// occurrence of the fields names lists (lower case), each value cut at
// maxFieldValue and maxKept in all, so the memory it takes is bounded
// whatever the header's size.
func readFields(r io.Reader, names map[string]bool) ([]field, error) {
	// A header limited to a few hundred bytes gets a buffer its size:
	// SORT and SEARCH read one per message, and 64 KiB each would be
	// gigabytes allocated over a large mailbox.
	size := 64 << 10
	if lr, ok := r.(*io.LimitedReader); ok && lr.N < int64(size) {
		size = int(max(lr.N, 16))
	}
	p := &mimeParser{br: bufio.NewReaderSize(r, size), keep: names, repeats: true}
	var pt part
	p.readHeader(&pt)
	return pt.fields, p.err
}

// stop tells where reading content stopped: at a delimiter line of the
// boundary bounds[level] (close: "--b--"), or at the end (level -1).
// end and endLF are the offset and line-feed count where the content
// before it ends.
type stop struct {
	level      int
	close      bool
	end, endLF int64
}

// next returns the next piece of the message: a whole line or, for a
// line longer than the buffer, a piece of one; atStart tells whether it
// starts a line. It returns nil at the end or on an error (p.err).
func (p *mimeParser) next() (b []byte, start int64, atStart bool) {
	if p.stopped {
		return nil, p.off, false
	}
	b, err := p.br.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) && !errors.Is(err, io.EOF) {
		p.err = err
		return nil, p.off, false
	}
	if len(b) == 0 {
		return nil, p.off, false
	}
	start, atStart = p.off, !p.midLine
	p.off += int64(len(b))
	p.midLine = b[len(b)-1] != '\n'
	p.full = errors.Is(err, bufio.ErrBufferFull)
	return b, start, atStart
}

// account counts a piece that belongs to content.
func (p *mimeParser) account(b []byte) {
	p.lf += int64(bytes.Count(b, []byte{'\n'}))
	switch {
	case bytes.HasSuffix(b, []byte("\r\n")):
		p.eol = 2
	case bytes.HasSuffix(b, []byte("\n")):
		p.eol = 1
	default:
		p.eol = 0
	}
}

// delimiter reports whether the piece b, starting a line at offset start,
// is a delimiter line of an open boundary, and returns the stop it makes
// for content that began at from.
func (p *mimeParser) delimiter(b []byte, start, from int64) (stop, bool) {
	if len(p.bounds) == 0 || !bytes.HasPrefix(b, []byte("--")) || p.full {
		return stop{}, false
	}
	rest := b[2:]
	for i := len(p.bounds) - 1; i >= 0; i-- {
		bd := p.bounds[i]
		if !bytes.HasPrefix(rest, []byte(bd)) {
			continue
		}
		tail := rest[len(bd):]
		closing := bytes.HasPrefix(tail, []byte("--"))
		if closing {
			tail = tail[2:]
		}
		if len(bytes.TrimRight(tail, " \t\r\n")) != 0 {
			continue
		}
		s := stop{level: i, close: closing, end: start, endLF: p.lf}
		// The line end before the delimiter belongs to it.
		if p.eol > 0 && start-int64(p.eol) >= from {
			s.end -= int64(p.eol)
			s.endLF--
		}
		p.account(b)
		return s, true
	}
	return stop{}, false
}

// skip reads content that began at from up to a delimiter line of an
// open boundary or the end.
func (p *mimeParser) skip(from int64) stop {
	for {
		b, start, atStart := p.next()
		if b == nil {
			return stop{level: -1, end: p.off, endLF: p.lf}
		}
		if atStart {
			if s, ok := p.delimiter(b, start, from); ok {
				return s
			}
		}
		p.account(b)
	}
}

// readHeader reads a header into pt.fields, up to and including its
// empty line. A header cut by a delimiter line or the end returns that
// stop and true.
func (p *mimeParser) readHeader(pt *part) (stop, bool) {
	var name string
	var value []byte
	keep := false
	flush := func() {
		if keep && p.kept < maxKept {
			v := strings.TrimSpace(string(value))
			p.kept += len(v)
			pt.fields = append(pt.fields, field{name: name, value: v})
		}
		name, value, keep = "", value[:0], false
	}
	add := func(b []byte) {
		if !keep {
			return
		}
		b = bytes.TrimRight(b, "\r\n")
		if len(value) == 0 {
			b = bytes.TrimLeft(b, " \t")
		}
		value = append(value, b[:min(len(b), maxFieldValue-len(value))]...)
	}
	for {
		b, start, atStart := p.next()
		if b == nil {
			flush()
			return stop{level: -1, end: p.off, endLF: p.lf}, true
		}
		if atStart {
			if s, ok := p.delimiter(b, start, pt.headerStart); ok {
				flush()
				return s, true
			}
		}
		p.account(b)
		switch {
		case !atStart:
			add(b)
		case b[0] == '\n' || b[0] == '\r' && len(b) == 2 && b[1] == '\n':
			flush()
			return stop{}, false
		case b[0] == ' ' || b[0] == '\t':
			add(b)
		default:
			flush()
			n, v, ok := bytes.Cut(b, []byte{':'})
			if !ok {
				continue
			}
			n = bytes.TrimSpace(n)
			if !p.wanted(n) || !p.repeats && hasField(pt.fields, string(n)) {
				continue
			}
			name, keep = string(n), true
			add(v)
		}
	}
}

// wanted reports whether the field named n is kept, without allocating
// for the common names (the header of a large message has many fields).
func (p *mimeParser) wanted(n []byte) bool {
	set := p.keep
	if set == nil {
		set = keptFields
	}
	var buf [64]byte
	if len(n) > len(buf) {
		return set[strings.ToLower(string(n))]
	}
	for i, c := range n {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	// A map lookup with string(b) does not allocate.
	return set[string(buf[:len(n)])]
}

func hasField(fields []field, name string) bool {
	for _, f := range fields {
		if strings.EqualFold(f.name, name) {
			return true
		}
	}
	return false
}

// parsePart reads a part (header and body) from the current position up
// to a delimiter line of an enclosing boundary or the end.
func (p *mimeParser) parsePart(pt *part, depth int, digest bool) stop {
	defer p.finished(pt)
	pt.headerStart = p.off
	if s, cut := p.readHeader(pt); cut {
		pt.bodyStart, pt.bodyEnd = s.end, s.end
		pt.mediaType, pt.subtype, pt.params = contentType(pt.get("Content-Type"), digest)
		return s
	}
	pt.bodyStart = p.off
	startLF := p.lf
	pt.mediaType, pt.subtype, pt.params = contentType(pt.get("Content-Type"), digest)
	nested := pt.mediaType == "multipart" || pt.mediaType == "message" && (pt.subtype == "rfc822" || pt.subtype == "global")
	if nested && pt.mediaType == "multipart" && pt.params["boundary"] == "" {
		// Nothing to split it with: text, as Cyrus and Dovecot take it.
		pt.mediaType, pt.subtype, pt.params = "text", "plain", map[string]string{"charset": "us-ascii"}
		nested = false
	}
	if nested && (depth >= maxMIMEDepth || p.parts >= maxMIMEParts) {
		// Too deep to describe: an opaque leaf.
		pt.mediaType, pt.subtype = "application", "octet-stream"
		nested = false
	}
	var s stop
	switch {
	case nested && pt.mediaType == "message":
		pt.message = &part{}
		p.parts++
		s = p.parsePart(pt.message, depth+1, false)
	case nested:
		s = p.parseMultipart(pt, depth)
	default:
		s = p.skip(pt.bodyStart)
	}
	pt.bodyEnd = s.end
	pt.lines = s.endLF - startLF
	return s
}

// finished marks a part complete and asks enough whether to go on.
func (p *mimeParser) finished(pt *part) {
	pt.done = true
	if p.enough != nil && !p.stopped && p.err == nil {
		p.stopped = p.enough(p.root)
	}
}

// parseMultipart reads a multipart body: preamble, parts, epilogue.
func (p *mimeParser) parseMultipart(pt *part, depth int) stop {
	p.bounds = append(p.bounds, pt.params["boundary"])
	level := len(p.bounds) - 1
	digest := pt.subtype == "digest"
	s := p.skip(pt.bodyStart) // preamble
	for s.level == level && !s.close && p.parts < maxMIMEParts {
		c := &part{}
		p.parts++
		pt.children = append(pt.children, c)
		s = p.parsePart(c, depth+1, digest)
	}
	if s.level == level {
		// After the close delimiter (or past maxMIMEParts) the rest up
		// to an enclosing delimiter is epilogue.
		p.bounds = p.bounds[:level]
		s = p.skip(p.off)
	}
	p.bounds = p.bounds[:min(level, len(p.bounds))]
	if len(pt.children) == 0 {
		// BODYSTRUCTURE needs at least one part: an empty one, as if the
		// body had no delimiter but an empty part.
		pt.children = append(pt.children, &part{headerStart: s.end, bodyStart: s.end, bodyEnd: s.end,
			mediaType: "text", subtype: "plain", params: map[string]string{"charset": "us-ascii"}})
	}
	return s
}

// contentType parses a Content-Type value, with RFC 2045's default
// (RFC 2046 5.1.5's in a digest) when it is missing or unusable.
func contentType(v string, digest bool) (typ, sub string, params map[string]string) {
	mt, params := parseParams(v)
	typ, sub, ok := strings.Cut(mt, "/")
	typ, sub = strings.TrimSpace(typ), strings.TrimSpace(sub)
	if !ok || typ == "" || sub == "" {
		if digest && v == "" {
			return "message", "rfc822", nil
		}
		return "text", "plain", map[string]string{"charset": "us-ascii"}
	}
	return typ, sub, params
}

// parseParams parses "value; name=value; ..." (Content-Type,
// Content-Disposition) with RFC 2231 parameters, or leniently when the
// value is not valid (duplicate or broken parameters).
func parseParams(v string) (string, map[string]string) {
	if v == "" {
		return "", nil
	}
	if mt, params, err := mime.ParseMediaType(v); err == nil {
		return mt, params
	}
	parts := splitQuoted(v, ';')
	mt := strings.ToLower(strings.TrimSpace(parts[0]))
	var params map[string]string
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(val[1 : len(val)-1])
		}
		if params == nil {
			params = map[string]string{}
		}
		if _, dup := params[k]; !dup {
			params[k] = val
		}
	}
	return mt, params
}

// splitQuoted splits s at sep outside quoted strings.
func splitQuoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
