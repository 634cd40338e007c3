package imap

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"

	"github.com/rookery/rookery/store/mailstore"
)

// BINARY (RFC 3516): FETCH BINARY[part] sends a part with its
// Content-Transfer-Encoding undone, BINARY.SIZE[part] the decoded size,
// and APPEND takes a literal8 (~{n}), which may carry NUL.
//
// A decoded part is read twice, never held: once to learn its size and
// whether it holds NUL (which decides literal8), and again, streaming, as
// it is written. Both reads see the same bytes: the view is pinned for the
// command.

// binarySection reads BINARY's "[part]" (RFC 3516 4.2: part numbers only)
// into it and returns its text.
func (r *reader) binarySection(it *fetchItem) string {
	r.expect('[')
	var text []string
	for r.err == nil && r.peek() >= '0' && r.peek() <= '9' {
		n := r.number(true)
		it.sec.Part = append(it.sec.Part, int(n))
		text = append(text, fmt.Sprint(n))
		if !r.maybe('.') {
			break
		}
	}
	r.expect(']')
	return strings.Join(text, ".")
}

// binaryPart is a BINARY section located in a message: the byte range of
// its body (the whole message for BINARY[]) and the encoding to undo.
type binaryPart struct {
	missing    bool
	start, end int64
	cte        string // lower case; "" for none
}

// findBinary locates the part path names. BINARY[] is the message as
// stored; a part is its body, as BODY[part] is.
func findBinary(b io.ReadSeeker, m *mailstore.Message, path []int) (binaryPart, error) {
	if len(path) == 0 {
		return binaryPart{start: 0, end: m.Size}, nil
	}
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		return binaryPart{}, err
	}
	root, err := parseMIMEUntil(b, func(root *part) bool {
		cur, _ := locatePart(root, path)
		return cur != nil && cur.done
	})
	if err != nil {
		return binaryPart{}, fmt.Errorf("imap: parse message structure: %w", err)
	}
	cur, _ := locatePart(root, path)
	if cur == nil {
		return binaryPart{missing: true}, nil
	}
	cte := strings.ToLower(strings.TrimSpace(cur.get("Content-Transfer-Encoding")))
	if len(cur.children) > 0 || cur.message != nil {
		// A multipart or message part is sent as it is: its
		// encoding can only be an identity (RFC 2045 6.4).
		cte = ""
	}
	return binaryPart{start: cur.bodyStart, end: cur.bodyEnd, cte: cte}, nil
}

// decoder undoes a Content-Transfer-Encoding; ok is false for one this
// server does not know, which RFC 3516 answers with UNKNOWN-CTE.
func decoder(cte string, r io.Reader) (io.Reader, bool) {
	switch cte {
	case "", "7bit", "8bit", "binary":
		return r, true
	case "base64":
		return &lenient{r: base64.NewDecoder(base64.StdEncoding, &base64Filter{r})}, true
	case "quoted-printable":
		return &lenient{r: quotedprintable.NewReader(r)}, true
	}
	return nil, false
}

// lenient ends a decoded stream at the first malformed input instead of
// failing the FETCH: mail in the wild is often slightly broken, and a
// client is better served by the part's good beginning (Cyrus and
// Dovecot decode as leniently). Errors reading the message itself are
// kept: they are the store's, not the sender's.
type lenient struct {
	r    io.Reader
	done bool
}

func (l *lenient) Read(p []byte) (int, error) {
	if l.done {
		return 0, io.EOF
	}
	n, err := l.r.Read(p)
	var se *sourceError
	switch {
	case err == nil, err == io.EOF:
	case errors.As(err, &se):
		return n, se.err
	default:
		l.done, err = true, nil
		if n == 0 {
			err = io.EOF
		}
	}
	return n, err
}

// base64Filter passes only the base64 alphabet and padding to the
// decoder, which would otherwise fail on the spaces and stray characters
// real mail has between its lines.
type base64Filter struct{ r io.Reader }

