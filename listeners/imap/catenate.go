package imap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/rookery/rookery/internal/imapurl"
	"github.com/rookery/rookery/store/mailstore"
)

// CATENATE (RFC 4469): APPEND builds a message from TEXT literals and
// URLs naming (parts of) messages this server holds (RFC 5092). The parts
// are read one after the other as the store stages the message, so a
// part is never held whole: a literal from the connection, a URL's
// section from a view of the store.

// catenation is the message a CATENATE list describes, read as Stage
// reads it. Parsing the list happens inside Read: each part is parsed
// when the one before has been read.
type catenation struct {
	sess  *session
	view  *mailstore.View
	limit int64
	cur   io.Reader
	body  *mailstore.Body // under cur for a URL part
	lit   bool            // cur is a literal: the line after it is read next
	began bool
	done  bool
	// err is why the message cannot be built (BADURL, a syntax error):
	// the command's answer.
	err error
}

func (c *catenation) Read(p []byte) (int, error) {
	for {
		if c.err != nil {
			return 0, c.err
		}
		if c.cur != nil {
			n, err := c.cur.Read(p)
			if err == io.EOF {
				c.endPart()
				err = nil
			}
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		if c.done {
			return 0, io.EOF
		}
		c.next()
	}
}

// next parses the next part ("TEXT" literal, "URL" astring) or the end
// of the list.
func (c *catenation) next() {
	r := c.sess.r
	if c.began {
		if r.maybe(')') {
			c.done = true
			return
		}
		r.sp()
	}
	c.began = true
	switch kind := strings.ToUpper(r.atom()); kind {
	case "TEXT":
		r.sp()
		r.maybe('~') // a literal8, with BINARY
		if r.peek() != '{' {
			r.syntax("expected a literal")
			break
		}
		lit, _ := r.literal(c.limit)
		c.cur, c.lit = lit, true
	case "URL":
		r.sp()
		u := r.astring()
		if r.err != nil {
			break
		}
		if err := c.openURL(u); err != nil {
			c.err = err
			return
		}
	default:
		if r.err == nil {
			r.syntax("expected TEXT or URL, not " + strconv.Quote(kind))
		}
	}
	if r.err != nil {
		c.err = r.err
	}
}

// endPart finishes the current part.
func (c *catenation) endPart() {
	if c.lit {
		c.sess.r.resume()
		if err := c.sess.r.err; err != nil {
			c.err = err
		}
	}
	if c.body != nil {
		c.body.Close()
	}
	c.cur, c.body, c.lit = nil, nil, false
}

func (c *catenation) close() {
	if c.body != nil {
		c.body.Close()
	}
}

// catenate stages the message of a "CATENATE (...)" at the reader, of at
// most limit bytes; the reader is left after its ")".
func (sess *session) catenate(limit int64) (*mailstore.Staged, error) {
	r := sess.r
	r.atom()
	r.sp()
	r.expect('(')
	if r.err != nil {
		return nil, r.err
	}
	view := sess.srv.cfg.Store.View()
	defer view.Close()
	c := &catenation{sess: sess, view: view, limit: limit}
	defer c.close()
	body, err := sess.srv.cfg.Store.Stage(context.Background(), c, limit)
	switch {
	case c.err != nil:
		if body != nil {
			_ = body.Discard()
		}
		return nil, c.err
	case errors.Is(err, mailstore.ErrTooBig):
		return nil, &Error{Code: "TOOBIG", Text: fmt.Sprintf("Message over %d bytes", limit)}
	case err != nil:
		return nil, err
	}
	return body, nil
}

// openURL makes the part u names the current one: the user must be able
// to read the mailbox, whose UIDVALIDITY must be the one given.
func (c *catenation) openURL(s string) error {
	badURL := func(why string) error {
		return &Error{Code: "BADURL " + quoteString(s), Text: "Invalid URL: " + why}
	}
	u, err := imapurl.Parse(s)
	if err != nil {
		return badURL(err.Error())
	}
	sess := c.sess
	ext := sess.fromWire(u.Mailbox)
	if strings.EqualFold(ext, "INBOX") {
		ext = "INBOX"
	}
	name, ok := sess.srv.ns.internal(sess.id.User, ext)
	if !ok {
		return badURL("no such mailbox")
	}
	m, rt, err := sess.lookup(name)
	if err != nil || rt&rRead == 0 {
		return badURL("no such mailbox")
	}
	if u.UIDValidity != 0 && u.UIDValidity != m.UIDValidity {
		return badURL("UIDVALIDITY changed")
	}
	var msg *mailstore.Message
	if err := c.view.Find(m.ID, []uint32{u.UID}, func(found *mailstore.Message, expunged bool) bool {
		if !expunged {
			cp := *found
			msg = &cp
		}
		return false
	}); err != nil {
		return err
	}
	if msg == nil {
		return badURL("no such message")
	}
	var sec imap.FetchItemBodySection
	if u.Section != "" {
		sr := &reader{line: []byte("[" + u.Section + "]"), maxString: 1024}
		sr.section(&sec)
		if sr.err != nil || !sr.atEOL() {
			return badURL("bad section")
		}
	}
	b := c.view.OpenBody(msg)
	start, end := int64(0), msg.Size
	var data []byte
	if u.Section != "" {
		found, err := findSection(b, &sec)
		if err != nil {
			b.Close()
			return err
		}
		switch {
		case found.missing:
			b.Close()
			return badURL("no such section")
		case found.data != nil:
			b.Close()
			b, data, start, end = nil, found.data, 0, int64(len(found.data))
		default:
			start, end = found.start, found.end
		}
	}
	if p := u.Partial; p.Has {
		start = min(start+p.Offset, end)
		if p.Size >= 0 {
			end = min(start+p.Size, end)
		}
	}
	if b == nil {
		c.cur = bytes.NewReader(data[start:end])
		return nil
	}
	if _, err := b.Seek(start, io.SeekStart); err != nil {
		b.Close()
		return err
	}
	c.cur, c.body = io.LimitReader(b, end-start), b
	return nil
}

// quoteString writes s as an IMAP quoted string.
func quoteString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
