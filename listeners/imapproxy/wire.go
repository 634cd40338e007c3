package imapproxy

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// IMAP is read in "pieces": the bytes up to a CRLF. A piece that ends with a
// literal marker ({n}, {n+}) is followed by n bytes and another piece of
// the same command or response; any other piece ends it. Only a marker at
// the very end of a piece is a literal: a quoted string cannot hold one
// there, and '{' is not an atom character.

var (
	errLineTooLong = errors.New("imapproxy: line too long")
	errSyntax      = errors.New("imapproxy: syntax error")
	// errBadName is a mailbox name internal/mboxname refuses.
	errBadName = errors.New("imapproxy: invalid mailbox name")
)

// pieceReader reads pieces of at most max bytes from r.
type pieceReader struct {
	r   *bufio.Reader
	buf []byte // assembles a piece longer than r's buffer
	max int
	// pieces counts the pieces returned, so a caller can tell whether
	// anything at all came back since it last looked.
	pieces int
}

// next returns the next piece without its line ending (CRLF or a bare LF).
// The slice is only valid until the next read from r. A piece over max
// bytes is skipped to its end and errLineTooLong returned; whether a
// literal follows it is then unknown, so callers must drop the connection.
func (p *pieceReader) next() ([]byte, error) {
	p.buf = p.buf[:0]
	for {
		chunk, err := p.r.ReadSlice('\n')
		switch {
		case err == nil:
			line := chunk
			if len(p.buf) > 0 {
				p.buf = append(p.buf, chunk...)
				line = p.buf
			}
			line = trimEOL(line)
			if len(line) > p.max {
				return nil, errLineTooLong
			}
			p.pieces++
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if len(p.buf)+len(chunk) > p.max+2 {
				return nil, p.skipLine()
			}
			p.buf = append(p.buf, chunk...)
		default:
			return nil, err
		}
	}
}

func (p *pieceReader) skipLine() error {
	for {
		_, err := p.r.ReadSlice('\n')
		if err == nil {
			return errLineTooLong
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

// literal describes a literal marker at the end of a piece.
type literal struct {
	size  int64
	sync  bool // {n}: the sender waits for a continuation request
	start int  // index of '{' in the piece
}

// maxMarker is the longest marker: '{', 19 digits, '+', '}'.
const maxMarker = 22

// literalAt reports the literal marker ending piece, if any.
func literalAt(piece []byte) (literal, bool) {
	n := len(piece)
	if n < 3 || piece[n-1] != '}' {
		return literal{}, false
	}
	end := n - 1
	sync := true
	if piece[end-1] == '+' || piece[end-1] == '-' { // LITERAL+ and LITERAL-
		sync = false
		end--
	}
	open := bytes.LastIndexByte(piece[:end], '{')
	if open < 0 || open == end-1 || end-open > 20 {
		return literal{}, false
	}
	size, err := strconv.ParseInt(string(piece[open+1:end]), 10, 64)
	if err != nil || size < 0 {
		return literal{}, false
	}
	for _, c := range piece[open+1 : end] {
		if c < '0' || c > '9' {
			return literal{}, false
		}
	}
	return literal{size: size, sync: sync, start: open}, true
}

// appendMarker writes a literal marker of the given kind.
func appendMarker(dst []byte, size int64, sync bool) []byte {
	dst = append(dst, '{')
	dst = strconv.AppendInt(dst, size, 10)
	if !sync {
		dst = append(dst, '+')
	}
	return append(dst, '}')
}

// isAtomChar reports whether c may appear in an atom (RFC 3501 ATOM-CHAR).
func isAtomChar(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// isAstringChar adds ']' (resp-specials) to the atom characters.
func isAstringChar(c byte) bool { return c == ']' || isAtomChar(c) }

// isListChar adds the LIST wildcards to the astring characters.
func isListChar(c byte) bool { return c == '%' || c == '*' || isAstringChar(c) }

// quote makes s an IMAP string: an atom when it is one (and not NIL), else
// a quoted string. s must not hold CR, LF or NUL: client names are checked
// (internal/mboxname) and patterns quotable before they reach a backend,
// and what goes to clients from the mailbox list goes through astring.
func quote(s string) string {
	if s != "" && !strings.EqualFold(s, "NIL") {
		atom := true
		for i := 0; i < len(s); i++ {
			if !isAstringChar(s[i]) {
				atom = false
				break
			}
		}
		if atom {
			return s
		}
	}
	return quoted(s)
}

// maxQuoted is the longest string astring sends quoted.
const maxQuoted = 1024

// astring makes s an IMAP string for a client: as quote does when a quoted
// string can carry it, else a literal. Names from the mailbox list need
// it: the master may hold names from any peer.
func astring(s string) string {
	if len(s) <= maxQuoted && quotable(s) {
		return quote(s)
	}
	return "{" + strconv.Itoa(len(s)) + "}\r\n" + s
}

// quoted makes s a quoted string.
func quoted(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// quotable reports whether s can be sent as a quoted string.
func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '\r' || s[i] == '\n' || s[i] == 0 || s[i] >= 0x80 {
			return false
		}
	}
	return true
}
