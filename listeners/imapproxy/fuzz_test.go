package imapproxy

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// scriptConn is a socket whose reads are a fixed script and whose writes
// go to a buffer (or nowhere): the fuzz target drives the backend reader
// without the scheduling noise of real sockets.
type scriptConn struct {
	r io.Reader
	w bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if c.r == nil {
		return 0, io.EOF
	}
	return c.r.Read(p)
}
func (c *scriptConn) Write(p []byte) (int, error)      { return c.w.Write(p) }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// fuzzSession is a session whose client is a buffer, with a backend that
// sends data.
func fuzzSession(data []byte) (*session, *backend, *scriptConn) {
	srv := &Server{log: slog.New(slog.DiscardHandler)}
	srv.cfg.Limits.setDefaults()
	client := &scriptConn{}
	s := &session{srv: srv, log: srv.log, backends: map[string]*backend{}, bconns: map[net.Conn]struct{}{}, sep: '.'}
	s.setConn(client)
	b := newBackend("fuzz", &scriptConn{r: bytes.NewReader(data)})
	b.timeout = time.Minute
	b.caps["LITERAL+"] = true
	return s, b, client
}

// FuzzBackendResponse feeds arbitrary backend output to every reader of
// backend responses: the relay of a proxied command (from the selected
// backend and from another), the continuation wait, the whole-response
// reader and the parsers run on its results, and the cross-backend copy's
// body stream. None may panic or loop, and a relay that returns without
// error must have finished the response it wrote to the client.
func FuzzBackendResponse(f *testing.F) {
	for _, seed := range []string{
		"* 1 FETCH (UID 5 BODY[] {5}\r\nhello)\r\nA1 OK done\r\n",
		"* 3 FETCH (FLAGS (\\Seen) UID 7 BODY[HEADER] {21}\r\nSubject: hi\r\nTo: x\r\n\r\n BODY[TEXT] {0}\r\n)\r\nA1 OK Completed (0.001 secs)\r\n",
		"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) INTERNALDATE \"01-Jan-2020 00:00:00 +0000\")\r\nA1 OK done\r\n",
		"* 2 EXPUNGE\r\n* 4 EXISTS\r\n* 1 RECENT\r\nA1 OK [READ-WRITE] Completed\r\n",
		"* LIST (\\HasNoChildren) \".\" {5}\r\nINBOX\r\n* LIST (\\Noselect) NIL \"a b\"\r\nA1 OK done\r\n",
		"* STATUS other (MESSAGES 3 UIDNEXT 4)\r\nA1 OK done\r\n",
		"+ go ahead\r\nA1 OK [APPENDUID 1 5] done\r\n",
		"* OK \xc0\xc0\xc0\xc0 [APPENDUID 1 5]\r\n* OK \xff[UIDVALIDITY 3]\r\n",
		"A1 NO [TRYCREATE] Mailbox does not exist\r\n",
		"* BYE shutting down\r\n",
		"\r\n",
		"\r\nA1 OK done\r\n",
		"\n* OK\n\nA1 OK\n",
		"* 1 FETCH (BODY[] {500}\r\nabc",
		"* 3 FETCH (",
		"* 3 FETCH (BODY[] {99999999999999999999}\r\n",
		"* 3 FETCH (BODY[] {-1}\r\n)\r\n",
		"{5}\r\nhello\r\n",
		"A1\r\nA1 \r\nA1 OK\r\n",
		"*\r\n* \r\n*",
		"* 1 FETCH (BODY[] {5+}\r\nhello)\r\nPROXY1 OK done\r\n",
		"* 1 FETCH (UID 7 BODY[] {5}\r\nhello)\r\n* 2 FETCH (FLAGS ())\r\nPROXY1 OK done\r\n",
		"* 1 FETCH (UID 7 BODY[] {3}\r\nabc)\r\nPROXY1 NO gone\r\n",
		"* 1 EXPUNGE\r\nPROXY1 OK done\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, selected := range []bool{true, false} {
			s, b, _ := fuzzSession(data)
			if selected {
				s.current = b
			}
			for range len(data) + 1 {
				_, _, err := s.relayTagged(b, "A1")
				if err != nil {
					break
				}
				if s.torn {
					t.Fatalf("relayTagged returned inside a response")
				}
			}
		}

		s, b, _ := fuzzSession(data)
		for range len(data) + 1 {
			line, err := s.awaitContinuation(b, "A1")
			if err != nil {
				break
			}
			if !strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "A1 ") {
				t.Fatalf("awaitContinuation returned %q", line)
			}
		}

		_, b, _ = fuzzSession(data)
		for range len(data) + 1 {
			resp, err := b.readResponse()
			if err != nil {
				break
			}
			parseMeta(resp)
			parseListLine(resp)
			lsubName(resp)
			appendUID(resp)
			isMessageUpdate([]byte(resp))
		}

		s, src, _ := fuzzSession(data)
		s.current = src
		dst := newBackend("dst", &scriptConn{})
		dst.timeout = time.Minute
		dst.caps["LITERAL+"] = true
		_ = s.streamMessage(src, dst, "D1", message{uid: 7, date: `"01-Jan-2020 00:00:00 +0000"`})
	})
}

// FuzzNotifyGroups feeds arbitrary text to the NOTIFY SET event-group
// parser; it must neither panic nor loop.
func FuzzNotifyGroups(f *testing.F) {
	for _, s := range []string{
		"(MAILBOXES INBOX (MessageNew MessageExpunge FlagChange)) (SUBTREE (a b) (MessageNew (UID FLAGS) MessageExpunge))",
		"(PERSONAL NONE) (SELECTED (MessageNew MessageExpunge))",
		"(MAILBOXES {3}",
		"(SUBTREE (",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		s, _, _ := fuzzSession(nil)
		c := &command{s: s, line: []byte(line)}
		for range 20 {
			if _, err := c.notifyGroup(); err != nil || c.atEnd() || c.sp() != nil {
				return
			}
		}
	})
}
