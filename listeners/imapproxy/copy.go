package imapproxy

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/rookery/rookery/listeners/frontend"
)

func isSeqChar(b byte) bool {
	return b >= '0' && b <= '9' || b == ':' || b == ',' || b == '*' || b == '$'
}

// cmdCopy pipes COPY and MOVE whose destination is on the selected
// backend, and does them for the client across backends.
func (s *session) cmdCopy(c *command) error {
	var set, name string
	err := c.sp()
	if err == nil {
		if set = c.token(isSeqChar); set == "" {
			err = errSyntax
		}
	}
	if err == nil {
		name, err = c.mailboxArg()
	}
	if err == nil {
		err = c.end()
	}
	if err != nil {
		return s.argError(c, err)
	}
	e, err := s.routes.Lookup(s.srv.ctx, s.internal(name))
	if err != nil {
		text := s.lookupErrText(err)
		if errors.Is(err, frontend.ErrNoMailbox) {
			text = "[TRYCREATE] " + text
		}
		s.tagged(c.tag, "NO", text)
		return nil
	}
	src := s.current
	if e.Server() == src.server {
		status, text, err := s.forward(c, src, c.tag+" "+c.name+" "+set+" "+quote(name))
		if err != nil {
			return s.forwardFailed(c, src, err)
		}
		s.tagged(c.tag, status, text)
		return nil
	}
	dst, err := s.backendFor(e.Server())
	if err != nil {
		s.tagged(c.tag, "NO", textUnavailable)
		return nil
	}
	return s.crossCopy(c, set, name, src, dst)
}

// message is what a cross-backend copy keeps of a source message.
type message struct {
	uid   uint32
	flags string // without \Recent, which APPEND cannot set
	date  string // INTERNALDATE as a quoted string
}

// crossCopy copies messages between backends as Cyrus does, with its
// defects fixed: flags and dates are read first, then each body streams
// from a FETCH on the source into one MULTIAPPEND on the destination (an
// APPEND per message if the destination lacks MULTIAPPEND). COPYUID
// names the source UIDs (RFC 4315), and MOVE removes the originals with
// UID STORE and UID EXPUNGE once the copy is safe.
func (s *session) crossCopy(c *command, set, name string, src, dst *backend) error {
	move := strings.HasSuffix(c.name, "MOVE")
	if move && !src.caps["UIDPLUS"] {
		s.tagged(c.tag, "NO", "[CANNOT] Moving between servers needs UIDPLUS")
		return nil
	}
	fetch := "FETCH"
	if strings.HasPrefix(c.name, "UID ") {
		fetch = "UID FETCH"
	}
	msgs, status, text, err := s.fetchMeta(src, fetch+" "+set+" (UID FLAGS INTERNALDATE)")
	if err != nil {
		return err // the selected backend failed
	}
	if status != "OK" {
		s.tagged(c.tag, status, text)
		return nil
	}
	if len(msgs) == 0 {
		s.tagged(c.tag, "OK", "Completed")
		return nil
	}
	slices.SortFunc(msgs, func(a, b message) int { return int(a.uid) - int(b.uid) })

	multi := dst.caps["MULTIAPPEND"] && len(msgs) > 1
	var uidValidity string
	var dstUIDs []string
	for i := 0; i < len(msgs); {
		batch := msgs[i : i+1]
		if multi {
			batch = msgs
		}
		status, text, err := s.appendBatch(src, dst, name, batch)
		if err != nil {
			var be *backendError
			if errors.As(err, &be) && be.server == dst.server {
				return s.backendFailed(c.tag, dst, err)
			}
			return err
		}
		if status != "OK" {
			s.tagged(c.tag, status, text)
			return nil
		}
		if v, uids, ok := appendUID(text); ok {
			uidValidity = v
			dstUIDs = append(dstUIDs, uids)
		}
		i += len(batch)
	}

	srcUIDs := make([]string, len(msgs))
	for i, m := range msgs {
		srcUIDs[i] = strconv.FormatUint(uint64(m.uid), 10)
	}
	code := ""
	if uidValidity != "" && len(dstUIDs) > 0 {
		code = "[COPYUID " + uidValidity + " " + strings.Join(srcUIDs, ",") + " " + strings.Join(dstUIDs, ",") + "] "
	}
	if !move {
		s.tagged(c.tag, "OK", code+"Completed")
		return nil
	}
	if code != "" {
		s.untagged("OK " + code + "Moved")
	}
	uids := strings.Join(srcUIDs, ",")
	for _, cmd := range []string{"UID STORE " + uids + ` +FLAGS.SILENT (\Deleted)`, "UID EXPUNGE " + uids} {
		tag := src.nextTag()
		src.w.WriteString(tag + " " + cmd + "\r\n")
		if err := src.flush(); err != nil {
			return err
		}
		status, text, err := s.relayTagged(src, tag)
		if err != nil {
			return err
		}
		if status != "OK" {
			s.tagged(c.tag, "NO", "Messages copied but not removed: "+text)
			return nil
		}
	}
	s.tagged(c.tag, "OK", "Completed")
	return nil
}

