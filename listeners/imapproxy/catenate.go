package imapproxy

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/rookery/rookery/internal/imapurl"
	"github.com/rookery/rookery/listeners/frontend"
)

// CATENATE (RFC 4469) through the frontend: the destination's backend
// resolves URLs naming its own messages, but not those of another
// backend. The frontend fetches each of those from its backend, on a
// connection of its own so the session's selected mailbox is left alone,
// and sends the bytes on as a TEXT part: the destination never learns
// they were a URL. Bodies stream through, never held.

// urlError is a URL part that cannot be resolved: the command's answer
// is NO [BADURL]. midLiteral tells that the destination was already
// sent part of the bytes: it cannot be brought back in step.
type urlError struct {
	url, why   string
	midLiteral bool
}

// cmdAppend sends APPEND to the mailbox's backend, as routed does, and
// with CATENATE resolves the URLs that backend cannot.
func (s *session) cmdAppend(c *command) error {
	if !bytes.Contains(bytes.ToUpper(c.line), []byte("CATENATE")) {
		return s.routed(c, routeOpts{tryCreate: true})
	}
	name, err := c.mailboxArg()
	if err != nil {
		return s.argError(c, err)
	}
	head := c.tag + " APPEND " + quote(name)
	e, err := s.routes.Lookup(s.srv.ctx, s.internal(name))
	if err != nil {
		text := s.lookupErrText(err)
		if errors.Is(err, frontend.ErrNoMailbox) {
			text = "[TRYCREATE] " + text
		}
		return s.refuse(c, "NO", text)
	}
	b, err := s.backendFor(e.Server())
	if err != nil {
		return s.refuse(c, "NO", textUnavailable)
	}
	if !b.caps["LITERAL+"] {
		// The fetched parts go on as non-synchronising literals;
		// without LITERAL+ the backend resolves what it can.
		return s.routeTo(c, s.internal(name), head, routeOpts{tryCreate: true})
	}
	status, text, err := s.catenateTo(c, b, head)
	if err != nil {
		return s.forwardFailed(c, b, err)
	}
	s.tagged(c.tag, status, text)
	return nil
}

// catenateTo sends head and the rest of c to b, expanding the URL parts
// that name another backend's messages, and returns b's answer.
func (s *session) catenateTo(c *command, b *backend, head string) (status, text string, err error) {
	var berr error
	write := func(p []byte) {
		if berr == nil {
			if _, err := b.w.Write(p); err != nil {
				berr = b.fail(err)
			}
		}
	}
	crlf := []byte("\r\n")
	write([]byte(head))
	piece := c.line
	for {
		lit, hasLit := literalAt(piece)
		words := piece
		if hasLit {
			words = piece[:lit.start]
		}
		if ue := s.expandURLs(words, b, write, &berr); ue != nil {
			if ue.midLiteral {
				b.broken = true
				b.conn.Close()
				return "", "", &backendError{b.server, errors.New("catenate: " + ue.why)}
			}
			// b has the command up to the part: end it with a URL
			// that fails there too, so b stays in step and adds
			// nothing, and answer with the client's URL.
			write([]byte(`URL "/")`))
			write(crlf)
			if berr == nil {
				berr = b.flush()
			}
			if err := s.drainFrom(piece); err != nil {
				return "", "", err
			}
			if berr == nil {
				_, _, berr = s.relayTagged(b, c.tag)
			}
			if berr != nil {
				return "", "", berr
			}
			return "NO", "[BADURL " + quoted(ue.url) + "] " + ue.why, nil
		}
		if !hasLit {
			write(crlf)
			if berr == nil {
				berr = b.flush()
			}
			break
		}
		if lit.size > s.srv.cfg.Limits.MaxLiteral {
			b.broken = true
			s.dropBackend(b)
			return "", "", s.refuseLiteral(lit, s.srv.cfg.Limits.MaxLiteral)
		}
		if berr != nil && lit.sync {
			return "", "", berr
		}
		write(appendMarker(nil, lit.size, false))
		write(crlf)
		if lit.sync {
			if err := s.continueReq(); err != nil {
				return "", "", err
			}
		}
		if err := s.copyFromClient(b, lit.size, &berr); err != nil {
			return "", "", err
		}
		s.clientDeadline()
		if piece, err = s.pr.next(); err != nil {
			return "", "", err
		}
	}
	if berr != nil {
		return "", "", berr
	}
	return s.relayTagged(b, c.tag)
}

