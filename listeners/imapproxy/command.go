package imapproxy

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// command is a client command being read. The proxy parses only what it
// must decide on (tag, name, mailbox arguments); the rest of a proxied
// command is piped to a backend without being parsed or held in memory.
type command struct {
	s    *session
	tag  string
	name string // upper case; "UID FETCH" etc. for UID commands
	line []byte // unparsed rest of the current piece (aliases the reader's buffer)
}

// tooBigError is a literal over the limit; the client has not sent it
// (synchronising) or it has been skipped.
type tooBigError struct{ size, max int64 }

func (e *tooBigError) Error() string {
	return fmt.Sprintf("imapproxy: literal of %d bytes exceeds %d", e.size, e.max)
}

// errFatalLiteral is a non-synchronising literal too large to skip; the
// connection must be dropped.
var errFatalLiteral = errors.New("imapproxy: non-synchronising literal too large")

// parseHead reads tag and command name from a new command's first piece.
func (s *session) parseHead(piece []byte) (*command, error) {
	c := &command{s: s, line: piece}
	tag := c.token(func(b byte) bool { return b != '+' && isAstringChar(b) })
	if tag == "" {
		return c, errSyntax
	}
	c.tag = tag
	if c.sp() != nil {
		return c, errSyntax
	}
	c.name = strings.ToUpper(c.token(isAtomChar))
	if c.name == "" {
		return c, errSyntax
	}
	if c.name == "UID" {
		if c.sp() != nil {
			return c, errSyntax
		}
		sub := strings.ToUpper(c.token(isAtomChar))
		if sub == "" {
			return c, errSyntax
		}
		c.name += " " + sub
	}
	return c, nil
}

// commandLabel is a command's name as counted: one the session dispatches
// (session.unauthenticated, session.authenticated), else "OTHER".
func commandLabel(name string) string {
	switch name {
	case "CAPABILITY", "NOOP", "LOGOUT", "ID", "LOGIN", "AUTHENTICATE", "STARTTLS", "CHECK",
		"ENABLE", "NAMESPACE", "SELECT", "EXAMINE", "LIST", "XLIST", "LSUB", "CREATE", "APPEND", "STATUS",
		"GETACL", "MYRIGHTS", "LISTRIGHTS", "GETQUOTAROOT", "GETQUOTA", "DELETE", "SETACL",
		"DELETEACL", "SETQUOTA", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "CLOSE", "UNSELECT",
		"EXPUNGE", "FETCH", "STORE", "SEARCH", "SORT", "THREAD", "IDLE", "COPY", "MOVE",
		"UID FETCH", "UID STORE", "UID SEARCH", "UID SORT", "UID THREAD", "UID EXPUNGE",
		"UID COPY", "UID MOVE", "GETMETADATA", "SETMETADATA", "CANCELUPDATE", "NOTIFY":
		return name
	}
	return "OTHER"
}

// token consumes the longest run of bytes accepted by ok.
func (c *command) token(ok func(byte) bool) string {
	i := 0
	for i < len(c.line) && ok(c.line[i]) {
		i++
	}
	t := string(c.line[:i])
	c.line = c.line[i:]
	return t
}

// sp consumes one space.
func (c *command) sp() error {
	if len(c.line) == 0 || c.line[0] != ' ' {
		return errSyntax
	}
	c.line = c.line[1:]
	return nil
}

// atEnd reports whether the command has no more arguments.
func (c *command) atEnd() bool { return len(c.line) == 0 }

// end checks that the command is complete.
func (c *command) end() error {
	if !c.atEnd() {
		return errSyntax
	}
	return nil
}

// atom reads an atom.
func (c *command) atom() (string, error) {
	a := c.token(isAtomChar)
	if a == "" {
		return "", errSyntax
	}
	return a, nil
}

// astring reads an atom, a quoted string or a literal.
func (c *command) astring() (string, error) { return c.str(isAstringChar) }

// listMailbox reads a LIST pattern: an astring that may hold % and *.
func (c *command) listMailbox() (string, error) { return c.str(isListChar) }

