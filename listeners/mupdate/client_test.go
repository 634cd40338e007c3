package mupdate

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeCyrusGreeting is a Cyrus 3.6.1 master's greeting with TLS configured
// (section 2.1), plus a capability line Cyrus does not send.
const fakeCyrusGreeting = "* AUTH \"SCRAM-SHA-512\" \"SCRAM-SHA-384\" \"SCRAM-SHA-256\" \"SCRAM-SHA-224\" \"SCRAM-SHA-1\" \"DIGEST-MD5\" \"CRAM-MD5\" \"NTLM\" \"PLAIN\" \"LOGIN\"\r\n" +
	"* STARTTLS\r\n" +
	"* X-FUTURE \"one\" two\r\n" +
	"* COMPRESS \"DEFLATE\"\r\n" +
	"* PARTIAL-UPDATE\r\n" +
	"* OK MUPDATE \"mupdate.test\" \"Cyrus IMAP\" \"3.6.1-Debian-3.6.1-4+deb12u5\" \"(master)\"\r\n"

// fakeConn is the server end of one connection to a Client under test.
type fakeConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// fakeServer accepts one connection on 127.0.0.1 and runs script on it;
// the test waits for the script to finish.
func fakeServer(t *testing.T, script func(f *fakeConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			t.Errorf("fake server: accept: %v", err)
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		script(&fakeConn{t: t, conn: conn, br: bufio.NewReader(conn)})
	}()
	return ln.Addr().String()
}

func (f *fakeConn) send(s string) {
	if _, err := io.WriteString(f.conn, s); err != nil {
		f.t.Errorf("fake server: write: %v", err)
	}
}

// expect reads exactly the bytes of want from the client.
func (f *fakeConn) expect(want string) bool {
	got := make([]byte, len(want))
	n, err := io.ReadFull(f.br, got)
	if err != nil || string(got) != want {
		f.t.Errorf("fake server: got %q (%v), want %q", got[:n], err, want)
		return false
	}
	return true
}

// expectEOF waits for the client to close the connection.
func (f *fakeConn) expectEOF() {
	if b, err := f.br.ReadByte(); err != io.EOF {
		f.t.Errorf("fake server: got %q, %v; want EOF", b, err)
	}
}

// fakePlain is the AUTHENTICATE line a Client sends, like Cyrus's client
// (section 3.3, appendix A.1).
func fakePlain(authzid, user, pass string) string {
	ir := base64.StdEncoding.EncodeToString([]byte(authzid + "\x00" + user + "\x00" + pass))
	return "A01 AUTHENTICATE \"PLAIN\" {" + strconv.Itoa(len(ir)) + "+}\r\n" + ir + "\r\n"
}

// fakeLogin plays greeting and a successful PLAIN login.
func (f *fakeConn) fakeLogin() bool {
	f.send(fakeCyrusGreeting)
	if !f.expect(fakePlain("", "mupdate", "mupdatepw")) {
		return false
	}
	f.send("A01 OK \"Authenticated\"\r\n")
	return true
}

var fakeConfig = ClientConfig{Username: "mupdate", Password: "mupdatepw", Timeout: 5 * time.Second}

func dialFake(t *testing.T, addr string, cfg ClientConfig) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClientGreeting(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		f.send(fakeCyrusGreeting)
		if f.expect("Q01 LOGOUT\r\n") {
			f.send("Q01 OK \"bye-bye\"\r\n")
			f.expectEOF()
		}
	})
	c := dialFake(t, addr, ClientConfig{}) // no Username: no AUTHENTICATE
	g := c.Greeting()
	wantMechs := []string{"SCRAM-SHA-512", "SCRAM-SHA-384", "SCRAM-SHA-256", "SCRAM-SHA-224", "SCRAM-SHA-1", "DIGEST-MD5", "CRAM-MD5", "NTLM", "PLAIN", "LOGIN"}
	if !slices.Equal(g.Mechanisms, wantMechs) {
		t.Errorf("Mechanisms = %q", g.Mechanisms)
	}
	if !g.StartTLS || !g.PartialUpdate {
		t.Errorf("StartTLS %v PartialUpdate %v", g.StartTLS, g.PartialUpdate)
	}
	if g.Server != "mupdate.test" || g.Software != "Cyrus IMAP" || g.Version != "3.6.1-Debian-3.6.1-4+deb12u5" || g.Mode != "(master)" {
		t.Errorf("greeting fields %+v", g)
	}
	if !slices.Equal(g.Capabilities["X-FUTURE"], []string{"one", "two"}) || !slices.Equal(g.Capabilities["COMPRESS"], []string{"DEFLATE"}) {
		t.Errorf("Capabilities = %q", g.Capabilities)
	}
	if err := c.Logout(); err != nil {
		t.Errorf("Logout: %v", err)
	}
}

