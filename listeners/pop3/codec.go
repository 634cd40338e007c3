// Package pop3 owns POP3 (RFC 1939, CAPA from RFC 2449, AUTH from RFC
// 5034) for the node: one codec for commands and replies, used by both
// sides, and the frontend's proxy, which logs the user in and then pipes
// the session to the backend holding the user's INBOX.
package pop3

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/rookery/rookery/internal/dotstuff"
	"github.com/rookery/rookery/internal/textline"
)

// ErrLineTooLong is returned for a line over the limit.
var ErrLineTooLong = errors.New("pop3: line too long")

// Reader reads POP3 lines, commands and replies.
type Reader struct {
	r   *bufio.Reader
	max int
}

// NewReader reads from r; lines longer than maxLine bytes are refused.
func NewReader(r *bufio.Reader, maxLine int) *Reader { return &Reader{r: r, max: maxLine} }

// Buffered is the number of bytes read from the connection but not yet
// consumed.
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

// Command is a client command: its keyword in upper case and its
// arguments, split on spaces.
type Command struct {
	Name string
	Args []string
}

// ReadCommand reads one command line.
func (r *Reader) ReadCommand() (Command, error) {
	line, err := r.ReadLine()
	if err != nil {
		return Command{}, err
	}
	f := strings.Split(line, " ")
	return Command{Name: strings.ToUpper(f[0]), Args: f[1:]}, nil
}

// Reply is a server's status line: +OK or -ERR and the text after it
// (without the separating space).
type Reply struct {
	OK   bool
	Text string
}

// ReadReply reads a status line. A "+ " continuation (during AUTH) is
// not a reply and is reported as an error.
func (r *Reader) ReadReply() (Reply, error) {
	line, err := r.ReadLine()
	if err != nil {
		return Reply{}, err
	}
	switch {
	case line == "+OK" || strings.HasPrefix(line, "+OK "):
		return Reply{OK: true, Text: strings.TrimPrefix(line[3:], " ")}, nil
	case line == "-ERR" || strings.HasPrefix(line, "-ERR "):
		return Reply{Text: strings.TrimPrefix(line[4:], " ")}, nil
	}
	return Reply{}, fmt.Errorf("pop3: not a status line: %q", line)
}

// DotReader returns the body of a multi-line response, unstuffed, up to
// the terminating "." (io.EOF then).
func (r *Reader) DotReader() io.Reader { return dotstuff.NewReader(r.r) }

// Writer writes POP3 lines and replies.
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

// OK writes "+OK text".
func (w *Writer) OK(text string) { w.status("+OK", text) }

// Err writes "-ERR text".
func (w *Writer) Err(text string) { w.status("-ERR", text) }

func (w *Writer) status(s, text string) {
	if text != "" {
		s += " " + text
	}
	w.Line(s)
}

// DotWriter returns a writer for the body of a multi-line response; its
// Close writes the terminating ".". Flush afterwards.
func (w *Writer) DotWriter() io.WriteCloser { return dotstuff.NewWriter(w.w) }

// Flush sends what is buffered.
func (w *Writer) Flush() error { return w.w.Flush() }
