package imap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// bodySection is a BODY[...] section located in a message: missing (no
// such part; NIL, as Cyrus answers), bytes built from the message
// (HEADER.FIELDS), or a byte range of the message, streamed when
// written, so a large attachment never sits in memory.
type bodySection struct {
	missing    bool
	data       []byte
	start, end int64
}

// findSection locates sec (its Partial aside) in the message b, with RFC
// 3501 6.4.5 numbering: part 1 of a single-part message is its body, and
// a non-multipart part has no subparts (BODY[1.1] of a single-part
// message is missing); the parts of a message/rfc822 part are those of
// the message it holds.
func findSection(b io.ReadSeeker, sec *imap.FetchItemBodySection) (bodySection, error) {
	if _, err := b.Seek(0, io.SeekStart); err != nil {
		return bodySection{}, err
	}
	// Reading stops once the part is complete: BODY[1] of a message with
	// a large attachment after it does not read the attachment.
	root, err := parseMIMEUntil(b, func(root *part) bool {
		cur, _ := locatePart(root, sec.Part)
		return cur != nil && cur.done
	})
	if err != nil {
		return bodySection{}, fmt.Errorf("imap: parse message structure: %w", err)
	}
	cur, isMsg := locatePart(root, sec.Part)
	if cur == nil {
		return bodySection{missing: true}, nil
	}
	switch sec.Specifier {
	case imap.PartSpecifierMIME:
		return bodySection{start: cur.headerStart, end: cur.bodyStart}, nil
	case imap.PartSpecifierNone:
		if len(sec.Part) == 0 {
			return bodySection{start: 0, end: cur.bodyEnd}, nil
		}
		return bodySection{start: cur.bodyStart, end: cur.bodyEnd}, nil
	}
	// HEADER, HEADER.FIELDS and TEXT name a message: the top-level one or
	// the one a message/rfc822 part holds.
	if !isMsg {
		if cur.message == nil {
			return bodySection{missing: true}, nil
		}
		cur = cur.message
	}
	if sec.Specifier == imap.PartSpecifierText {
		return bodySection{start: cur.bodyStart, end: cur.bodyEnd}, nil
	}
	if len(sec.HeaderFields) == 0 && len(sec.HeaderFieldsNot) == 0 {
		return bodySection{start: cur.headerStart, end: cur.bodyStart}, nil
	}
	if _, err := b.Seek(cur.headerStart, io.SeekStart); err != nil {
		return bodySection{}, err
	}
	data, err := filterHeaderStream(io.LimitReader(b, cur.bodyStart-cur.headerStart), sec.HeaderFields, sec.HeaderFieldsNot)
	if err != nil {
		return bodySection{}, err
	}
	return bodySection{data: data}, nil
}

// locatePart follows a section's part numbers from the message's root;
// isMsg tells that the entity found is a message (the root, for no
// numbers) rather than a body part. It returns nil for no such part.
func locatePart(root *part, path []int) (cur *part, isMsg bool) {
	cur, isMsg = root, true
	for _, n := range path {
		if !isMsg && cur.message != nil {
			cur, isMsg = cur.message, true
		}
		switch {
		case len(cur.children) > 0 && n <= len(cur.children):
			cur = cur.children[n-1]
		case len(cur.children) == 0 && isMsg && n == 1:
			// The body of a single-part message: same entity.
		default:
			return nil, false
		}
		isMsg = false
	}
	return cur, isMsg
}

// filterHeaderStream keeps (or, with not, drops) the named fields of a
// header read from r, byte for byte, and ends them with an empty line.
// Only the fields kept are held in memory, whatever the header's size.
func filterHeaderStream(r io.Reader, names, not []string) ([]byte, error) {
	br := bufio.NewReader(r)
	var out bytes.Buffer
	keep := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			switch {
			case line[0] == ' ' || line[0] == '\t':
				// A continuation: goes with its field.
			case bytes.Equal(bytes.TrimRight(line, "\r\n"), nil):
				keep = false
			default:
				name, _, _ := bytes.Cut(line, []byte{':'})
				n := strings.TrimSpace(string(name))
				match := func(l []string) bool {
					return slices.ContainsFunc(l, func(x string) bool { return strings.EqualFold(x, n) })
				}
				keep = (len(names) > 0 && match(names)) || (len(not) > 0 && !match(not))
			}
			if keep {
				out.Write(line)
			}
		}
		// A piece of a line over the buffer: the rest of the same line
		// follows, with the same fate.
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			if keep {
				out.Write(line)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	out.WriteString("\r\n")
	return out.Bytes(), nil
}
