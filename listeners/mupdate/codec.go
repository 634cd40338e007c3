// Package mupdate speaks MUPDATE (RFC 3656) the way Cyrus IMAP 3.6.1 does:
// the wire codec shared by server and client, the server session, and the
// client used by replicas, backend pushers and tests.
//
// The wire behaviour follows shared/docs/mupdate-protocol.md; section
// numbers in comments refer to that document.
package mupdate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Default limits (section 1.4, 1.5: Cyrus maxword, maxquoted, maxliteral).
const (
	defaultMaxString  = 131072
	defaultMaxLine    = 1 << 20
	defaultMaxDiscard = 16 << 20
)

// Limits bound what a Reader accepts.
type Limits struct {
	MaxString  int   // longest word, quoted string or literal; default 131072 (Cyrus maxword/maxquoted/maxliteral)
	MaxLine    int   // longest command or response line including all its literals; default 1 MiB
	MaxDiscard int64 // largest amount of input read and thrown away to recover from one bad line; default 16 MiB
}

func (l Limits) withDefaults() Limits {
	if l.MaxString <= 0 {
		l.MaxString = defaultMaxString
	}
	if l.MaxLine <= 0 {
		l.MaxLine = defaultMaxLine
	}
	if l.MaxDiscard <= 0 {
		l.MaxDiscard = defaultMaxDiscard
	}
	return l
}

// Texts of the BAD replies the Reader produces (section 8).
const (
	textNeedCommand  = "Need command"
	textNullCommand  = "Null command"
	textMissing      = "Missing arguments"
	textExtra        = "Extra arguments"
	textUnrecognized = "Unrecognized command"
	textBadlyFormed  = "Badly formed arguments"
)

// ProtocolError is a reply the server sends for bad input: `<Tag> BAD "<Text>"`,
// or `* BAD "<Text>"` when Tag is empty. The Reader has already consumed the
// rest of the offending line (skipping {n+} literals in it), so the
// connection stays usable.
type ProtocolError struct {
	Tag  string // empty for untagged "* BAD"
	Text string // e.g. "Need command", "Null command", "Missing arguments", "Extra arguments", "Unrecognized command", "Badly formed arguments"
}

func (e *ProtocolError) Error() string {
	if e.Tag == "" {
		return "mupdate: protocol error: " + e.Text
	}
	return "mupdate: protocol error in command " + e.Tag + ": " + e.Text
}

// ErrFatal (wrapped) means the input cannot be resynchronised, e.g. a {n+}
// literal larger than MaxDiscard; the server says BYE and closes.
var ErrFatal = errors.New("mupdate: unrecoverable input")

// errMalformed (wrapped) is returned by ReadResponse for a server line that
// does not parse; a Cyrus client gives up on the connection there too.
var errMalformed = errors.New("malformed response")

// Command names as returned by ReadHead (upper case).
const (
	cmdActivate     = "ACTIVATE"
	cmdAuthenticate = "AUTHENTICATE"
	cmdCompress     = "COMPRESS"
	cmdDeactivate   = "DEACTIVATE"
	cmdDelete       = "DELETE"
	cmdFind         = "FIND"
	cmdList         = "LIST"
	cmdLogout       = "LOGOUT"
	cmdNoop         = "NOOP"
	cmdReserve      = "RESERVE"
	cmdStartTLS     = "STARTTLS"
	cmdUpdate       = "UPDATE"
	cmdXUpdate      = "XUPDATE" // Rookery's resumable UPDATE: epoch, seq
)

// Response kinds.
const (
	kindMailbox = "MAILBOX"
	kindReserve = "RESERVE"
	kindDelete  = "DELETE"
	kindOK      = "OK"
	kindNO      = "NO"
	kindBAD     = "BAD"
	kindBYE     = "BYE"
)

// maxUpdateHosts is the number of PARTIAL-UPDATE host arguments Cyrus takes
// (section 3.10).
const maxUpdateHosts = 30

// Reader decodes MUPDATE commands (server side) or responses (client side)
// from a stream. It is not safe for concurrent use.
type Reader struct {
	br      *bufio.Reader
	lim     Limits
	cont    func() error
	scratch []byte // string being decoded
	raw     []byte // raw text of a status line (ReadResponse)
	inLine  bool   // a line has been started and its end not yet consumed
	n       int64  // bytes of the current line consumed so far
}

// NewReader returns a Reader on r; zero fields of lim take the defaults.
func NewReader(r io.Reader, lim Limits) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 64<<10), lim: lim.withDefaults()}
}

// SetContinuation sets what happens when a synchronising literal {n} (n
// within limits) is announced, before its payload is read: the server writes
// "+ go ahead\r\n" and flushes.
func (r *Reader) SetContinuation(fn func() error) { r.cont = fn }

