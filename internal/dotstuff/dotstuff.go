// Package dotstuff is the "dot-stuffing" that POP3 multi-line responses
// and SMTP/LMTP message data share (RFC 1939 3, RFC 5321 4.5.2): lines
// end in CRLF, a line starting with '.' gets a second '.', and a line
// holding only '.' ends the data. Both directions stream: nothing is held
// beyond one byte of look-ahead.
package dotstuff

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// Reader states.
const (
	lineStart = iota // at the start of a line
	inLine           // inside a line
	sawCR            // inside a line, after a CR
	sawDot           // after a '.' at the start of a line
	sawDotCR         // after ".\r" at the start of a line
	done             // the terminating line has been read
)

// Reader yields the unstuffed data of a dot-terminated stream with CRLF
// line ends (a bare LF is read as CRLF, a lone CR is kept) and reports
// io.EOF after the terminating ".". It reads no further than that line.
type Reader struct {
	r       *bufio.Reader
	state   int
	pending []byte // bytes decided on but not yet returned
}

// NewReader returns a Reader over r.
func NewReader(r *bufio.Reader) *Reader { return &Reader{r: r} }

// ErrUnexpectedEOF is returned when the stream ends before the terminating
// line.
var ErrUnexpectedEOF = errors.New("dotstuff: stream ended before the final '.'")

// Read implements io.Reader.
func (d *Reader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.pending) > 0 {
			k := copy(p[n:], d.pending)
			n += k
			d.pending = d.pending[k:]
			continue
		}
		if d.state == done {
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		}
		// Stop at a block boundary rather than wait for more input.
		if n > 0 && d.r.Buffered() == 0 {
			return n, nil
		}
		// Inside a line, copy the run up to the next CR or LF at once: the
		// state machine below only matters at line ends.
		if d.state == inLine && d.r.Buffered() > 0 {
			buf, _ := d.r.Peek(min(d.r.Buffered(), len(p)-n))
			i := plainRun(buf)
			if i > 0 {
				n += copy(p[n:], buf[:i])
				_, _ = d.r.Discard(i)
				continue
			}
		}
		c, err := d.r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = ErrUnexpectedEOF
			}
			return n, err
		}
		switch d.state {
		case lineStart:
			if c == '.' {
				d.state = sawDot
				continue
			}
			d.state = inLine
			d.byte(c)
		case inLine:
			d.byte(c)
		case sawCR:
			if c == '\n' {
				d.pending = append(d.pending[:0], '\r', '\n')
				d.state = lineStart
				continue
			}
			d.pending = append(d.pending[:0], '\r')
			d.state = inLine
			d.byte(c)
		case sawDot:
			switch c {
			case '\r':
				d.state = sawDotCR
			case '\n':
				d.state = done
			default:
				d.state = inLine
				d.byte(c)
			}
		case sawDotCR:
			if c == '\n' {
				d.state = done
				continue
			}
			// ".\rX": a lone CR after an (unstuffed) dot is data.
			d.pending = append(d.pending[:0], '.', '\r')
			d.state = inLine
			d.byte(c)
		}
	}
	return n, nil
}

// plainRun is the length of buf's prefix without CR or LF.
func plainRun(buf []byte) int {
	i := len(buf)
	if j := bytes.IndexByte(buf, '\n'); j >= 0 {
		i = j
	}
	if j := bytes.IndexByte(buf[:i], '\r'); j >= 0 {
		i = j
	}
	return i
}

// byte handles c inside a line; the state is inLine.
func (d *Reader) byte(c byte) {
	switch c {
	case '\r':
		d.state = sawCR
	case '\n':
		d.pending = append(d.pending, '\r', '\n')
		d.state = lineStart
	default:
		d.pending = append(d.pending, c)
	}
}

// Writer stuffs what is written to it: it doubles a '.' that starts a
// line and turns a bare LF into CRLF. Close ends the last line if needed
// and writes the terminating ".\r\n"; it does not close the underlying
// writer.
type Writer struct {
	w     io.Writer
	start bool // at the start of a line
	cr    bool // the last byte written was a CR
	buf   []byte
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, start: true} }

// Write implements io.Writer.
func (d *Writer) Write(p []byte) (int, error) {
	d.buf = d.buf[:0]
	for _, c := range p {
		switch {
		case c == '\n' && !d.cr:
			d.buf = append(d.buf, '\r', '\n')
		case c == '.' && d.start:
			d.buf = append(d.buf, '.', '.')
		default:
			d.buf = append(d.buf, c)
		}
		d.start = c == '\n'
		d.cr = c == '\r'
		if len(d.buf) >= 32<<10 {
			if _, err := d.w.Write(d.buf); err != nil {
				return 0, err
			}
			d.buf = d.buf[:0]
		}
	}
	if _, err := d.w.Write(d.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends the data.
func (d *Writer) Close() error {
	end := ".\r\n"
	switch {
	case d.cr:
		end = "\n.\r\n"
	case !d.start:
		end = "\r\n.\r\n"
	}
	d.start, d.cr = true, false
	_, err := io.WriteString(d.w, end)
	return err
}
