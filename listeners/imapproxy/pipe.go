package imapproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
)

// Response kinds returned by relayOne.
const (
	respUntagged = iota // relayed (or dropped) already
	respContinue        // a continuation request, not relayed
	respTagged          // the tagged response, not relayed
)

// forward sends head (the tag, the command word and the arguments the
// proxy parsed, re-encoded) then the rest of client command c to b, and
// relays b's responses up to the tagged one, whose status and text it
// returns for the caller to write. Literals stream both ways.
func (s *session) forward(c *command, b *backend, head string) (status, text string, err error) {
	// Refuse an oversized first literal before the backend sees anything.
	if lit, ok := literalAt(c.line); ok && lit.size > s.srv.cfg.Limits.MaxLiteral {
		return "", "", s.refuseLiteral(lit, s.srv.cfg.Limits.MaxLiteral)
	}
	b.w.WriteString(head)
	rejected, err := s.pipeRest(c, b)
	if err != nil {
		return "", "", err
	}
	if rejected != "" {
		status, text = splitStatus(rejected[len(c.tag)+1:])
		return status, text, nil
	}
	return s.relayTagged(b, c.tag)
}

// pipeRest sends the rest of c to b: the current piece, and for every
// literal at a piece's end the literal and the next piece. Client literals
// are passed as they came where b allows, else converted; a synchronising
// one gets the backend's continuation (or the proxy's own for small ones,
// when b takes non-synchronising literals).
//
// If b refuses a literal with a tagged response, that response is
// returned as rejected and the client's command has ended. If b fails, a
// *backendError is returned once the client's command has been consumed.
func (s *session) pipeRest(c *command, b *backend) (rejected string, err error) {
	piece := c.line
	var berr error
	write := func(p []byte) {
		if berr == nil {
			if _, err := b.w.Write(p); err != nil {
				berr = b.fail(err)
			}
		}
	}
	var marker []byte
	crlf := []byte("\r\n")
	for {
		lit, ok := literalAt(piece)
		if !ok {
			write(piece)
			write(crlf)
			if berr == nil {
				berr = b.flush()
			}
			return "", berr
		}
		if lit.size > s.srv.cfg.Limits.MaxLiteral {
			// b has part of the command and cannot be used any more.
			if berr == nil {
				berr = b.fail(errors.New("client literal too large"))
				b.conn.Close()
			}
			return "", s.refuseLiteral(lit, s.srv.cfg.Limits.MaxLiteral)
		}
		if berr != nil {
			if lit.sync {
				return "", berr
			}
			if err := s.discardClient(lit.size); err != nil {
				return "", err
			}
		} else {
			nonsync := b.caps["LITERAL+"] || (b.caps["LITERAL-"] && lit.size <= 4096)
			switch {
			case !lit.sync && nonsync:
				write(piece)
				write(crlf)
			case !lit.sync:
				// The client sends at once; b must be asked first.
				marker = appendMarker(marker[:0], lit.size, true)
				write(piece[:lit.start])
				write(marker)
				write(crlf)
				if berr == nil {
					var cont string
					cont, berr = s.awaitContinuation(b, c.tag)
					if berr == nil && cont != "" && cont[0] != '+' {
						// b refused; the client's literal is already coming.
						if err := s.discardClient(lit.size); err != nil {
							return "", err
						}
						if err := s.drainPieces(); err != nil {
							return "", err
						}
						return cont, nil
					}
				}
			case nonsync && lit.size <= optimistMax:
				marker = appendMarker(marker[:0], lit.size, false)
				write(piece[:lit.start])
				write(marker)
				write(crlf)
				if err := s.continueReq(); err != nil {
					return "", err
				}
			default:
				write(piece)
				write(crlf)
				if berr == nil {
					var cont string
					cont, berr = s.awaitContinuation(b, c.tag)
					if berr == nil && cont[0] != '+' {
						return cont, nil // the client will not send the literal
					}
					if berr == nil {
						s.w.WriteString(cont + "\r\n")
						if err := s.flush(); err != nil {
							return "", err
						}
					}
				}
				if berr != nil {
					return "", berr // the client waits for "+" and gets NO
				}
			}
			if err := s.copyFromClient(b, lit.size, &berr); err != nil {
				return "", err
			}
		}
		s.clientDeadline()
		if piece, err = s.pr.next(); err != nil {
			return "", err
		}
	}
}

