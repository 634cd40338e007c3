package imap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Error is a command failure with its reply: NO (or BAD when Bad) with an
// optional response code. Handlers return it; anything else becomes a
// generic NO and a log line.
type Error struct {
	Bad  bool
	Code string // e.g. "TRYCREATE", without brackets
	Text string
	// Cause is why, for the log; never sent to the client.
	Cause error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return "imap: " + e.Text + ": " + e.Cause.Error()
	}
	return "imap: " + e.Text
}

func (e *Error) Unwrap() error { return e.Cause }

// because returns a copy of e (a NO or BAD) that keeps cause for the log.
func because(e error, cause error) error {
	ie := *e.(*Error)
	ie.Cause = cause
	return &ie
}

func no(text string) error             { return &Error{Text: text} }
func noCode(code, text string) error   { return &Error{Code: code, Text: text} }
func bad(text string) error            { return &Error{Bad: true, Text: text} }
func badf(f string, args ...any) error { return &Error{Bad: true, Text: fmt.Sprintf(f, args...)} }

// errLineTooLong ends the connection: what follows cannot be framed.
var errLineTooLong = errors.New("imap: command line too long")

// reader frames and parses commands. A command is a line, or several when
// literals split it; parse errors stick (r.err) so a handler is a straight
// chain of calls checked once with end.
type reader struct {
	br      *bufio.Reader
	line    []byte // current line without its CRLF
	pos     int
	maxLine int
	// maxString caps literals parsed as strings (mailbox names, search
	// keys); messages go through literal with their own limit.
	maxString int64
	// maxDiscard caps how much of a refused non-synchronising literal is
	// read and dropped to stay in step; beyond it the connection ends.
	maxDiscard int64
	// cont asks the client for a synchronising literal.
	cont func() error
	err  error
	// discard is the length of a refused non-synchronising literal still
	// to be skipped.
	discard int64
	// depth counts the nested constructs being parsed (see enter).
	depth int
}

// maxNesting bounds how deeply a command's constructs nest (SEARCH
// parentheses, NOT and OR), so that the memory and stack a command takes
// stay in proportion to its length and not to its nesting. 64 is far
// beyond what clients send (a search built from a UI nests a handful of
// levels) and keeps a parsed command small.
const maxNesting = 64

// enter opens one nesting level; the caller calls leave when it returns,
// whether enter failed or not.
func (r *reader) enter() bool {
	r.depth++
	if r.depth > maxNesting && r.err == nil {
		r.fail(badf("Too deeply nested (over %d levels)", maxNesting))
	}
	return r.err == nil
}

func (r *reader) leave() { r.depth-- }