func TestClientGreetingSlaveAndEmptyAuth(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		f.send("* AUTH\r\n* PARTIAL-UPDATE\r\n* OK MUPDATE \"frontend.test\" \"Cyrus IMAP\" \"3.6.1\" \"mupdate://127.0.0.1:23905\"\r\n")
		f.expectEOF()
	})
	c := dialFake(t, addr, ClientConfig{})
	g := c.Greeting()
	if len(g.Mechanisms) != 0 || g.StartTLS || !g.PartialUpdate || g.Mode != "mupdate://127.0.0.1:23905" {
		t.Errorf("greeting %+v", g)
	}
	c.Close()
}

func TestClientGreetingBYE(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		f.send("* BYE \"Server Unable\"\r\n\x00") // section 1.1, NUL included
		f.expectEOF()
	})
	_, err := Dial(context.Background(), addr, fakeConfig)
	var serr *ServerError
	if !errors.As(err, &serr) || serr.Status != "BYE" || serr.Text != "Server Unable" {
		t.Fatalf("Dial = %v, want BYE", err)
	}
}

func TestClientAuth(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		f.send(fakeCyrusGreeting)
		if f.expect(fakePlain("someone", "mupdate", "mupdatepw")) {
			f.send("A01 OK \"Authenticated\"\r\n")
			f.expectEOF()
		}
	})
	cfg := fakeConfig
	cfg.Authzid = "someone"
	c := dialFake(t, addr, cfg)
	c.Close()
}

func TestClientAuthNO(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		f.send(fakeCyrusGreeting)
		if f.expect(fakePlain("", "mupdate", "wrong")) {
			f.send("A01 NO \"undefined error!\"\r\n") // section 3.3
			f.expectEOF()
		}
	})
	cfg := fakeConfig
	cfg.Password = "wrong"
	_, err := Dial(context.Background(), addr, cfg)
	var serr *ServerError
	if !errors.As(err, &serr) || serr.Status != "NO" || serr.Text != "undefined error!" {
		t.Fatalf("Dial = %v, want NO", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error %q shows the password", err)
	}
}

// A challenge after PLAIN's initial response has no answer: the client
// cancels with "*" (section 3.3).
func TestClientAuthChallengeCancelled(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		f.send(fakeCyrusGreeting)
		if f.expect(fakePlain("", "mupdate", "mupdatepw")) {
			f.send("\r\n")
			if f.expect("*\r\n") {
				f.send("A01 NO Client canceled authentication\r\n")
			}
			f.expectEOF()
		}
	})
	_, err := Dial(context.Background(), addr, fakeConfig)
	var serr *ServerError
	if !errors.As(err, &serr) || serr.Text != "Client canceled authentication" {
		t.Fatalf("Dial = %v", err)
	}
}

func TestClientNoPlain(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		f.send("* AUTH \"SCRAM-SHA-256\"\r\n* OK MUPDATE \"m\" \"Rookery\" \"0\" \"(master)\"\r\n")
		f.expectEOF()
	})
	if _, err := Dial(context.Background(), addr, fakeConfig); err == nil || !strings.Contains(err.Error(), "PLAIN") {
		t.Fatalf("Dial = %v, want an error about PLAIN", err)
	}
}

func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	addr := fakeServer(t, func(f *fakeConn) {
		f.send("* AUTH \"PLAIN\"\r\n") // and never the OK
		<-release
	})
	defer close(release)
	cfg := fakeConfig
	cfg.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err := Dial(context.Background(), addr, cfg)
	var nerr net.Error
	if !errors.As(err, &nerr) || !nerr.Timeout() {
		t.Fatalf("Dial = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Dial took %v", d)
	}
}