// awaitContinuation flushes b and reads its responses, relaying untagged
// ones, until a continuation request or the tagged response of tag; it
// returns that line.
func (s *session) awaitContinuation(b *backend, tag string) (string, error) {
	if err := b.flush(); err != nil {
		return "", err
	}
	for {
		kind, line, err := s.relayOne(b, tag)
		if err != nil {
			return "", err
		}
		if kind != respUntagged {
			return line, nil
		}
	}
}

// relayTagged relays b's responses until the tagged one and returns it.
func (s *session) relayTagged(b *backend, tag string) (status, text string, err error) {
	for {
		kind, line, err := s.relayOne(b, tag)
		if err != nil {
			return "", "", err
		}
		if kind == respTagged {
			status, text = splitStatus(line[len(tag)+1:])
			return status, text, nil
		}
	}
}

// relayOne reads one response from b. Untagged ones are streamed to the
// client, except a BYE (the backend leaving is not the client's session
// ending) and, from a backend that is not the selected one, updates about
// messages, which belong to no mailbox the client has selected. A
// continuation request or the tagged response is returned, not relayed.
//
// Every byte read here is the backend's to choose: nothing is indexed
// without a length check, and a line that fits no response (an empty
// one, say) fails b instead of the session's goroutine.
func (s *session) relayOne(b *backend, tag string) (kind int, line string, err error) {
	head, err := b.r.Peek(1)
	if err != nil {
		return 0, "", b.fail(err)
	}
	b.setInResponse(true)
	defer b.setInResponse(false)
	if head[0] != '*' {
		piece, err := b.pr.next()
		if err != nil {
			return 0, "", b.fail(err)
		}
		switch {
		case len(piece) > 0 && piece[0] == '+':
			return respContinue, string(piece), nil
		case len(piece) > len(tag) && string(piece[:len(tag)]) == tag && piece[len(tag)] == ' ':
			return respTagged, string(piece), nil
		}
		return 0, "", b.fail(fmt.Errorf("unexpected response %q", truncate(piece)))
	}
	var dst io.Writer = s.w
	if head, err = peekHead(b.r); err != nil {
		return 0, "", b.fail(err)
	}
	if bytes.HasPrefix(head, []byte("* BYE")) {
		b.broken = true
		dst = io.Discard
	} else if b != s.current && isMessageUpdate(head) {
		dst = io.Discard
	}
	return respUntagged, "", s.streamResponse(b, dst)
}

// peekHead returns the start of the next response, long enough to
// classify it (12 bytes), or up to its line end if it is shorter; it
// never waits for bytes beyond the line end, which may not come yet.
func peekHead(r *bufio.Reader) ([]byte, error) {
	for n := 1; ; n = r.Buffered() + 1 {
		head, err := r.Peek(min(n, 12))
		if err != nil {
			return nil, err
		}
		if len(head) == 12 || bytes.IndexByte(head, '\n') >= 0 {
			return head, nil
		}
	}
}

// isMessageUpdate reports whether an untagged response is about messages
// of the selected mailbox (EXISTS, RECENT, EXPUNGE, FETCH, VANISHED), or
// its HIGHESTMODSEQ, from which a QRESYNC client would resynchronise.
// head may be as short as peekHead's 12 bytes, which "* OK [HIGHES"
// fills.
func isMessageUpdate(head []byte) bool {
	rest, ok := bytes.CutPrefix(head, []byte("* "))
	if !ok {
		return false
	}
	up := bytes.ToUpper(rest)
	if bytes.HasPrefix(up, []byte("VANISHED")) || bytes.HasPrefix(up, []byte("OK [HIGHES")) {
		return true
	}
	return len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9'
}

func truncate(b []byte) []byte {
	if len(b) > 80 {
		return b[:80]
	}
	return b
}

// streamResponse copies one untagged response from b to dst without
// holding it: pieces chunk by chunk, literals in bounded steps. While a
// response to the client is under way s.torn is set: from its first
// byte to its last, a failing backend leaves the client's stream broken.
func (s *session) streamResponse(b *backend, dst io.Writer) error {
	toClient := dst == io.Writer(s.w)
	var tail tailBuf
	for {
		tail.reset()
		for {
			chunk, err := b.r.ReadSlice('\n')
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				// The unterminated rest is not passed on: if it is all
				// the client would have had of this response, the
				// client's stream is still whole.
				return b.fail(err)
			}
			tail.add(chunk)
			if toClient {
				s.torn = true
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return werr
			}
			if err == nil {
				break
			}
		}
		lit, ok := literalAt(trimEOL(tail.bytes()))
		if !ok {
			if toClient {
				s.torn = false
			}
			return nil
		}
		if err := s.copyToClient(b, dst, lit.size); err != nil {
			return err
		}
	}
}

