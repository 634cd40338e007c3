// Package textline reads CRLF-terminated protocol lines of bounded length,
// as the POP3 and LMTP codecs (and their servers and proxies) share.
package textline

import (
	"bufio"
	"errors"
	"strings"
)

// ErrTooLong is returned for a line over the limit; the line has been
// consumed, so the stream stays in step.
var ErrTooLong = errors.New("textline: line too long")

// Read returns the next line from r without its CRLF (or bare LF). A line
// longer than max bytes is skipped and ErrTooLong returned.
func Read(r *bufio.Reader, max int) (string, error) {
	var long []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		switch {
		case err == nil:
			if tooLong || len(long)+len(chunk) > max+2 {
				return "", ErrTooLong
			}
			if long != nil {
				chunk = append(long, chunk...)
			}
			line := strings.TrimSuffix(strings.TrimSuffix(string(chunk), "\n"), "\r")
			if len(line) > max {
				return "", ErrTooLong
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			if tooLong = tooLong || len(long)+len(chunk) > max+2; !tooLong {
				long = append(long, chunk...)
			}
		default:
			return "", err
		}
	}
}