// eofErr turns an end of input in the middle of a line into
// io.ErrUnexpectedEOF, so that only a clean end between lines reads as io.EOF.
func (r *Reader) eofErr(err error) error {
	if err == io.EOF && r.inLine {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (r *Reader) peek() (byte, error) {
	b, err := r.br.Peek(1)
	if err != nil {
		return 0, r.eofErr(err)
	}
	return b[0], nil
}

// skip consumes n bytes that are already buffered (seen through peek or chunk).
func (r *Reader) skip(n int) {
	r.br.Discard(n) //nolint:errcheck // the bytes are buffered
	r.n += int64(n)
}

// skipN consumes n bytes, reading them if needed.
func (r *Reader) skipN(n int64) error {
	for n > 0 {
		step := n
		if step > 1<<30 {
			step = 1 << 30
		}
		d, err := r.br.Discard(int(step))
		r.n += int64(d)
		n -= int64(d)
		if err != nil {
			return r.eofErr(err)
		}
	}
	return nil
}

// chunk returns the buffered input, reading more if nothing is buffered. It
// never waits for more bytes than the peer has already sent.
func (r *Reader) chunk() ([]byte, error) {
	n := r.br.Buffered()
	if n == 0 {
		if _, err := r.br.Peek(1); err != nil {
			return nil, r.eofErr(err)
		}
		n = r.br.Buffered()
	}
	b, _ := r.br.Peek(n)
	return b, nil
}

// startLine begins a new line: whatever is left of the previous one is
// discarded first, and a clean end of input is reported as io.EOF.
func (r *Reader) startLine() error {
	if err := r.discard(); err != nil {
		return err
	}
	r.n = 0
	if _, err := r.br.Peek(1); err != nil {
		return err
	}
	r.inLine = true
	return nil
}

// isWordDelim reports the bytes that end a Cyrus getword: C isspace, parens
// and the double quote (section 1.3).
func isWordDelim(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\v', '\f', '\r', '(', ')', '"':
		return true
	}
	return false
}

// readWord reads bytes up to a word delimiter, which is left unread. The
// word is in r.scratch; tooLong means it went over max and was cut short.
func (r *Reader) readWord(max int) (word []byte, tooLong bool, err error) {
	r.scratch = r.scratch[:0]
	for {
		data, err := r.chunk()
		if err != nil {
			return nil, false, err
		}
		i := 0
		for i < len(data) && !isWordDelim(data[i]) {
			i++
		}
		if len(r.scratch)+i > max {
			r.skip(i)
			return nil, true, nil
		}
		r.scratch = append(r.scratch, data[:i]...)
		r.skip(i)
		if i < len(data) {
			return r.scratch, false, nil
		}
	}
}

func (r *Reader) wordMax() int {
	if r.lim.MaxLine < r.lim.MaxString {
		return r.lim.MaxLine
	}
	return r.lim.MaxString
}

// fail finishes the current line and returns the BAD reply for it. A
// failure to discard (end of input, ErrFatal) wins over the reply.
func (r *Reader) fail(tag, text string) error {
	if err := r.discard(); err != nil {
		return err
	}
	return &ProtocolError{Tag: tag, Text: text}
}

// ReadHead reads a tag and a command name (the first step of Cyrus's docmd).
// Errors: *ProtocolError untagged "Need command" (tag not followed by exactly
// one space; empty line; line starting with '(' or '"'; empty tag), tagged
// "Null command" (empty name), tagged "Unrecognized command" (name longer
// than MaxString); io.EOF at a clean end of input. After ReadHead the caller
// either calls ReadArgs or DiscardLine. An unfinished previous line is
// discarded first.
func (r *Reader) ReadHead() (tag, name string, err error) {
	if err := r.startLine(); err != nil {
		return "", "", err
	}
	w, long, err := r.readWord(r.wordMax())
	if err != nil {
		return "", "", err
	}
	if long {
		// Cyrus kills the whole process here (section 4.7).
		return "", "", r.fail("", textNeedCommand)
	}
	c, err := r.peek()
	if err != nil {
		return "", "", err
	}
	// Cyrus would accept an empty tag followed by a space; its replies would
	// then start with a space. Nobody sends that, and "* BAD" is clearer.
	if c != ' ' || len(w) == 0 {
		return "", "", r.fail("", textNeedCommand)
	}
	tag = string(w)
	r.skip(1)
	w, long, err = r.readWord(r.wordMax())
	if err != nil {
		return "", "", err
	}
	if long {
		return "", "", r.fail(tag, textUnrecognized)
	}
	if len(w) == 0 {
		return "", "", r.fail(tag, textNullCommand)
	}
	return tag, commandName(w), nil
}

// commandName upper-cases a command name (ASCII only, like Cyrus), without
// allocating for the known ones.
func commandName(w []byte) string {
	for _, known := range [...]string{cmdActivate, cmdFind, cmdNoop, cmdReserve, cmdDelete,
		cmdDeactivate, cmdList, cmdUpdate, cmdAuthenticate, cmdLogout, cmdStartTLS, cmdCompress, cmdXUpdate} {
		if equalFoldASCII(w, known) {
			return known
		}
	}
	return upperASCII(w)
}

// equalFoldASCII compares w with the upper-case ASCII string s, ignoring
// ASCII case in w.
func equalFoldASCII(w []byte, s string) bool {
	if len(w) != len(s) {
		return false
	}
	for i := range len(w) {
		c := w[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func upperASCII(w []byte) string {
	b := make([]byte, len(w))
	for i, c := range w {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		b[i] = c
	}
	return string(b)
}

// strStatus is the outcome of readString.
type strStatus int

const (
	strOK        strStatus = iota
	strBad                 // not a valid string; the rest of the line is still unread
	strBadEnded            // not a valid string, and the line already ended ({n} refused)
	strBadNoData           // like strBad, but nothing was decoded (Cyrus's empty buffer)
)

// readString reads a quoted string or a literal (Cyrus getxstring with
// quoted|literal, section 1.4, 1.5). On strOK the value is in r.scratch; on
// strBad r.scratch holds what was decoded before the failure, which decides
// between two of Cyrus's replies for UPDATE. Errors are I/O errors, ErrFatal
// and the continuation's error.
func (r *Reader) readString() ([]byte, strStatus, error) {
	r.scratch = r.scratch[:0]
	c, err := r.peek()
	if err != nil {
		return nil, strBad, err
	}
	switch c {
	case '"':
		r.skip(1)
		return r.readQuoted()
	case '{':
		r.skip(1)
		return r.readLiteral()
	}
	return nil, strBadNoData, nil
}

// budget is the longest string the current line still has room for.
func (r *Reader) budget() int {
	room := int64(r.lim.MaxLine) - r.n
	if room < int64(r.lim.MaxString) {
		if room < 0 {
			return 0
		}
		return int(room)
	}
	return r.lim.MaxString
}

func (r *Reader) readQuoted() ([]byte, strStatus, error) {
	max := r.budget()
	for {
		data, err := r.chunk()
		if err != nil {
			return nil, strBad, err
		}
		i := 0
	scan:
		for ; i < len(data); i++ {
			switch data[i] {
			case '"', '\\', '\r', '\n', 0:
				break scan
			}
		}
		if len(r.scratch)+i > max {
			// Cyrus exits on a quoted string over maxquoted (section 4.7).
			keep := max - len(r.scratch)
			r.scratch = append(r.scratch, data[:keep]...)
			r.skip(keep)
			return r.scratch, strBad, nil
		}
		r.scratch = append(r.scratch, data[:i]...)
		r.skip(i)
		if i == len(data) {
			continue
		}
		switch data[i] {
		case '"':
			r.skip(1)
			return r.scratch, strOK, nil
		case '\\':
			r.skip(1)
			e, err := r.peek()
			if err != nil {
				return nil, strBad, err
			}
			// Cyrus would take an escaped CR or LF into the string and read
			// on past the line end; a line end always ends the line here.
			if e == '\r' || e == '\n' || e == 0 {
				return r.scratch, strBad, nil
			}
			if len(r.scratch)+1 > max {
				return r.scratch, strBad, nil
			}
			r.scratch = append(r.scratch, e)
			r.skip(1)
		default:
			// CR or LF: unterminated. NUL: Cyrus silently truncates the
			// value at it; refuse it instead, like a NUL in a literal.
			return r.scratch, strBad, nil
		}
	}
}

// maxDigits bounds the digits of a literal size; a longer run is not taken
// for a literal header at all.
const maxDigits = 64

// literalSize reads the digits of a literal header. ok is false when there
// are none or too many; the value saturates above math.MaxInt32 (overflow is
// then true).
func (r *Reader) literalSize() (n int64, overflow, ok bool, err error) {
	for digits := 0; ; digits++ {
		c, err := r.peek()
		if err != nil {
			return 0, false, false, err
		}
		if c < '0' || c > '9' {
			return n, overflow, digits > 0, nil
		}
		if digits == maxDigits {
			return 0, false, false, nil
		}
		r.skip(1)
		if !overflow {
			n = n*10 + int64(c-'0')
			if n > 1<<31-1 {
				overflow = true
			}
		}
	}
}

// literalHeader reads the rest of "{n}" or "{n+}" and its line end (CRLF or
// a bare LF) after the '{'. ok is false if it is not one; the byte that broke
// the pattern is left unread.
func (r *Reader) literalHeader() (n int64, overflow, sync, ok bool, err error) {
	n, overflow, ok, err = r.literalSize()
	if err != nil || !ok {
		return 0, false, false, false, err
	}
	c, err := r.peek()
	if err != nil {
		return 0, false, false, false, err
	}
	sync = true
	if c == '+' {
		sync = false
		r.skip(1)
		if c, err = r.peek(); err != nil {
			return 0, false, false, false, err
		}
	}
	if c != '}' {
		return 0, false, false, false, nil
	}
	r.skip(1)
	if c, err = r.peek(); err != nil {
		return 0, false, false, false, err
	}
	if c == '\r' {
		r.skip(1)
		if c, err = r.peek(); err != nil {
			return 0, false, false, false, err
		}
	}
	if c != '\n' {
		return 0, false, false, false, nil
	}
	r.skip(1)
	return n, overflow, sync, true, nil
}

func (r *Reader) readLiteral() ([]byte, strStatus, error) {
	n, overflow, sync, ok, err := r.literalHeader()
	if err != nil {
		return nil, strBad, err
	}
	if !ok {
		return nil, strBadNoData, nil
	}
	tooBig := overflow || n > int64(r.budget())
	if sync {
		if tooBig {
			// No "+ go ahead": the peer never sends the payload, so the line
			// has ended. Cyrus's recovery then eats the peer's next line
			// (section 1.5); that is not repeated here.
			r.inLine = false
			return nil, strBadEnded, nil
		}
		if r.cont != nil {
			if err := r.cont(); err != nil {
				return nil, strBad, err
			}
		}
	} else if tooBig {
		// Cyrus exits on a {n+} over maxliteral (section 1.5); skipping the
		// payload keeps this connection and every other one alive.
		if overflow || n > r.lim.MaxDiscard {
			return nil, strBad, fmt.Errorf("mupdate: literal of %d bytes over the %d byte limit: %w",
				n, r.lim.MaxDiscard, ErrFatal)
		}
		if err := r.skipN(n); err != nil {
			return nil, strBad, err
		}
		return nil, strBadNoData, nil
	}
	r.scratch = growLen(r.scratch, int(n))
	got, err := io.ReadFull(r.br, r.scratch)
	r.n += int64(got)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, strBad, err
	}
	if bytes.IndexByte(r.scratch, 0) >= 0 {
		return r.scratch, strBad, nil
	}
	return r.scratch, strOK, nil
}

// space consumes one space if it is the next byte.
func (r *Reader) space() (bool, error) {
	c, err := r.peek()
	if err != nil || c != ' ' {
		return false, err
	}
	r.skip(1)
	return true, nil
}

// lineEnd consumes CRLF or LF if it comes next (Cyrus CHECKNEWLINE); a CR
// not followed by LF is consumed and the line is then not at its end.
func (r *Reader) lineEnd() (bool, error) {
	c, err := r.peek()
	if err != nil {
		return false, err
	}
	if c == '\r' {
		r.skip(1)
		if c, err = r.peek(); err != nil {
			return false, err
		}
	}
	if c != '\n' {
		return false, nil
	}
	r.skip(1)
	r.inLine = false
	return true, nil
}

// ReadArgs parses the arguments of the command name read by ReadHead
// (section 3.1 grammar, plus Rookery's XUPDATE epoch seq): strings are quoted strings or literals only,
// separated by exactly one space, and the line ends with CRLF or LF. The
// reply texts for bad arguments are Cyrus's: an argument that is missing, or
// not a string while another argument must follow, gives "Missing
// arguments"; anything else left over or malformed gives "Extra arguments";
// an empty UPDATE host gives "Badly formed arguments". An unknown name gives
// "Unrecognized command" after discarding the line.
func (r *Reader) ReadArgs(tag, name string) ([]string, error) {
	switch name {
	case cmdAuthenticate:
		return r.fixedArgs(tag, 1, 1)
	case cmdActivate:
		return r.fixedArgs(tag, 3, 0)
	case cmdReserve, cmdDeactivate:
		return r.fixedArgs(tag, 2, 0)
	case cmdDelete, cmdFind, cmdCompress:
		return r.fixedArgs(tag, 1, 0)
	case cmdList:
		return r.fixedArgs(tag, 0, 1)
	case cmdNoop, cmdLogout, cmdStartTLS:
		return r.fixedArgs(tag, 0, 0)
	case cmdUpdate:
		return r.updateArgs(tag)
	case cmdXUpdate:
		return r.fixedArgs(tag, 2, 0)
	}
	return nil, r.fail(tag, textUnrecognized)
}

// fixedArgs follows docmd: each required argument must be preceded by a
// space, else "Missing arguments"; a bad string is followed by the check for
// the next separator, so it reads as "Missing arguments" unless it was the
// last required one; then one optional argument and the line end.
func (r *Reader) fixedArgs(tag string, required, optional int) ([]string, error) {
	args := make([]string, 0, required+optional)
	for i := range required {
		ok, err := r.space()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, r.fail(tag, textMissing)
		}
		s, st, err := r.readString()
		if err != nil {
			return nil, err
		}
		if st != strOK {
			if i < required-1 {
				return nil, r.fail(tag, textMissing)
			}
			return nil, r.fail(tag, textExtra)
		}
		args = append(args, string(s))
	}
	for range optional {
		ok, err := r.space()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		s, st, err := r.readString()
		if err != nil {
			return nil, err
		}
		if st != strOK {
			return nil, r.fail(tag, textExtra)
		}
		args = append(args, string(s))
	}
	return args, r.endArgs(tag)
}

// endArgs requires the line end after the last argument (CHECKNEWLINE).
func (r *Reader) endArgs(tag string) error {
	ok, err := r.lineEnd()
	if err != nil {
		return err
	}
	if !ok {
		return r.fail(tag, textExtra)
	}
	return nil
}

// updateArgs follows docmd's UPDATE loop: a host that decodes to nothing is
// "Badly formed arguments" (checked first, also for a bad string), the 31st
// host "Extra arguments".
func (r *Reader) updateArgs(tag string) ([]string, error) {
	var args []string
	for {
		ok, err := r.space()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		s, st, err := r.readString()
		if err != nil {
			return nil, err
		}
		if st == strBadNoData || st == strBadEnded || len(s) == 0 || s[0] == 0 {
			return nil, r.fail(tag, textBadlyFormed)
		}
		if len(args) == maxUpdateHosts || st != strOK {
			return nil, r.fail(tag, textExtra)
		}
		args = append(args, string(s))
	}
	return args, r.endArgs(tag)
}

// DiscardLine consumes the rest of the current line (Cyrus eatline): a
// {n+} literal in it is skipped whole, while a {n} literal is not continued,
// so the line ends right after its announcement. It does nothing if the
// line has already ended. More than MaxDiscard bytes give ErrFatal.
func (r *Reader) DiscardLine() error { return r.discard() }

func (r *Reader) discard() error {
	var thrown int64
	for r.inLine {
		data, err := r.chunk()
		if err != nil {
			return err
		}
		i := 0
		for i < len(data) && data[i] != '\n' && data[i] != '{' {
			i++
		}
		r.skip(i)
		thrown += int64(i)
		if thrown > r.lim.MaxDiscard {
			return fmt.Errorf("mupdate: line goes on past %d bytes: %w", r.lim.MaxDiscard, ErrFatal)
		}
		if i == len(data) {
			continue
		}
		r.skip(1)
		thrown++
		if data[i] == '\n' {
			r.inLine = false
			return nil
		}
		start := r.n
		n, overflow, sync, ok, err := r.literalHeader()
		thrown += r.n - start
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if sync {
			// Its header's line end was the end of the line: the payload
			// is not coming without a continuation.
			r.inLine = false
			return nil
		}
		if overflow || n > r.lim.MaxDiscard-thrown {
			return fmt.Errorf("mupdate: literal of %d bytes in a bad line: %w", n, ErrFatal)
		}
		if err := r.skipN(n); err != nil {
			return err
		}
		thrown += n
	}
	return nil
}

// ReadLine reads one raw line (a SASL response or challenge), bounded by
// MaxLine, and returns it without its CRLF or LF. A longer line gives
// ErrFatal. An unfinished previous line is discarded first.
func (r *Reader) ReadLine() (string, error) {
	if err := r.startLine(); err != nil {
		return "", err
	}
	r.scratch = r.scratch[:0]
	for {
		data, err := r.chunk()
		if err != nil {
			return "", err
		}
		i := bytes.IndexByte(data, '\n')
		end := i
		if i < 0 {
			end = len(data)
		}
		if len(r.scratch)+end > r.lim.MaxLine {
			return "", fmt.Errorf("mupdate: line longer than %d bytes: %w", r.lim.MaxLine, ErrFatal)
		}
		r.scratch = append(r.scratch, data[:end]...)
		r.skip(end)
		if i >= 0 {
			r.skip(1)
			r.inLine = false
			return string(bytes.TrimSuffix(r.scratch, []byte{'\r'})), nil
		}
	}
}

// hasPrefix reports whether the next line starts with one of the
// prefixes, reading no further than needed to tell (so never past a line
// end, since no prefix holds one).
func (r *Reader) hasPrefix(prefixes ...string) (bool, error) {
	if err := r.discard(); err != nil {
		return false, err
	}
	for _, p := range prefixes {
		match := true
		for i := 1; i <= len(p) && match; i++ {
			b, err := r.br.Peek(i)
			if err != nil {
				return false, err
			}
			match = b[i-1] == p[i-1]
		}
		if match {
			return true, nil
		}
	}
	return false, nil
}

// Response is one line a server sends.
type Response struct {
	Tag  string   // "*" for untagged
	Kind string   // upper-cased second word: MAILBOX, RESERVE, DELETE, OK, NO, BAD, BYE, or a capability name (AUTH, STARTTLS, COMPRESS, PARTIAL-UPDATE, or any other word)
	Args []string // MAILBOX: name, location, acl; RESERVE: name, location; DELETE: name; other kinds: each word or string after the kind, quotes removed
	Text string   // OK/NO/BAD/BYE: the single string after the status (unquoted), or the raw rest of the line if it is not a single string (e.g. `OK Begin TLS negotiation now`)
}

// malformed finishes the current line and reports a server line that does
// not parse.
func (r *Reader) malformed(what string) error {
	if err := r.discard(); err != nil {
		return err
	}
	return fmt.Errorf("mupdate: %s: %w", what, errMalformed)
}

// ReadResponse reads one server line (client side). Data lines (MAILBOX,
// RESERVE, DELETE) must be exactly as section 3.1 says; capability and status
// lines are read leniently: words, quoted strings and literals, any spacing.
// io.EOF means the server closed between lines.
func (r *Reader) ReadResponse() (*Response, error) {
	if err := r.startLine(); err != nil {
		return nil, err
	}
	w, long, err := r.readWord(r.wordMax())
	if err != nil {
		return nil, err
	}
	if long || len(w) == 0 {
		return nil, r.malformed("response without a tag")
	}
	resp := &Response{Tag: responseTag(w)}
	ok, err := r.space()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, r.malformed("response without a kind")
	}
	if w, long, err = r.readWord(r.wordMax()); err != nil {
		return nil, err
	}
	if long || len(w) == 0 {
		return nil, r.malformed("response without a kind")
	}
	resp.Kind = responseKind(w)
	switch resp.Kind {
	case kindMailbox:
		err = r.dataArgs(resp, 3)
	case kindReserve:
		err = r.dataArgs(resp, 2)
	case kindDelete:
		err = r.dataArgs(resp, 1)
	default:
		err = r.looseArgs(resp)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func responseTag(w []byte) string {
	if len(w) == 1 && w[0] == '*' {
		return "*"
	}
	return string(w)
}

func responseKind(w []byte) string {
	for _, known := range [...]string{kindMailbox, kindOK, kindReserve, kindDelete, kindNO, kindBAD, kindBYE,
		"AUTH", "STARTTLS", "COMPRESS", "PARTIAL-UPDATE"} {
		if equalFoldASCII(w, known) {
			return known
		}
	}
	return upperASCII(w)
}

// dataArgs reads the n strings of a data line, strictly.
func (r *Reader) dataArgs(resp *Response, n int) error {
	resp.Args = make([]string, 0, n)
	for range n {
		ok, err := r.space()
		if err != nil {
			return err
		}
		if !ok {
			return r.malformed(resp.Kind + " line with too few arguments")
		}
		s, st, err := r.readString()
		if err != nil {
			return err
		}
		if st != strOK {
			return r.malformed(resp.Kind + " line with a bad string")
		}
		resp.Args = append(resp.Args, string(s))
	}
	ok, err := r.lineEnd()
	if err != nil {
		return err
	}
	if !ok {
		return r.malformed(resp.Kind + " line with extra arguments")
	}
	return nil
}

// looseArgs reads the rest of a capability or status line as words, quoted
// strings and literals with any spacing, keeping the raw text for
// Response.Text.
func (r *Reader) looseArgs(resp *Response) error {
	r.raw = r.raw[:0]
	var (
		tokens   int
		isString bool // the last token was a quoted string or a literal
	)
	for {
		if len(r.raw) > r.lim.MaxLine {
			return r.malformed("response line too long")
		}
		c, err := r.peek()
		if err != nil {
			return err
		}
		switch c {
		case '\n':
			r.skip(1)
			r.inLine = false
		case '\r':
			ok, err := r.lineEnd()
			if err != nil {
				return err
			}
			if ok {
				break
			}
			// A lone CR was consumed: it starts a word.
			r.raw = append(r.raw, '\r')
			r.scratch = append(r.scratch[:0], '\r')
			if err := r.looseWord(); err != nil {
				return err
			}
			isString = false
		case ' ':
			r.skip(1)
			r.raw = append(r.raw, ' ')
			continue
		case '"':
			r.skip(1)
			if err := r.looseQuoted(); err != nil {
				return err
			}
			isString = true
		case '{':
			hdr, n, ok, err := r.peekLiteral()
			if err != nil {
				return err
			}
			if !ok {
				r.scratch = r.scratch[:0]
				if err := r.looseWord(); err != nil {
					return err
				}
				isString = false
				break
			}
			if n > int64(r.budget()) {
				return r.malformed("response literal too long")
			}
			b, _ := r.br.Peek(hdr)
			if bytes.IndexByte(b, '+') < 0 && r.cont != nil {
				if err := r.cont(); err != nil {
					return err
				}
			}
			r.raw = append(r.raw, b...)
			r.skip(hdr)
			r.scratch = growLen(r.scratch, int(n))
			got, err := io.ReadFull(r.br, r.scratch)
			r.n += int64(got)
			if err != nil {
				return r.eofErr(err)
			}
			r.raw = append(r.raw, r.scratch...)
			isString = true
		default:
			r.scratch = r.scratch[:0]
			if err := r.looseWord(); err != nil {
				return err
			}
			isString = false
		}
		if !r.inLine {
			break
		}
		resp.Args = append(resp.Args, string(r.scratch))
		tokens++
	}
	switch resp.Kind {
	case kindOK, kindNO, kindBAD, kindBYE:
		if tokens == 1 && isString {
			resp.Text = resp.Args[0]
		} else {
			resp.Text = string(bytes.TrimPrefix(r.raw, []byte{' '}))
		}
	}
	return nil
}

// growLen returns b resized to n bytes, reallocating only when needed.
func growLen(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// peekLiteral recognises a literal header ("{n}" or "{n+}" and CRLF or LF)
// at the read position without consuming anything; hdr is its length. It
// never asks for bytes past a line end, so it cannot wait for input the
// peer has no reason to send.
func (r *Reader) peekLiteral() (hdr int, n int64, ok bool, err error) {
	const (
		digits = iota
		closing
		cr
		lf
	)
	state := digits
	for i := 2; i <= maxDigits+5; i++ {
		b, err := r.br.Peek(i)
		if err != nil {
			return 0, 0, false, r.eofErr(err)
		}
		c := b[i-1]
		switch {
		case state == digits && '0' <= c && c <= '9':
			if n <= 1<<31-1 {
				n = n*10 + int64(c-'0')
			}
			continue
		case state == digits && i > 2 && c == '+':
			state = closing
			continue
		case (state == digits && i > 2 || state == closing) && c == '}':
			state = cr
			continue
		case state == cr && c == '\r':
			state = lf
			continue
		case (state == cr || state == lf) && c == '\n':
			return i, n, true, nil
		}
		return 0, 0, false, nil
	}
	return 0, 0, false, nil
}

// looseWord reads a word of a status line into r.scratch (after what is
// already there) up to a space or a line end.
func (r *Reader) looseWord() error {
	for {
		data, err := r.chunk()
		if err != nil {
			return err
		}
		i := 0
		for i < len(data) && data[i] != ' ' && data[i] != '\r' && data[i] != '\n' {
			i++
		}
		if len(r.scratch)+i > r.lim.MaxString {
			return r.malformed("response word too long")
		}
		r.scratch = append(r.scratch, data[:i]...)
		r.raw = append(r.raw, data[:i]...)
		r.skip(i)
		if i < len(data) {
			return nil
		}
	}
}

// looseQuoted reads a quoted string after its opening quote into r.scratch,
// recording the raw bytes; a line end before the closing quote ends it.
func (r *Reader) looseQuoted() error {
	r.scratch = r.scratch[:0]
	r.raw = append(r.raw, '"')
	for {
		c, err := r.peek()
		if err != nil {
			return err
		}
		switch c {
		case '"':
			r.skip(1)
			r.raw = append(r.raw, '"')
			return nil
		case '\r', '\n':
			return nil
		case '\\':
			r.skip(1)
			r.raw = append(r.raw, '\\')
			if c, err = r.peek(); err != nil {
				return err
			}
			if c == '\r' || c == '\n' {
				return nil
			}
		}
		r.skip(1)
		r.raw = append(r.raw, c)
		r.scratch = append(r.scratch, c)
		if len(r.scratch) > r.lim.MaxString {
			return r.malformed("response string too long")
		}
	}
}

// Writer encodes MUPDATE lines into a buffer; Flush sends them. Write
// errors are kept and returned by Flush. It is not safe for concurrent use.
type Writer struct {
	bw  *bufio.Writer
	out *stickyWriter
	num [20]byte
}

// stickyWriter remembers the first error of the writer under the buffer,
// so a long answer can stop as soon as the peer is gone.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.err = err
	return n, err
}

// NewWriter returns a buffered Writer on w.
func NewWriter(w io.Writer) *Writer {
	out := &stickyWriter{w: w}
	return &Writer{bw: bufio.NewWriterSize(out, 64<<10), out: out}
}

// Err is the first error from the connection under the buffer, if any.
func (w *Writer) Err() error { return w.out.err }

// Flush sends everything buffered.
func (w *Writer) Flush() error { return w.bw.Flush() }

// Buffered returns the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

// literal writes s as a non-synchronising literal, the only kind a Cyrus
// peer may be sent (section 1.7).
func (w *Writer) literal(s string) {
	w.bw.WriteByte('{')
	w.bw.Write(strconv.AppendInt(w.num[:0], int64(len(s)), 10))
	w.bw.WriteString("+}\r\n")
	w.bw.WriteString(s)
}

// quoted writes s as a quoted string; the caller has made sure s has no CR,
// LF or NUL.
func (w *Writer) quoted(s string) {
	w.bw.WriteByte('"')
	for {
		i := 0
		for i < len(s) && s[i] != '"' && s[i] != '\\' {
			i++
		}
		w.bw.WriteString(s[:i])
		if i == len(s) {
			break
		}
		w.bw.WriteByte('\\')
		w.bw.WriteByte(s[i])
		s = s[i+1:]
	}
	w.bw.WriteByte('"')
}

// text writes human-readable text with CR, LF and NUL turned into spaces,
// so that it can never end or corrupt the line.
func (w *Writer) text(s string, quote bool) {
	if quote {
		w.bw.WriteByte('"')
	}
	for {
		i := 0
		for i < len(s) && s[i] != '\r' && s[i] != '\n' && s[i] != 0 && !(quote && (s[i] == '"' || s[i] == '\\')) {
			i++
		}
		w.bw.WriteString(s[:i])
		if i == len(s) {
			break
		}
		switch s[i] {
		case '"', '\\':
			w.bw.WriteByte('\\')
			w.bw.WriteByte(s[i])
		default:
			w.bw.WriteByte(' ')
		}
		s = s[i+1:]
	}
	if quote {
		w.bw.WriteByte('"')
	}
}

// Entry writes a data line, every argument as a {n+} literal exactly like
// Cyrus (section 1.6): kind "MAILBOX" carries name, location and acl,
// "RESERVE" name and location.
func (w *Writer) Entry(tag, kind, name, location, acl string) {
	w.bw.WriteString(tag)
	w.bw.WriteByte(' ')
	w.bw.WriteString(kind)
	w.bw.WriteByte(' ')
	w.literal(name)
	w.bw.WriteByte(' ')
	w.literal(location)
	if kind == kindMailbox {
		w.bw.WriteByte(' ')
		w.literal(acl)
	}
	w.bw.WriteString("\r\n")
}

// Delete writes "<tag> DELETE {n+}\r\nname\r\n".
func (w *Writer) Delete(tag, name string) {
	w.bw.WriteString(tag)
	w.bw.WriteString(" DELETE ")
	w.literal(name)
	w.bw.WriteString("\r\n")
}

// Status writes `<tag> <status> "<text>"`, the form every Cyrus client
// expects (section 1.7); '"' and '\' are escaped, CR, LF and NUL become
// spaces.
func (w *Writer) Status(tag, status, text string) {
	w.bw.WriteString(tag)
	w.bw.WriteByte(' ')
	w.bw.WriteString(status)
	w.bw.WriteByte(' ')
	w.text(text, true)
	w.bw.WriteString("\r\n")
}

// StatusRaw writes `<tag> <status> <text>` with the text unquoted, for the
// few replies Cyrus sends that way (e.g. "NO Client canceled
// authentication"); CR, LF and NUL become spaces.
func (w *Writer) StatusRaw(tag, status, text string) {
	w.bw.WriteString(tag)
	w.bw.WriteByte(' ')
	w.bw.WriteString(status)
	w.bw.WriteByte(' ')
	w.text(text, false)
	w.bw.WriteString("\r\n")
}

// Line writes s followed by CRLF (greeting lines, SASL challenges).
func (w *Writer) Line(s string) {
	w.bw.WriteString(s)
	w.bw.WriteString("\r\n")
}

// maxQuoted is the longest argument Command sends as a quoted string.
const maxQuoted = 1024

// Command writes a client command: each argument as a quoted string when it
// is short and has no CR, LF or NUL, else as a {n+} literal.
func (w *Writer) Command(tag, name string, args ...string) {
	w.bw.WriteString(tag)
	w.bw.WriteByte(' ')
	w.bw.WriteString(name)
	for _, a := range args {
		w.bw.WriteByte(' ')
		if quotable(a) {
			w.quoted(a)
		} else {
			w.literal(a)
		}
	}
	w.bw.WriteString("\r\n")
}

func quotable(s string) bool {
	if len(s) > maxQuoted {
		return false
	}
	for i := range len(s) {
		switch s[i] {
		case '\r', '\n', 0:
			return false
		}
	}
	return true
}
