package imapproxy

import (
	"strings"
	"time"
)

// idleEnd is what the client said to end IDLE.
type idleEnd struct {
	line string
	err  error
}

// cmdIdle relays IDLE to the selected backend. While it lasts, the
// session goroutine relays the backend's updates to the client and a
// second goroutine waits for the client's DONE and passes it on: each
// socket direction keeps a single owner.
func (s *session) cmdIdle(c *command) error {
	if !c.atEnd() {
		return s.refuse(c, "BAD", "Unexpected extra arguments")
	}
	b := s.current
	if !b.caps["IDLE"] || s.notify != nil {
		return s.pollIdle(c, b)
	}
	b.w.WriteString(c.tag + " IDLE\r\n")
	if err := b.flush(); err != nil {
		return err
	}
	for {
		kind, line, err := s.relayOne(b, c.tag)
		if err != nil {
			return err
		}
		if kind == respTagged {
			s.w.WriteString(line + "\r\n")
			return nil
		}
		if kind == respContinue {
			break
		}
	}
	s.w.WriteString("+ idling\r\n")
	if err := s.flush(); err != nil {
		return err
	}
	b.setIdling(true)
	done := make(chan idleEnd, 1)
	// Armed here, not in the reader: a stop (a deadline in the past) set
	// below must not be overwritten by a reader that starts late.
	s.clientDeadline()
	// Until done, the client's reader and b's writer are the client
	// reader's; the buffers of both sides' other directions are this
	// goroutine's, given back while nothing comes (idlebuf.go).
	s.releaseReader()
	b.releaseWriter()
	go func() {
		s.awaitClient()
		line, err := s.pr.next()
		end := idleEnd{line: string(line), err: err}
		b.setIdling(false)
		b.takeWriter()
		b.w.WriteString("DONE\r\n")
		_ = b.w.Flush() // a failure shows as the read below failing
		done <- end
	}()
	var tagged string
	for {
		s.releaseWriter()
		b.releaseReader()
		b.await()
		s.takeWriter()
		kind, line, err := s.relayOne(b, c.tag)
		if err != nil {
			_ = s.conn.SetReadDeadline(time.Now()) // stop the client reader
			<-done
			return err
		}
		if kind == respTagged {
			tagged = line
			break
		}
		if err := s.flush(); err != nil {
			_ = s.conn.SetReadDeadline(time.Now())
			<-done
			return err
		}
	}
	end := <-done
	if end.err != nil {
		return end.err
	}
	if !strings.EqualFold(end.line, "DONE") {
		s.tagged(c.tag, "BAD", "Invalid Idle continuation")
		return nil
	}
	s.w.WriteString(tagged + "\r\n")
	return nil
}

// idlePoll is how often the proxy asks a backend without IDLE for news
// while the client idles (Cyrus's imapidlepoll default is 60 s).
const idlePoll = 30 * time.Second

// pollIdle idles for a backend without IDLE, or for a client with
// NOTIFY, whose other mailboxes must be polled too: a NOOP every idlePoll
// (Limits.NotifyPoll with NOTIFY) relays what changed, and one more
// follows the client's DONE. b is nil when no mailbox is selected.
func (s *session) pollIdle(c *command, b *backend) error {
	if !c.atEnd() {
		return s.refuse(c, "BAD", "Unexpected extra arguments")
	}
	s.w.WriteString("+ idling\r\n")
	if err := s.flush(); err != nil {
		return err
	}
	done := make(chan idleEnd, 1)
	s.clientDeadline() // as in cmdIdle
	s.releaseReader()
	go func() {
		s.awaitClient()
		line, err := s.pr.next()
		done <- idleEnd{line: string(line), err: err}
	}()
	every := idlePoll
	if s.notify != nil {
		every = min(every, s.srv.cfg.Limits.NotifyPoll)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	// The client's reader is the client reader's until done; the other
	// buffers are given back between polls (idlebuf.go).
	take := func() {
		s.takeWriter()
		if b != nil {
			b.takeReader()
			b.takeWriter()
		}
	}
	noop := func() error {
		if b != nil {
			tag := b.nextTag()
			b.w.WriteString(tag + " NOOP\r\n")
			if err := b.flush(); err != nil {
				return err
			}
			if _, _, err := s.relayTagged(b, tag); err != nil {
				return err
			}
		}
		if s.notify != nil {
			s.notifyNames()
		}
		if s.notify != nil {
			s.pollNotify(true)
		}
		return s.flush()
	}
	for {
		s.releaseWriter()
		if b != nil {
			b.releaseReader()
			b.releaseWriter()
		}
		select {
		case <-tick.C:
			take()
			if err := noop(); err != nil {
				_ = s.conn.SetReadDeadline(time.Now())
				<-done
				return err
			}
		case end := <-done:
			take()
			if end.err != nil {
				return end.err
			}
			if !strings.EqualFold(end.line, "DONE") {
				s.tagged(c.tag, "BAD", "Invalid Idle continuation")
				return nil
			}
			if err := noop(); err != nil {
				return err
			}
			s.tagged(c.tag, "OK", "Completed")
			return nil
		}
	}
}