func TestClientDialCancel(t *testing.T) {
	accepted, release := make(chan struct{}), make(chan struct{})
	addr := fakeServer(t, func(f *fakeConn) {
		close(accepted)
		<-release
	})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := Dial(ctx, addr, fakeConfig)
		errc <- err
	}()
	<-accepted // cancel while waiting for the greeting
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Dial = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Dial not cancelled")
	}
}

func TestClientCommands(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		if !f.fakeLogin() {
			return
		}
		steps := []struct{ in, out string }{
			{"X0 RESERVE \"user.zoe\" \"be1.test!default\"\r\n", "X0 OK \"done\"\r\n"},
			{"X1 ACTIVATE \"user.zoe\" \"be1.test!default\" \"zoe\tlrswipkxtecdan\t\"\r\n", "X1 OK \"done\"\r\n"},
			{"X2 RESERVE \"user.taken\" \"be1.test!default\"\r\n", "X2 NO \"mailbox already exists\"\r\n"},
			{"X3 FIND \"user.bob\"\r\n", "X3 MAILBOX {8+}\r\nuser.bob {11+}\r\nbe1!default {19+}\r\nbob\tlrswipkxtecdan\t\r\nX3 OK \"Search completed\"\r\n"},
			{"X4 FIND \"user.dave\"\r\n", "X4 RESERVE {9+}\r\nuser.dave {16+}\r\nbe1.test!default\r\nX4 OK \"Search completed\"\r\n"},
			{"X5 FIND \"nonexistent\"\r\n", "X5 OK \"Search completed\"\r\n"},
			{"X6 LIST \"be2\"\r\n", "X6 MAILBOX {10+}\r\nuser.alice {6+}\r\nbe2!p2 {21+}\r\nalice\tlrswipkxtecdan\t\r\n" +
				"X6 RESERVE {8+}\r\nuser.amy {6+}\r\nbe2!p2\r\nX6 OK \"list complete\"\r\n"},
			{"X7 LIST\r\n", "X7 MAILBOX {1+}\r\na {1+}\r\nb {0+}\r\n\r\nX7 MAILBOX {1+}\r\nc {1+}\r\nd {0+}\r\n\r\nX7 OK \"list complete\"\r\n"},
			{"X8 DEACTIVATE \"user.zoe\" \"be1.test!default\"\r\n", "X8 OK \"done\"\r\n"},
			{"X9 DELETE \"user.zoe\"\r\n", "X9 OK \"done\"\r\n"},
			{"X10 DELETE \"user.ghost\"\r\n", "X10 NO \"mailbox doesn't exist\"\r\n"},
			{"X11 NOOP\r\n", "X11 OK \"Noop done\"\r\n"},
			{"X12 FIND \"x\"\r\n", "X12 BAD \"Please login first\"\r\n"},
			{"Q01 LOGOUT\r\n", "Q01 OK \"bye-bye\"\r\n"},
		}
		for _, s := range steps {
			if !f.expect(s.in) {
				return
			}
			f.send(s.out)
		}
		f.expectEOF()
	})
	c := dialFake(t, addr, fakeConfig)
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("Reserve", c.Reserve("user.zoe", "be1.test!default"))
	check("Activate", c.Activate("user.zoe", "be1.test!default", "zoe\tlrswipkxtecdan\t"))
	err := c.Reserve("user.taken", "be1.test!default")
	var serr *ServerError
	if !errors.As(err, &serr) || serr.Status != "NO" || serr.Text != "mailbox already exists" {
		t.Fatalf("Reserve taken = %v", err)
	}
	rec, err := c.Find("user.bob")
	check("Find", err)
	if rec == nil || *rec != (Record{Tag: "X3", Kind: "MAILBOX", Name: "user.bob", Location: "be1!default", ACL: "bob\tlrswipkxtecdan\t"}) {
		t.Errorf("Find = %+v", rec)
	}
	rec, err = c.Find("user.dave")
	check("Find", err)
	if rec == nil || *rec != (Record{Tag: "X4", Kind: "RESERVE", Name: "user.dave", Location: "be1.test!default"}) {
		t.Errorf("Find = %+v", rec)
	}
	rec, err = c.Find("nonexistent")
	if rec != nil || err != nil {
		t.Errorf("Find unknown = %+v, %v", rec, err)
	}
	var got []Record
	check("List", c.List("be2", func(r Record) error { got = append(got, r); return nil }))
	want := []Record{
		{Tag: "X6", Kind: "MAILBOX", Name: "user.alice", Location: "be2!p2", ACL: "alice\tlrswipkxtecdan\t"},
		{Tag: "X6", Kind: "RESERVE", Name: "user.amy", Location: "be2!p2"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("List = %+v", got)
	}
	// fn's error stops the callbacks but the list is read to its end.
	calls := 0
	stop := errors.New("stop")
	if err := c.List("", func(Record) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("List with failing fn = %v after %d calls", err, calls)
	}
	check("Deactivate", c.Deactivate("user.zoe", "be1.test!default"))
	check("Delete", c.Delete("user.zoe"))
	if err := c.Delete("user.ghost"); !errors.As(err, &serr) || serr.Text != "mailbox doesn't exist" {
		t.Errorf("Delete unknown = %v", err)
	}
	check("Noop", c.Noop())
	if _, err := c.Find("x"); !errors.As(err, &serr) || serr.Status != "BAD" {
		t.Errorf("Find = %v, want BAD", err)
	}
	check("Logout", c.Logout())
}