// maxCrossCopy bounds the messages one COPY or MOVE moves between
// backends: what is kept of each while the bodies stream (about 100 bytes)
// stays under 10 MB a session.
const maxCrossCopy = 100_000

// fetchMeta runs a metadata FETCH on the selected backend src and
// collects UID, FLAGS and INTERNALDATE per message; other responses are
// relayed.
func (s *session) fetchMeta(src *backend, cmd string) (msgs []message, status, text string, err error) {
	tooMany := false
	tag := src.nextTag()
	src.w.WriteString(tag + " " + cmd + "\r\n")
	if err := src.flush(); err != nil {
		return nil, "", "", err
	}
	for {
		resp, err := src.readResponse()
		if err != nil {
			return nil, "", "", err
		}
		if rest, ok := strings.CutPrefix(resp, tag+" "); ok {
			status, text = splitStatus(rest)
			if tooMany && status == "OK" {
				return nil, "NO", "[LIMIT] More than " + strconv.Itoa(maxCrossCopy) +
					" messages to copy between servers in one command; copy them in smaller sets", nil
			}
			return msgs, status, text, nil
		}
		if m, ok := parseMeta(resp); ok {
			if len(msgs) < maxCrossCopy {
				msgs = append(msgs, m)
			} else {
				tooMany = true
			}
			continue
		}
		if !strings.HasPrefix(resp, "* BYE") {
			s.w.WriteString(resp + "\r\n")
		}
	}
}

// appendBatch appends msgs to name on dst in one APPEND command, each
// body streamed from a FETCH on src, and returns dst's answer.
func (s *session) appendBatch(src, dst *backend, name string, msgs []message) (status, text string, err error) {
	tag := dst.nextTag()
	dst.w.WriteString(tag + " APPEND " + quote(name))
	for _, m := range msgs {
		if err := s.streamMessage(src, dst, tag, m); err != nil {
			return "", "", err
		}
	}
	dst.w.WriteString("\r\n")
	if err := dst.flush(); err != nil {
		return "", "", err
	}
	for {
		resp, err := dst.readResponse()
		if err != nil {
			return "", "", err
		}
		if rest, ok := strings.CutPrefix(resp, tag+" "); ok {
			status, text = splitStatus(rest)
			return status, text, nil
		}
	}
}