func (f *base64Filter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// source reads a part's encoded bytes, marking read failures as the
// store's (sourceError) for lenient.
type source struct{ r io.Reader }

func (s source) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// sourceError is a failure to read the message, which lenient keeps.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// decodedExtent reads a part's decoded content once: its size and
// whether it holds NUL.
func decodedExtent(b io.ReadSeeker, bp binaryPart) (size int64, nul bool, err error) {
	dec, err := openDecoded(b, bp)
	if err != nil {
		return 0, false, err
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := dec.Read(buf)
		size += int64(n)
		nul = nul || bytes.IndexByte(buf[:n], 0) >= 0
		if err == io.EOF {
			return size, nul, nil
		}
		if err != nil {
			return 0, false, err
		}
	}
}

// rangeHasNUL tells whether n decoded bytes from start hold NUL.
func rangeHasNUL(b io.ReadSeeker, bp binaryPart, start, n int64) (bool, error) {
	dec, err := openDecoded(b, bp)
	if err != nil {
		return false, err
	}
	if _, err := io.CopyN(io.Discard, dec, start); err != nil {
		return false, err
	}
	buf := make([]byte, 32<<10)
	for n > 0 {
		k, err := dec.Read(buf[:min(n, int64(len(buf)))])
		if bytes.IndexByte(buf[:k], 0) >= 0 {
			return true, nil
		}
		n -= int64(k)
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

// openDecoded positions b at the part and returns its decoded content.
func openDecoded(b io.ReadSeeker, bp binaryPart) (io.Reader, error) {
	if _, err := b.Seek(bp.start, io.SeekStart); err != nil {
		return nil, err
	}
	dec, ok := decoder(bp.cte, source{io.LimitReader(b, bp.end-bp.start)})
	if !ok {
		return nil, noCode("UNKNOWN-CTE", "Cannot decode Content-Transfer-Encoding "+bp.cte)
	}
	return dec, nil
}

// prepareBinary adds BINARY[...] or BINARY.SIZE[...] to fr: NIL for a
// part the message does not have, a literal8 when the content holds NUL
// (RFC 3516 4.3: else a plain literal, so a client knows it has none).
func prepareBinary(fr *fetchReply, w *writer, view *mailstore.View, m *mailstore.Message, it *fetchItem) error {
	w.raw(it.name).raw(" ")
	b := view.OpenBody(m)
	bp, err := findBinary(b, m, it.sec.Part)
	if err != nil {
		b.Close()
		return fmt.Errorf("imap: message %d section: %w", m.UID, err)
	}
	if bp.missing {
		b.Close()
		w.raw("NIL")
		return nil
	}
	size, nul, err := decodedExtent(b, bp)
	if err != nil {
		b.Close()
		return err
	}
	if it.kind == fBinarySize {
		b.Close()
		w.num(uint64(size))
		return nil
	}
	start, n := int64(0), size
	if p := it.sec.Partial; p != nil {
		start = min(p.Offset, size)
		n = min(p.Size, size-start)
	}
	if nul && n < size {
		// The NUL may lie outside the range sent.
		if nul, err = rangeHasNUL(b, bp, start, n); err != nil {
			b.Close()
			return err
		}
	}
	if nul {
		w.raw("~")
	}
	w.raw("{").num(uint64(n)).raw("}\r\n")
	if n == 0 {
		b.Close()
		return nil
	}
	dec, err := openDecoded(b, bp)
	if err != nil {
		b.Close()
		return err
	}
	if _, err := io.CopyN(io.Discard, dec, start); err != nil {
		b.Close()
		return err
	}
	if err := w.flush(); err != nil {
		b.Close()
		return err
	}
	fr.streamFrom(b, dec, n)
	return nil
}

// nulReplacer stands in for NUL, which a plain literal must not carry
// (RFC 3516 4.2), in BODY sections of a message appended as literal8:
// the size stays the same, so the literal announced before reading the
// body stays right. 0x80 is what Dovecot sends.
type nulReplacer struct{ w io.Writer }

func (n nulReplacer) Write(p []byte) (int, error) {
	i := bytes.IndexByte(p, 0)
	if i < 0 {
		return n.w.Write(p)
	}
	q := bytes.Clone(p)
	for ; i >= 0; i = bytes.IndexByte(q, 0) {
		q[i] = 0x80
	}
	return n.w.Write(q)
}