func TestClientUpdateStream(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		if !f.fakeLogin() || !f.expect("U01 UPDATE\r\n") {
			return
		}
		// Appendix A.2, the clean version.
		f.send("U01 MAILBOX {8+}\r\nuser.bob {16+}\r\nbe1.test!default {19+}\r\nbob\tlrswipkxtecdan\t\r\n" +
			"U01 RESERVE {9+}\r\nuser.dave {16+}\r\nbe1.test!default\r\n" +
			"U01 OK \"streaming starts\"\r\n")
		f.send("U01 MAILBOX {8+}\r\nuser.eve {16+}\r\nbe2.test!default {19+}\r\neve\tlrswipkxtecdan\t\r\n")
		if !f.expect("N0 NOOP\r\n") {
			return
		}
		f.send("U01 DELETE {10+}\r\nuser.frank\r\nU01 XSEQ \"7\"\r\nN0 OK \"Noop done\"\r\n")
		if !f.expect("N1 NOOP\r\n") {
			return
		}
		f.send("N1 NO \"something\"\r\n")
		if f.expect("Q01 LOGOUT\r\n") {
			f.send("U01 DELETE {1+}\r\nx\r\nQ01 OK \"bye-bye\"\r\n")
		}
		f.expectEOF()
	})
	c := dialFake(t, addr, fakeConfig)
	var dump []Record
	if err := c.Update(nil, func(r Record) error { dump = append(dump, r); return nil }); err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantDump := []Record{
		{Tag: "U01", Kind: "MAILBOX", Name: "user.bob", Location: "be1.test!default", ACL: "bob\tlrswipkxtecdan\t"},
		{Tag: "U01", Kind: "RESERVE", Name: "user.dave", Location: "be1.test!default"},
	}
	if !slices.Equal(dump, wantDump) {
		t.Errorf("dump = %+v", dump)
	}
	// A streaming connection takes only NOOP (through SendNoop) and LOGOUT.
	if err := c.Activate("a", "b", "c"); err != errStreaming {
		t.Errorf("Activate while streaming = %v", err)
	}
	if err := c.Update(nil, nil); err != errStreaming {
		t.Errorf("Update while streaming = %v", err)
	}
	rec, err := c.Next()
	if err != nil || rec != (Record{Tag: "U01", Kind: "MAILBOX", Name: "user.eve", Location: "be2.test!default", ACL: "eve\tlrswipkxtecdan\t"}) {
		t.Fatalf("Next = %+v, %v", rec, err)
	}
	tag, err := c.SendNoop()
	if err != nil || tag != "N0" {
		t.Fatalf("SendNoop = %q, %v", tag, err)
	}
	if rec, err := c.Next(); err != nil || rec != (Record{Tag: "U01", Kind: "DELETE", Name: "user.frank"}) {
		t.Fatalf("Next = %+v, %v", rec, err)
	}
	if rec, err := c.Next(); err != nil || rec != (Record{Tag: "U01", Kind: KindSeq, Name: "7"}) {
		t.Fatalf("Next = %+v, %v", rec, err)
	}
	if rec, err := c.Next(); err != nil || rec != (Record{Tag: "N0", Kind: "OK"}) {
		t.Fatalf("Next = %+v, %v", rec, err)
	}
	if tag, err := c.SendNoop(); err != nil || tag != "N1" {
		t.Fatalf("SendNoop = %q, %v", tag, err)
	}
	var serr *ServerError
	if _, err := c.Next(); !errors.As(err, &serr) || serr.Status != "NO" {
		t.Fatalf("Next = %v, want NO", err)
	}
	if err := c.Logout(); err != nil {
		t.Errorf("Logout: %v", err)
	}
}

