package imap

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/transform"

	"github.com/rookery/rookery/store/mailstore"
)

// SEARCH BODY and TEXT compare the text a reader sees, not the bytes
// stored (RFC 3501 6.4.4; Cyrus and Dovecot do the same): each text part
// with its Content-Transfer-Encoding undone and its charset converted to
// UTF-8, header fields with their encoded words (RFC 2047) decoded, both
// sides folded for i;unicode-casemap. Parts that are not text are
// searched as decoded bytes, except base64 ones: those are binary, and a
// word found in them would be chance. Multipart preambles and epilogues
// are not text anyone reads, and are skipped.

// textContains reports whether the message's body (and, with header, its
// header) holds s.
func (e *evaluator) textContains(s string, header bool) (bool, error) {
	needle := []byte(casemap(s))
	if len(needle) == 0 {
		return true, nil
	}
	b := e.view.OpenBody(e.m)
	defer b.Close()
	if e.root == nil {
		root, err := e.structure(b)
		if err != nil {
			return false, err
		}
		e.root = root
	}
	if header {
		if ok, err := headerHolds(b, e.root, needle); ok || err != nil {
			return ok, err
		}
	}
	return partHolds(b, e.root, needle)
}

// textFields are the header fields that say whether a message is one
// part, and how to read it.
var textFields = map[string]bool{"content-type": true, "content-transfer-encoding": true}

// structure returns the message's MIME structure. Most mail is one part:
// its header alone says so, and the body need not be read to find parts,
// only to search it.
func (e *evaluator) structure(b *mailstore.Body) (*part, error) {
	fields, err := readFields(io.LimitReader(b, e.m.HeaderSize), textFields)
	if err != nil {
		return nil, err
	}
	root := &part{bodyStart: e.m.HeaderSize, bodyEnd: e.m.Size, fields: fields, done: true}
	root.mediaType, root.subtype, root.params = contentType(root.get("Content-Type"), false)
	if root.mediaType != "multipart" && root.mediaType != "message" {
		return root, nil
	}
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return parseMIME(b)
}

// partHolds searches the body of p: a message's parts, in turn.
func partHolds(b io.ReadSeeker, p *part, needle []byte) (bool, error) {
	switch {
	case p.message != nil:
		if ok, err := headerHolds(b, p.message, needle); ok || err != nil {
			return ok, err
		}
		return partHolds(b, p.message, needle)
	case len(p.children) > 0:
		for _, c := range p.children {
			if ok, err := partHolds(b, c, needle); ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	}
	cte := strings.ToLower(strings.TrimSpace(p.get("Content-Transfer-Encoding")))
	text := p.mediaType == "" || p.mediaType == "text"
	if !text && cte == "base64" {
		return false, nil
	}
	if _, err := b.Seek(p.bodyStart, io.SeekStart); err != nil {
		return false, err
	}
	var r io.Reader = source{io.LimitReader(b, p.bodyEnd-p.bodyStart)}
	if dec, ok := decoder(cte, r); ok {
		r = dec
	}
	if text {
		r = toUTF8(r, p.params["charset"])
	}
	return streamHolds(r, needle)
}

// headerHolds searches the header of the message p, a field at a time,
// unfolded and with its encoded words decoded.
func headerHolds(b io.ReadSeeker, p *part, needle []byte) (bool, error) {
	if _, err := b.Seek(p.headerStart, io.SeekStart); err != nil {
		return false, err
	}
	br := bufio.NewReader(io.LimitReader(b, p.bodyStart-p.headerStart))
	var f []byte
	check := func() bool {
		ok := len(f) > 0 && strings.Contains(casemap(decodeWords(string(f))), string(needle))
		f = f[:0]
		return ok
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			err = nil
		}
		if len(line) > 0 && line[0] != ' ' && line[0] != '\t' && check() {
			return true, nil
		}
		if len(f) < maxFieldValue {
			f = append(f, bytes.TrimRight(line, "\r\n")...)
		}
		if err == io.EOF {
			return check(), nil
		}
		if err != nil {
			return false, err
		}
	}
}

// streamHolds looks for needle in the UTF-8 text r gives, folded, in
// windows that overlap by len(needle) and never split a character.
func streamHolds(r io.Reader, needle []byte) (bool, error) {
	sb := searchBufs.Get().(*searchBuf)
	defer searchBufs.Put(sb)
	buf := sb.read
	var carry []byte // the start of a character cut at the end of a read
	window := sb.window[:0]
	defer func() { sb.window = window[:0] }()
	for {
		n, err := io.ReadFull(r, buf)
		chunk := append(carry, buf[:n]...)
		carry = nil
		if err == nil {
			if cut := incompleteTail(chunk); cut > 0 {
				carry = bytes.Clone(chunk[len(chunk)-cut:])
				chunk = chunk[:len(chunk)-cut]
			}
		}
		window = appendFolded(window, chunk)
		if bytes.Contains(window, needle) {
			return true, nil
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		keep := min(len(needle)-1, len(window))
		window = append(window[:0], window[len(window)-keep:]...)
	}
}

// appendFolded appends text folded as casemap folds it; ASCII, most of
// what is searched, is folded in place of a string conversion and a map.
func appendFolded(dst, text []byte) []byte {
	for _, c := range text {
		if c >= 0x80 {
			return append(dst, casemap(string(text))...)
		}
	}
	n := len(dst)
	dst = append(dst, text...)
	for i := n; i < len(dst); i++ {
		if c := dst[i]; 'a' <= c && c <= 'z' {
			dst[i] = c - 'a' + 'A'
		}
	}
	return dst
}

// searchBuf is streamHolds's memory: SEARCH reads every message of a
// mailbox, and buffers made for each would be garbage by the gigabyte.
type searchBuf struct{ read, window []byte }

var searchBufs = sync.Pool{New: func() any { return &searchBuf{read: make([]byte, 64<<10)} }}

// incompleteTail is how many bytes at the end of b begin a UTF-8
// character that the next read completes.
func incompleteTail(b []byte) int {
	for i := 1; i <= min(utf8.UTFMax-1, len(b)); i++ {
		c := b[len(b)-i]
		if utf8.RuneStart(c) {
			if !utf8.FullRune(b[len(b)-i:]) {
				return i
			}
			return 0
		}
	}
	return 0
}

// toUTF8 converts text in charset to UTF-8. UTF-8, US-ASCII, no charset
// and charsets nobody knows are passed as they are: the bytes may still
// match an ASCII search.
func toUTF8(r io.Reader, charset string) io.Reader {
	charset = strings.ToLower(strings.TrimSpace(charset))
	switch charset {
	case "", "utf-8", "us-ascii", "utf8":
		return r
	}
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return r
	}
	return transform.NewReader(r, enc.NewDecoder())
}

// charsetReader is toUTF8 for mime.WordDecoder.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	return toUTF8(input, charset), nil
}