// streamMessage fetches m's body from src, the selected backend, and
// writes it into dst's APPEND as one message. Other responses src sends
// meanwhile (an EXPUNGE from another session, say) are relayed to the
// client, whose view of the mailbox must stay in step.
func (s *session) streamMessage(src, dst *backend, appendTag string, m message) error {
	tag := src.nextTag()
	uid := strconv.FormatUint(uint64(m.uid), 10)
	src.w.WriteString(tag + " UID FETCH " + uid + " (BODY.PEEK[])\r\n")
	if err := src.flush(); err != nil {
		return err
	}
	// Where the next piece is: at the start of a response, inside the
	// FETCH of m (kept from the client), or inside a response relayed.
	const (
		atStart = iota
		inOurs
		inRelayed
	)
	state := atStart
	sent := false
	var derr error // dst failed: keep reading src, then report
	for {
		piece, err := src.pr.next()
		if err != nil {
			return src.fail(err)
		}
		lit, hasLit := literalAt(piece)
		isBody := hasLit && !sent && bytes.HasSuffix(bytes.ToUpper(piece[:lit.start]), []byte("BODY[] "))
		if state == atStart {
			if rest, ok := bytes.CutPrefix(piece, []byte(tag+" ")); ok {
				status, text := splitStatus(string(rest))
				switch {
				case derr != nil:
					return derr
				case status != "OK" || !sent:
					// dst holds a half-written APPEND: it cannot go on.
					dst.conn.Close()
					return dst.fail(errors.New("source message unavailable: " + status + " " + text))
				}
				return nil
			}
			switch {
			case isBody && bytes.Contains(bytes.ToUpper(piece), []byte(" FETCH (")):
				// Only the response with the body is the proxy's: other
				// FETCHes of the message (its flags changed) are news.
				state = inOurs
			case bytes.HasPrefix(piece, []byte("* BYE")):
				src.broken = true
				state = inOurs // dropped; the tagged response will not come
			default:
				state = inRelayed
			}
		}
		switch {
		case state == inRelayed:
			s.torn = true
			s.w.Write(piece)
			s.w.WriteString("\r\n")
			if hasLit {
				if err := s.copyToClient(src, s.w, lit.size); err != nil {
					return err
				}
			}
		case isBody:
			sent = true
			hdr := " (" + m.flags + ") " + m.date + " "
			dst.w.WriteString(hdr)
			if dst.caps["LITERAL+"] {
				dst.w.Write(appendMarker(nil, lit.size, false))
				dst.w.WriteString("\r\n")
			} else {
				dst.w.Write(appendMarker(nil, lit.size, true))
				dst.w.WriteString("\r\n")
				if derr = dst.flush(); derr == nil {
					derr = s.dstContinuation(dst, appendTag)
				}
			}
			if err := copyBackends(src, dst, lit.size, &derr); err != nil {
				return err
			}
		case hasLit:
			if _, err := io.CopyN(io.Discard, src.r, lit.size); err != nil {
				return src.fail(err)
			}
		}
		if !hasLit {
			state = atStart
			s.torn = false
		}
	}
}

// dstContinuation waits for dst's go-ahead for a literal.
func (s *session) dstContinuation(dst *backend, tag string) error {
	for {
		resp, err := dst.readResponse()
		if err != nil {
			return err
		}
		if strings.HasPrefix(resp, "+") {
			return nil
		}
		if strings.HasPrefix(resp, tag+" ") {
			dst.conn.Close()
			return dst.fail(errors.New("refused the message: " + resp[len(tag)+1:]))
		}
	}
}

// copyBackends streams n bytes from src to dst; a dst failure is left in
// *derr and the bytes are still read from src.
func copyBackends(src, dst *backend, n int64, derr *error) error {
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp
	for n > 0 {
		k, err := src.r.Read(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if *derr == nil {
				if _, werr := dst.w.Write(buf[:k]); werr != nil {
					*derr = dst.fail(werr)
				}
			}
			n -= int64(k)
		}
		if err != nil && n > 0 {
			return src.fail(err)
		}
	}
	return nil
}

// parseMeta reads "* n FETCH (UID u FLAGS (...) INTERNALDATE "...")".
func parseMeta(resp string) (message, bool) {
	rest, ok := strings.CutPrefix(resp, "* ")
	if !ok {
		return message{}, false
	}
	_, rest, ok = strings.Cut(rest, " ")
	if !ok || len(rest) < 7 || !strings.EqualFold(rest[:7], "FETCH (") {
		return message{}, false
	}
	rest = strings.TrimSuffix(rest[7:], ")")
	var m message
	var haveUID, haveFlags, haveDate bool
	for rest != "" {
		var key string
		key, rest, _ = strings.Cut(strings.TrimLeft(rest, " "), " ")
		var val string
		switch {
		case strings.HasPrefix(rest, "("):
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				return message{}, false
			}
			val, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, `"`):
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return message{}, false
			}
			val, rest = rest[:end+2], rest[end+2:]
		default:
			val, rest, _ = strings.Cut(rest, " ")
		}
		switch strings.ToUpper(key) {
		case "UID":
			u, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return message{}, false
			}
			m.uid, haveUID = uint32(u), true
		case "FLAGS":
			var keep []string
			for _, f := range strings.Fields(val) {
				if !strings.EqualFold(f, `\Recent`) {
					keep = append(keep, f)
				}
			}
			m.flags, haveFlags = strings.Join(keep, " "), true
		case "INTERNALDATE":
			m.date, haveDate = val, true
		}
	}
	return m, haveUID && haveFlags && haveDate
}

// appendUID reads "[APPENDUID <uidvalidity> <uid-set>]" from an OK text.
func appendUID(text string) (uidValidity, uids string, ok bool) {
	code, ok := respCode(text, "APPENDUID")
	if !ok {
		return "", "", false
	}
	f := strings.Fields(code)
	if len(f) != 2 {
		return "", "", false
	}
	return f[0], f[1], true
}