// A NO to UPDATE is an error, never an empty dump (section 5.1).
func TestClientUpdateRefused(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		if !f.fakeLogin() || !f.expect("U01 UPDATE \"be1\" \"be2\"\r\n") {
			return
		}
		f.send("U01 BAD \"Badly formed arguments\"\r\n")
		f.expectEOF()
	})
	c := dialFake(t, addr, fakeConfig)
	err := c.Update([]string{"be1", "be2"}, func(Record) error { return nil })
	var serr *ServerError
	if !errors.As(err, &serr) || serr.Status != "BAD" || serr.Text != "Badly formed arguments" {
		t.Fatalf("Update = %v", err)
	}
	if _, err := c.Next(); err == nil {
		t.Error("Next after a refused UPDATE succeeded")
	}
	c.Close()
}

// The server closing the stream (a master restart, section 4.5) shows as
// an error from Next.
func TestClientStreamEOF(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		if f.fakeLogin() && f.expect("U01 UPDATE\r\n") {
			f.send("U01 OK \"streaming starts\"\r\nU01 MAILBOX {1+}\r\na")
		}
	})
	c := dialFake(t, addr, fakeConfig)
	if err := c.Update(nil, func(Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Next = %v, want unexpected EOF", err)
	}
	c.Close()
}

func TestClientCloseUnblocksNext(t *testing.T) {
	release := make(chan struct{})
	addr := fakeServer(t, func(f *fakeConn) {
		if f.fakeLogin() && f.expect("U01 UPDATE\r\n") {
			f.send("U01 OK \"streaming starts\"\r\n")
		}
		<-release
	})
	defer close(release)
	c := dialFake(t, addr, fakeConfig)
	if err := c.Update(nil, func(Record) error { return nil }); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Next()
		errc <- err
	}()
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Next = %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Next")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestClientPipelining(t *testing.T) {
	addr := fakeServer(t, func(f *fakeConn) {
		if !f.fakeLogin() {
			return
		}
		// All three arrive before any reply is sent.
		if !f.expect("X0 ACTIVATE \"user.a\" \"be1!p\" \"\"\r\nX1 ACTIVATE \"user.b\" \"be1!p\" \"\"\r\nX2 FIND \"user.a\"\r\n") {
			return
		}
		f.send("X0 OK \"done\"\r\nX1 NO \"nope\"\r\nX2 MAILBOX {6+}\r\nuser.a {5+}\r\nbe1!p {0+}\r\n\r\nX2 OK \"Search completed\"\r\n")
		if f.expect("X3 NOOP\r\nX4 NOOP\r\n") {
			f.send("X3 OK \"Noop done\"\r\nX4 OK \"Noop done\"\r\n")
		}
		f.expectEOF()
	})
	c := dialFake(t, addr, fakeConfig)
	var tags []string
	for _, args := range [][]string{{"ACTIVATE", "user.a", "be1!p", ""}, {"ACTIVATE", "user.b", "be1!p", ""}, {"FIND", "user.a"}} {
		tag, err := c.Send(args[0], args[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		tags = append(tags, tag)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Await(tags[0]); err != nil || resp.Kind != "OK" {
		t.Errorf("Await %s = %+v, %v", tags[0], resp, err)
	}
	var serr *ServerError
	if resp, err := c.Await(tags[1]); !errors.As(err, &serr) || resp == nil || resp.Kind != "NO" || resp.Text != "nope" {
		t.Errorf("Await %s = %+v, %v", tags[1], resp, err)
	}
	if resp, err := c.Await(tags[2]); err != nil || resp.Text != "Search completed" {
		t.Errorf("Await %s = %+v, %v", tags[2], resp, err)
	}
	// Awaiting out of order is an error.
	t3, _ := c.Send("NOOP")
	t4, _ := c.Send("NOOP")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Await(t4); err == nil || !strings.Contains(err.Error(), t3) {
		t.Errorf("Await out of order = %v", err)
	}
	c.Close()
}