// tailBuf keeps the last bytes of a piece, enough to find its literal
// marker.
type tailBuf struct {
	buf [maxMarker + 10]byte
	n   int
}

func (t *tailBuf) reset() { t.n = 0 }

func (t *tailBuf) add(p []byte) {
	if len(p) >= len(t.buf) {
		t.n = copy(t.buf[:], p[len(p)-len(t.buf):])
		return
	}
	if keep := len(t.buf) - len(p); t.n > keep {
		copy(t.buf[:], t.buf[t.n-keep:t.n])
		t.n = keep
	}
	t.n += copy(t.buf[t.n:], p)
}

func (t *tailBuf) bytes() []byte { return t.buf[:t.n] }

// copyToClient streams n literal bytes from b to dst.
func (s *session) copyToClient(b *backend, dst io.Writer, n int64) error {
	if dst == io.Writer(s.w) && b == s.current && n >= spliceMin {
		if done, err := s.spliceToClient(b, n); done {
			return err
		}
	}
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp
	for n > 0 {
		k, err := b.r.Read(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
		}
		if err != nil && n > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return b.fail(err)
		}
	}
	return nil
}

// copyFromClient streams n literal bytes from the client to b. If b
// fails, *berr is set and the rest is read and dropped, so the client's
// stream stays in step; only client errors are returned.
func (s *session) copyFromClient(b *backend, n int64, berr *error) error {
	if *berr == nil && b == s.current && n >= spliceMin {
		if done, err := s.spliceFromClient(b, n); done {
			return err
		}
	}
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	buf := *bufp
	for n > 0 {
		s.clientDeadline()
		k, err := s.r.Read(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if *berr == nil {
				if _, werr := b.w.Write(buf[:k]); werr != nil {
					*berr = b.fail(werr)
				}
			}
			n -= int64(k)
		}
		if err != nil && n > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// spliceMin is the smallest literal worth moving socket to socket.
const spliceMin = 256 << 10

// spliceToClient moves a large literal from the selected backend to the
// client socket to socket (splice(2) on Linux, no copy through user
// space). Only for the selected backend: which side failed cannot be told
// apart, and losing either ends the session anyway. done is false when
// the sockets are not both plain TCP.
func (s *session) spliceToClient(b *backend, n int64) (done bool, err error) {
	dst, ok1 := s.conn.(*net.TCPConn)
	src, ok2 := b.conn.(*net.TCPConn)
	if !ok1 || !ok2 {
		return false, nil
	}
	// What b's reader holds already goes first, through the writer.
	if k := min(int64(b.r.Buffered()), n); k > 0 {
		buf, _ := b.r.Peek(int(k))
		if _, err := s.w.Write(buf); err != nil {
			return true, err
		}
		_, _ = b.r.Discard(int(k))
		n -= k
	}
	if err := s.flush(); err != nil {
		return true, err
	}
	for n > 0 {
		b.readDeadline()
		s.writeDeadline()
		k, err := io.CopyN(dst, src, min(n, copyStep))
		n -= k
		if err != nil {
			return true, b.fail(err)
		}
	}
	return true, nil
}

// spliceFromClient is spliceToClient the other way: a large client
// literal to the selected backend, socket to socket.
func (s *session) spliceFromClient(b *backend, n int64) (done bool, err error) {
	dst, ok1 := b.conn.(*net.TCPConn)
	src, ok2 := s.conn.(*net.TCPConn)
	if !ok1 || !ok2 {
		return false, nil
	}
	// What the client's reader holds already goes first, through b's writer.
	if k := min(int64(s.r.Buffered()), n); k > 0 {
		buf, _ := s.r.Peek(int(k))
		if _, err := b.w.Write(buf); err != nil {
			return true, b.fail(err)
		}
		_, _ = s.r.Discard(int(k))
		n -= k
	}
	if err := b.flush(); err != nil {
		return true, err
	}
	for n > 0 {
		s.clientDeadline()
		b.writeDeadline()
		k, err := io.CopyN(dst, src, min(n, copyStep))
		n -= k
		if err != nil {
			// Either side may have failed; the client's end (a stall, a
			// hang-up) is the likelier in the middle of its upload, and
			// the session ends either way.
			b.broken = true
			return true, err
		}
	}
	return true, nil
}