// expandURLs writes words (a piece of the command, its literal marker
// aside) to dst, each "URL <url>" that names a message on another
// backend replaced by "TEXT" and the bytes it names.
func (s *session) expandURLs(words []byte, dst *backend, write func([]byte), berr *error) *urlError {
	done := 0
	for j := 0; j < len(words); {
		switch {
		case words[j] == '"':
			j = skipQuoted(words, j)
		case (j == 0 || words[j-1] == ' ' || words[j-1] == '(') && len(words)-j > 4 &&
			strings.EqualFold(string(words[j:j+4]), "URL "):
			raw, end, ok := astringAt(words, j+4)
			if !ok {
				j += 4
				continue
			}
			u, err := imapurl.Parse(raw)
			if err != nil {
				j = end // the destination refuses it
				continue
			}
			e, err := s.routes.Lookup(s.srv.ctx, s.internal(u.Mailbox))
			if err != nil {
				return &urlError{url: raw, why: "No such mailbox"}
			}
			if e.Server() == dst.server {
				j = end
				continue
			}
			write(words[done:j])
			if ue := s.fetchURL(e.Server(), u, raw, dst, write, berr); ue != nil {
				return ue
			}
			done, j = end, end
		default:
			j++
		}
	}
	write(words[done:])
	return nil
}

// fetchURL writes the bytes u names, on server, to dst as a literal.
func (s *session) fetchURL(server string, u imapurl.URL, raw string, dst *backend, write func([]byte), berr *error) *urlError {
	src, err := s.dialFor(server)
	if err != nil {
		return &urlError{url: raw, why: "Its server is unavailable"}
	}
	defer src.logout()
	unavailable := &urlError{url: raw, why: "Its server failed"}
	tag := src.nextTag()
	src.w.WriteString(tag + " EXAMINE " + quote(u.Mailbox) + "\r\n")
	if src.flush() != nil {
		return unavailable
	}
	var uidValidity string
	for {
		resp, err := src.readResponse()
		if err != nil {
			return unavailable
		}
		if rest, ok := strings.CutPrefix(resp, tag+" "); ok {
			if st, _ := splitStatus(rest); st != "OK" {
				return &urlError{url: raw, why: "No such mailbox"}
			}
			break
		}
		if v, ok := respCode(resp, "UIDVALIDITY"); ok {
			uidValidity = v
		}
	}
	if u.UIDValidity != 0 && uidValidity != strconv.FormatUint(uint64(u.UIDValidity), 10) {
		return &urlError{url: raw, why: "UIDVALIDITY changed"}
	}
	item := "BODY.PEEK[" + u.Section + "]"
	if p := u.Partial; p.Has {
		size := p.Size
		if size < 0 {
			size = math.MaxUint32
		}
		item += "<" + strconv.FormatInt(p.Offset, 10) + "." + strconv.FormatInt(size, 10) + ">"
	}
	tag = src.nextTag()
	src.w.WriteString(tag + " UID FETCH " + strconv.FormatUint(uint64(u.UID), 10) + " (" + item + ")\r\n")
	if src.flush() != nil {
		return unavailable
	}
	sent := false
	for {
		piece, err := src.pr.next()
		if err != nil {
			return unavailable
		}
		if rest, ok := bytes.CutPrefix(piece, []byte(tag+" ")); ok {
			if st, _ := splitStatus(string(rest)); st != "OK" || !sent {
				return &urlError{url: raw, why: "No such message or section", midLiteral: sent}
			}
			return nil
		}
		lit, hasLit := literalAt(piece)
		switch {
		case hasLit && !sent && bytes.Contains(bytes.ToUpper(piece), []byte("BODY[")):
			write([]byte("TEXT "))
			write(appendMarker(nil, lit.size, false))
			write([]byte("\r\n"))
			if copyBackends(src, dst, lit.size, berr) != nil {
				return &urlError{raw, "Its server failed", true}
			}
			sent = true
		case hasLit:
			if _, err := io.CopyN(io.Discard, src.r, lit.size); err != nil {
				return unavailable
			}
		}
	}
}

// skipQuoted returns the index after the quoted string starting at i.
func skipQuoted(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// astringAt reads an atom or a quoted string at i.
func astringAt(b []byte, i int) (s string, end int, ok bool) {
	if i < len(b) && b[i] == '"' {
		end = skipQuoted(b, i)
		if end > len(b) || b[end-1] != '"' || end-i < 2 {
			return "", i, false
		}
		var sb strings.Builder
		for j := i + 1; j < end-1; j++ {
			if b[j] == '\\' {
				j++
			}
			sb.WriteByte(b[j])
		}
		return sb.String(), end, true
	}
	end = i
	for end < len(b) && isAstringChar(b[end]) {
		end++
	}
	return string(b[i:end]), end, end > i
}