func (c *command) str(atomChar func(byte) bool) (string, error) {
	if len(c.line) == 0 {
		return "", errSyntax
	}
	switch c.line[0] {
	case '"':
		return c.quotedString()
	case '{':
		return c.literal()
	}
	a := c.token(atomChar)
	if a == "" {
		return "", errSyntax
	}
	return a, nil
}

func (c *command) quotedString() (string, error) {
	var b strings.Builder
	for i := 1; i < len(c.line); i++ {
		switch ch := c.line[i]; ch {
		case '"':
			c.line = c.line[i+1:]
			return b.String(), nil
		case '\\':
			i++
			if i == len(c.line) || (c.line[i] != '"' && c.line[i] != '\\') {
				return "", errSyntax
			}
			b.WriteByte(c.line[i])
		default:
			b.WriteByte(ch)
		}
	}
	return "", errSyntax
}

// literal reads a literal argument into memory (bounded by MaxLine: such
// arguments are names and passwords, never messages), then the piece that
// continues the command.
func (c *command) literal() (string, error) {
	lit, ok := literalAt(c.line)
	if !ok || lit.start != 0 {
		return "", errSyntax
	}
	max := int64(c.s.srv.cfg.Limits.MaxLine)
	if lit.size > max {
		return "", c.s.refuseLiteral(lit, max)
	}
	if lit.sync {
		if err := c.s.continueReq(); err != nil {
			return "", err
		}
	}
	buf := make([]byte, lit.size)
	c.s.clientDeadline()
	if _, err := io.ReadFull(c.s.r, buf); err != nil {
		return "", err
	}
	if err := c.nextPiece(); err != nil {
		return "", err
	}
	return string(buf), nil
}

// nextPiece reads the piece that follows a literal.
func (c *command) nextPiece() error {
	c.s.clientDeadline()
	piece, err := c.s.pr.next()
	if err != nil {
		return err
	}
	c.line = piece
	return nil
}

// refuseLiteral handles a client literal over max: a synchronising one is
// simply not asked for; a non-synchronising one is read and dropped if it
// is within the message size limit, else the connection must end.
func (s *session) refuseLiteral(lit literal, max int64) error {
	if lit.sync {
		return &tooBigError{size: lit.size, max: max}
	}
	if lit.size > s.dropLimit() {
		return errFatalLiteral
	}
	if err := s.discardClient(lit.size); err != nil {
		return err
	}
	// The rest of the command may hold more literals.
	if err := s.drainPieces(); err != nil {
		return err
	}
	return &tooBigError{size: lit.size, max: max}
}

// dropLimit is the largest non-synchronising literal of a refused
// command that is read and dropped rather than ending the connection:
// before login, a stranger gets no more than a command line's worth.
func (s *session) dropLimit() int64 {
	if s.user == "" {
		return int64(s.srv.cfg.Limits.MaxLine)
	}
	return s.srv.cfg.Limits.MaxLiteral
}

// drain skips what is left of c after the command has been refused, so
// the next command starts at the right place.
func (c *command) drain() error {
	return c.s.drainFrom(c.line)
}

// drainFrom skips the rest of a command whose current piece is piece.
func (s *session) drainFrom(piece []byte) error {
	for {
		lit, ok := literalAt(piece)
		if !ok || lit.sync {
			// A synchronising literal is not sent before "+"; the
			// client takes the tagged reply as the end.
			return nil
		}
		if lit.size > s.dropLimit() {
			return errFatalLiteral
		}
		if err := s.discardClient(lit.size); err != nil {
			return err
		}
		s.clientDeadline()
		var err error
		if piece, err = s.pr.next(); err != nil {
			return err
		}
	}
}

// drainPieces skips the rest of a command after a literal.
func (s *session) drainPieces() error {
	s.clientDeadline()
	piece, err := s.pr.next()
	if err != nil {
		return err
	}
	return s.drainFrom(piece)
}

func (s *session) discardClient(n int64) error {
	for n > 0 {
		s.clientDeadline()
		step := min(n, copyStep)
		got, err := io.CopyN(io.Discard, s.r, step)
		n -= got
		if err != nil {
			return err
		}
	}
	return nil
}
