// Package lmtp owns LMTP (RFC 2033) for the node: one codec for commands,
// replies and message data, used by both sides, and the frontend's
// proxy, which routes each recipient to the backend holding its INBOX.
package lmtp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rookery/rookery/internal/dotstuff"
	"github.com/rookery/rookery/internal/textline"
)

// ErrLineTooLong is returned for a command or reply line over the limit.
var ErrLineTooLong = errors.New("lmtp: line too long")

// errSyntax is a malformed command argument or reply.
var errSyntax = errors.New("lmtp: syntax error")

// Reader reads LMTP lines, commands, replies and message data.
type Reader struct {
	r   *bufio.Reader
	max int
}

// NewReader reads from r; lines longer than maxLine bytes are refused.
func NewReader(r *bufio.Reader, maxLine int) *Reader { return &Reader{r: r, max: maxLine} }

// Buffered is the number of bytes read from the connection but not yet
// consumed; a server flushes its replies when it reaches 0 (RFC 2920).
func (r *Reader) Buffered() int { return r.r.Buffered() }

// ReadLine returns the next line without its CRLF (or bare LF). A line
// over the limit is skipped and ErrLineTooLong returned.
func (r *Reader) ReadLine() (string, error) {
	line, err := textline.Read(r.r, r.max)
	if errors.Is(err, textline.ErrTooLong) {
		return "", ErrLineTooLong
	}
	return line, err
}

// Command is a client command: its verb in upper case and the rest.
type Command struct {
	Verb string
	Arg  string
}

// ReadCommand reads one command line.
func (r *Reader) ReadCommand() (Command, error) {
	line, err := r.ReadLine()
	if err != nil {
		return Command{}, err
	}
	verb, arg, _ := strings.Cut(line, " ")
	return Command{Verb: strings.ToUpper(verb), Arg: arg}, nil
}

// Reply is a server reply: its code and the text of each line (without
// the code and separator; an enhanced status code stays in the text).
type Reply struct {
	Code  int
	Lines []string
}

// Text is the reply's lines joined with a space.
func (r Reply) Text() string { return strings.Join(r.Lines, " ") }

// String is the reply as one line, for logs and errors.
func (r Reply) String() string { return strconv.Itoa(r.Code) + " " + r.Text() }

// Positive reports a 2xx or 3xx reply.
func (r Reply) Positive() bool { return r.Code >= 200 && r.Code < 400 }

// ReadReply reads a reply, following "250-" continuation lines.
func (r *Reader) ReadReply() (Reply, error) {
	var rep Reply
	for {
		line, err := r.ReadLine()
		if err != nil {
			return Reply{}, err
		}
		if len(line) < 3 {
			return Reply{}, fmt.Errorf("%w: reply %q", errSyntax, line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil || code < 200 || code > 599 || (rep.Code != 0 && code != rep.Code) {
			return Reply{}, fmt.Errorf("%w: reply %q", errSyntax, line)
		}
		rep.Code = code
		more := len(line) > 3 && line[3] == '-'
		if len(line) > 3 && line[3] != '-' && line[3] != ' ' {
			return Reply{}, fmt.Errorf("%w: reply %q", errSyntax, line)
		}
		if len(line) > 4 {
			rep.Lines = append(rep.Lines, line[4:])
		} else {
			rep.Lines = append(rep.Lines, "")
		}
		if !more {
			return rep, nil
		}
	}
}

// DotReader returns the message data that follows DATA, unstuffed, up to
// the terminating "." (io.EOF then).
func (r *Reader) DotReader() io.Reader { return dotstuff.NewReader(r.r) }

// Writer writes LMTP lines, replies and message data.
type Writer struct {
	w *bufio.Writer
}

// NewWriter writes to w.
func NewWriter(w *bufio.Writer) *Writer { return &Writer{w: w} }

// Line writes one line and its CRLF.
func (w *Writer) Line(s string) {
	w.w.WriteString(s)
	w.w.WriteString("\r\n")
}

// Reply writes a reply of one or more lines.
func (w *Writer) Reply(code int, lines ...string) {
	c := strconv.Itoa(code)
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		w.Line(c + sep + l)
	}
}

// DotWriter returns a writer for message data; its Close writes the
// terminating ".". Flush afterwards.
func (w *Writer) DotWriter() io.WriteCloser { return dotstuff.NewWriter(w.w) }

// Flush sends what is buffered.
func (w *Writer) Flush() error { return w.w.Flush() }

// ParsePath reads the argument of MAIL ("FROM:<path> params") or RCPT
// ("TO:<path> params") given its keyword, and returns the address inside
// the angle brackets and the parameters.
func ParsePath(arg, keyword string) (addr string, params []string, err error) {
	if len(arg) < len(keyword)+1 || !strings.EqualFold(arg[:len(keyword)], keyword) || arg[len(keyword)] != ':' {
		return "", nil, errSyntax
	}
	rest := strings.TrimLeft(arg[len(keyword)+1:], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", nil, errSyntax
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, errSyntax
	}
	addr = rest[1:end]
	if strings.ContainsAny(addr, " \t<") {
		return "", nil, errSyntax
	}
	return addr, strings.Fields(rest[end+1:]), nil
}