// readLine reads the next line into r.line.
func (r *reader) readLine() error {
	r.line = r.line[:0]
	r.pos = 0
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(r.line)+len(chunk) > r.maxLine {
			return errLineTooLong
		}
		r.line = append(r.line, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
	r.line = bytes.TrimSuffix(r.line, []byte{'\n'})
	r.line = bytes.TrimSuffix(r.line, []byte{'\r'})
	return nil
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *reader) syntax(what string) {
	r.fail(badf("Syntax error: %s", what))
}

func (r *reader) peek() byte {
	if r.err != nil || r.pos >= len(r.line) {
		return 0
	}
	return r.line[r.pos]
}

func (r *reader) atEOL() bool { return r.pos >= len(r.line) }

// sp consumes one space.
func (r *reader) sp() {
	if r.peek() != ' ' {
		r.syntax("expected a space")
		return
	}
	r.pos++
}

// maybeSP consumes a space if there is one.
func (r *reader) maybeSP() bool {
	if r.peek() == ' ' {
		r.pos++
		return true
	}
	return false
}

func (r *reader) expect(c byte) {
	if r.peek() != c {
		r.syntax(fmt.Sprintf("expected %q", c))
		return
	}
	r.pos++
}

func (r *reader) maybe(c byte) bool {
	if r.peek() == c && c != 0 {
		r.pos++
		return true
	}
	return false
}

// end checks that the command is complete and returns the first error.
func (r *reader) end() error {
	if r.err == nil && !r.atEOL() {
		r.syntax("unexpected " + strconv.Quote(string(r.line[r.pos:min(len(r.line), r.pos+20)])))
	}
	return r.err
}

func isAtomChar(c byte, bracket bool) bool {
	switch c {
	case '(', ')', '{', ' ', '%', '*', '"', '\\':
		return false
	case ']':
		return bracket
	}
	return c > 0x20 && c < 0x7f
}

// atomChars reads ATOM-CHARs (and ']' if bracket).
func (r *reader) atomChars(bracket bool) string {
	if r.err != nil {
		return ""
	}
	start := r.pos
	for r.pos < len(r.line) && isAtomChar(r.line[r.pos], bracket) {
		r.pos++
	}
	if r.pos == start {
		r.syntax("expected an atom")
		return ""
	}
	return string(r.line[start:r.pos])
}

func (r *reader) atom() string { return r.atomChars(false) }

// searchString reads a SEARCH string argument: an astring whose atom
// form may also hold 8-bit bytes, as clients send raw UTF-8 after
// CHARSET UTF-8 (Cyrus and Dovecot take it too).
func (r *reader) searchString() string {
	switch r.peek() {
	case '"', '{':
		return r.str()
	}
	if r.err != nil {
		return ""
	}
	start := r.pos
	for r.pos < len(r.line) && (isAtomChar(r.line[r.pos], true) || r.line[r.pos] >= 0x80) {
		r.pos++
	}
	if r.pos == start {
		r.syntax("expected a string")
		return ""
	}
	return string(r.line[start:r.pos])
}

// astring reads an atom (']' allowed), quoted string or literal.
func (r *reader) astring() string {
	switch r.peek() {
	case '"', '{':
		return r.str()
	}
	return r.atomChars(true)
}

// str reads a quoted string or a literal.
func (r *reader) str() string {
	switch r.peek() {
	case '"':
		return r.quoted()
	case '{':
		b, ok := r.smallLiteral()
		if !ok {
			return ""
		}
		return string(b)
	}
	r.syntax("expected a string")
	return ""
}

func (r *reader) quoted() string {
	r.expect('"')
	var sb strings.Builder
	for r.err == nil {
		if r.pos >= len(r.line) {
			r.syntax("unterminated quoted string")
			return ""
		}
		c := r.line[r.pos]
		r.pos++
		switch c {
		case '"':
			return sb.String()
		case '\\':
			if r.pos >= len(r.line) {
				r.syntax("unterminated quoted string")
				return ""
			}
			c = r.line[r.pos]
			r.pos++
			if c != '"' && c != '\\' {
				r.syntax("bad escape in quoted string")
				return ""
			}
		}
		sb.WriteByte(c)
	}
	return ""
}

// literalHeader parses "{n}" or "{n+}" ending the line.
func (r *reader) literalHeader() (n int64, nonSync bool, ok bool) {
	r.expect('{')
	start := r.pos
	for r.pos < len(r.line) && r.line[r.pos] >= '0' && r.line[r.pos] <= '9' {
		r.pos++
	}
	n, err := strconv.ParseInt(string(r.line[start:r.pos]), 10, 64)
	if err != nil && r.err == nil {
		r.syntax("bad literal length")
	}
	nonSync = r.maybe('+')
	r.expect('}')
	if r.err == nil && !r.atEOL() {
		r.syntax("literal must end the line")
	}
	return n, nonSync, r.err == nil
}

// refuse records a literal that will not be read: a non-synchronising one
// is skipped by skip; the client does not send a synchronising one.
func (r *reader) refuse(n int64, nonSync bool, err error) {
	if nonSync {
		r.discard = n
	}
	r.fail(err)
}

func (r *reader) smallLiteral() ([]byte, bool) {
	n, nonSync, ok := r.literalHeader()
	if !ok {
		return nil, false
	}
	if n > r.maxString {
		r.refuse(n, nonSync, &Error{Code: "TOOBIG", Text: fmt.Sprintf("Literal over %d bytes", r.maxString)})
		return nil, false
	}
	if !nonSync {
		if err := r.cont(); err != nil {
			r.fail(err)
			return nil, false
		}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.br, b); err != nil {
		r.fail(err)
		return nil, false
	}
	if err := r.readLine(); err != nil {
		r.fail(err)
		return nil, false
	}
	return b, true
}

// literal opens a message literal of at most limit bytes. The caller
// reads it (the reader is drained by resume if not) and then calls
// resume to go on with the command.
func (r *reader) literal(limit int64) (io.Reader, int64) {
	if r.peek() != '{' {
		r.syntax("expected a literal")
		return nil, 0
	}
	n, nonSync, ok := r.literalHeader()
	if !ok {
		return nil, 0
	}
	if n > limit {
		r.refuse(n, nonSync, &Error{Code: "TOOBIG", Text: fmt.Sprintf("Message over %d bytes", limit)})
		return nil, 0
	}
	if !nonSync {
		if err := r.cont(); err != nil {
			r.fail(err)
			return nil, 0
		}
	}
	r.discard = n // what resume skips if the caller stops early
	return &countingReader{r: r, n: n}, n
}

type countingReader struct {
	r *reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.br.Read(p)
	c.n -= int64(k)
	c.r.discard -= int64(k)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

// resume skips what is left of a message literal and reads the line
// after it.
func (r *reader) resume() {
	if r.err != nil {
		return
	}
	if r.discard > 0 {
		if _, err := r.br.Discard(int(r.discard)); err != nil {
			r.fail(err)
			return
		}
	}
	r.discard = 0
	if err := r.readLine(); err != nil {
		r.fail(err)
	}
}

// skip drops the rest of a failed command: the rest of the line and any
// non-synchronising literals (with the lines after them) it announces.
// It fails only when the connection cannot be kept in step.
func (r *reader) skip() error {
	for {
		n := r.discard
		r.discard = 0
		if n == 0 {
			rest := r.line[min(r.pos, len(r.line)):]
			var nonSync bool
			n, nonSync = trailingLiteral(rest)
			if !nonSync {
				return nil
			}
		}
		if n > r.maxDiscard {
			return fmt.Errorf("imap: refusing to skip a %d-byte literal", n)
		}
		if _, err := r.br.Discard(int(n)); err != nil {
			return err
		}
		if err := r.readLine(); err != nil {
			return err
		}
	}
}

// trailingLiteral reports a "{n+}" at the end of b.
func trailingLiteral(b []byte) (int64, bool) {
	if !bytes.HasSuffix(b, []byte("+}")) {
		return 0, false
	}
	i := bytes.LastIndexByte(b, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b[i+1:len(b)-2]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// number reads a number (nz if nonZero).
func (r *reader) number(nonZero bool) uint64 {
	if r.err != nil {
		return 0
	}
	start := r.pos
	for r.pos < len(r.line) && r.line[r.pos] >= '0' && r.line[r.pos] <= '9' {
		r.pos++
	}
	n, err := strconv.ParseUint(string(r.line[start:r.pos]), 10, 64)
	if err != nil || (nonZero && n == 0) {
		r.syntax("expected a number")
		return 0
	}
	return n
}

// list calls item for each element of a parenthesised, space-separated
// list.
func (r *reader) list(item func()) {
	r.expect('(')
	if r.maybe(')') {
		return
	}
	for r.err == nil {
		item()
		if r.maybe(')') {
			return
		}
		r.sp()
	}
}

// flag reads a flag: "\Name" or a keyword atom.
func (r *reader) flag() string {
	if r.maybe('\\') {
		if r.maybe('*') {
			return `\*`
		}
		return `\` + r.atom()
	}
	return r.atom()
}

// flagList reads a parenthesised list of flags. A space before the ')'
// is let pass: a Cyrus 3.6 frontend copying a message across backends
// sends its APPEND with one after every flag, "(\Flagged )", and its
// own backends take it.
func (r *reader) flagList() []string {
	var flags []string
	r.expect('(')
	for r.err == nil && !r.maybe(')') {
		flags = append(flags, r.flag())
		if !r.maybeSP() && r.peek() != ')' && r.err == nil {
			r.syntax("expected a space")
		}
	}
	return flags
}

// dateTime reads a quoted date-time ("02-Jan-2006 15:04:05 -0700").
func (r *reader) dateTime() time.Time {
	s := r.quoted()
	if r.err != nil {
		return time.Time{}
	}
	t, err := time.Parse("_2-Jan-2006 15:04:05 -0700", s)
	if err != nil {
		r.syntax("bad date-time")
	}
	return t
}

// date reads a date ("2-Jan-2006"), quoted or not.
func (r *reader) date() time.Time {
	var s string
	if r.peek() == '"' {
		s = r.quoted()
	} else {
		s = r.atom()
	}
	if r.err != nil {
		return time.Time{}
	}
	t, err := time.Parse("_2-Jan-2006", strings.TrimSpace(s))
	if err != nil {
		if t, err = time.Parse("2-Jan-2006", s); err != nil {
			r.syntax("bad date")
		}
	}
	return t
}

// seqSetText reads a sequence set's text.
func (r *reader) seqSetText() string {
	if r.err != nil {
		return ""
	}
	start := r.pos
	for r.pos < len(r.line) {
		c := r.line[r.pos]
		if (c < '0' || c > '9') && c != ':' && c != ',' && c != '*' && c != '$' {
			break
		}
		r.pos++
	}
	if r.pos == start {
		r.syntax("expected a sequence set")
	}
	return string(r.line[start:r.pos])
}

// writer builds replies. Only the session goroutine writes.
type writer struct {
	bw *bufio.Writer
	// open is set while a response is partly written (a FETCH streaming a
	// body): nothing else may be written into it, and an error then ends
	// the connection instead of being answered.
	open bool
}

func (w *writer) raw(s string) *writer {
	_, _ = w.bw.WriteString(s)
	return w
}

func (w *writer) bytes(b []byte) *writer {
	_, _ = w.bw.Write(b)
	return w
}

func (w *writer) num(n uint64) *writer {
	var buf [20]byte
	_, _ = w.bw.Write(strconv.AppendUint(buf[:0], n, 10))
	return w
}

func (w *writer) flush() error { return w.bw.Flush() }

// str writes s as a quoted string when it can be one, else a literal.
func (w *writer) str(s string) *writer {
	w.bw.Write(appendString(nil, s))
	return w
}

// astr writes s as an atom when it can be one, else as str does.
func (w *writer) astr(s string) *writer {
	if isAtom(s) {
		return w.raw(s)
	}
	return w.str(s)
}

func isAtom(s string) bool {
	if s == "" || strings.EqualFold(s, "NIL") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAtomChar(s[i], false) {
			return false
		}
	}
	return true
}

// appendString appends s as a quoted string, or as a literal when it has
// bytes a quoted string cannot carry.
func appendString(dst []byte, s string) []byte {
	quotable := len(s) < 1024
	for i := 0; i < len(s) && quotable; i++ {
		c := s[i]
		if c == 0 || c == '\r' || c == '\n' || c >= 0x80 {
			quotable = false
		}
	}
	if !quotable {
		dst = append(dst, '{')
		dst = strconv.AppendInt(dst, int64(len(s)), 10)
		dst = append(dst, "}\r\n"...)
		return append(dst, s...)
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

// appendNString appends NIL for "", else as appendString.
func appendNString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "NIL"...)
	}
	return appendString(dst, s)
}

// status writes a tagged or untagged status line.
func (w *writer) status(tag, kind, code, text string) {
	w.raw(tag).raw(" ").raw(kind).raw(" ")
	if code != "" {
		w.raw("[").raw(code).raw("] ")
	}
	w.raw(text).raw("\r\n")
}
