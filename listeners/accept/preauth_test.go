package accept

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// chat is a handler speaking a line protocol: "login USER" authenticates
// (answered "ok", or "no" when refused), anything else is answered
// "what". Reads are bounded by the login deadline as a listener's are;
// one that runs out says "bye login" or "bye idle".
func chat(c net.Conn, p *Preauth) {
	_, _ = c.Write([]byte("hello\r\n"))
	br := bufio.NewReader(c)
	for {
		_ = c.SetReadDeadline(p.Deadline(time.Minute))
		line, err := br.ReadString('\n')
		if err != nil {
			if p.LoginExpired() {
				_, _ = c.Write([]byte("bye login\r\n"))
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				_, _ = c.Write([]byte("bye idle\r\n"))
			}
			return
		}
		reply := "what"
		if user, ok := strings.CutPrefix(strings.TrimSpace(line), "login "); ok {
			reply = "no"
			if p.Authenticated(user) {
				reply = "ok"
			}
		}
		if _, err := c.Write([]byte(reply + "\r\n")); err != nil {
			return
		}
	}
}

// peer is a test client of chat.
type peer struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// connect dials ln from local (nil: any address) and returns the peer
// with the first line the server sent.
func connect(t *testing.T, ln net.Listener, local net.Addr) (*peer, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: local}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	p := &peer{t: t, c: c, br: bufio.NewReader(c)}
	return p, p.line()
}

func (p *peer) line() string {
	p.t.Helper()
	l, err := p.br.ReadString('\n')
	if err != nil && l == "" {
		return "EOF"
	}
	return strings.TrimRight(l, "\r\n")
}

func (p *peer) say(line string) string {
	p.t.Helper()
	if _, err := p.c.Write([]byte(line + "\r\n")); err != nil {
		p.t.Fatalf("write %q: %v", line, err)
	}
	return p.line()
}

// unauthenticated is the number of connections in l's unauthenticated
// share.
func unauthenticated(l *Loop) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.waiting.Len()
}

// refusals records Config.Refused's reasons.
type refusals struct {
	mu  sync.Mutex
	got []string
}

func (r *refusals) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, reason)
}

func (r *refusals) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.got, ",")
}

// TestUnauthenticatedShare: connections that do not authenticate fill at
// most their share of the cap; a newcomer beyond it cuts the oldest of
// them short instead of being refused, and one that authenticates leaves
// the share.
func TestUnauthenticatedShare(t *testing.T) {
	var refused refusals
	l := New(Config{Name: "test", CloseConns: true, MaxConns: 4, MaxUnauthenticated: 2, Busy: "busy\r\n", Refused: refused.add})
	defer l.Close()
	ln := listen(t)
	serve(l, ln, chat)
	a, _ := connect(t, ln, nil)
	b, _ := connect(t, ln, nil)
	c, lc := connect(t, ln, nil)
	if lc != "hello" {
		t.Fatalf("third stranger got %q, want hello", lc)
	}
	if got := a.line(); got != "bye login" {
		t.Fatalf("oldest stranger got %q, want bye login", got)
	}
	if got := unauthenticated(l); got != 2 {
		t.Fatalf("Unauthenticated = %d, want 2", got)
	}
	if r := c.say("login alice"); r != "ok" {
		t.Fatalf("login: %q", r)
	}
	// c left the share: a newcomer fits without pushing b out.
	connect(t, ln, nil)
	if r := b.say("noop"); r != "what" {
		t.Fatalf("stranger b after c logged in: %q", r)
	}
	if got, want := refused.String(), "unauthenticated"; got != want {
		t.Errorf("Refused reasons %q, want %q", got, want)
	}
}

// TestLoginDeadline: a connection that does not authenticate is dropped
// at its login deadline even while it keeps sending commands; one that
// authenticated, and as old, is not.
func TestLoginDeadline(t *testing.T) {
	l := New(Config{Name: "test", CloseConns: true, MaxConns: 4, LoginTimeout: 300 * time.Millisecond})
	defer l.Close()
	ln := listen(t)
	serve(l, ln, chat)
	user, _ := connect(t, ln, nil)
	if r := user.say("login alice"); r != "ok" {
		t.Fatalf("login: %q", r)
	}
	stranger, _ := connect(t, ln, nil)
	var last string
	for last == "" || last == "what" {
		last = stranger.say("noop")
		time.Sleep(20 * time.Millisecond)
	}
	if last != "bye login" {
		t.Fatalf("chatting stranger got %q, want bye login", last)
	}
	if got := stranger.line(); got != "EOF" {
		t.Fatalf("after bye: %q", got)
	}
	// The user connected earlier, so its login deadline has passed too.
	if r := user.say("noop"); r != "what" {
		t.Fatalf("authenticated connection after the login deadline: %q", r)
	}
	if got := unauthenticated(l); got != 0 {
		t.Errorf("Unauthenticated = %d, want 0", got)
	}
}

// TestPerHostCap: one IP address may hold MaxPerHost connections; another
// address is not affected, and a slot freed is taken again.
func TestPerHostCap(t *testing.T) {
	var refused refusals
	l := New(Config{Name: "test", CloseConns: true, MaxConns: 10, MaxPerHost: 2, Busy: "busy\r\n", HostBusy: "host busy\r\n", Refused: refused.add})
	defer l.Close()
	ln := listen(t)
	serve(l, ln, chat)
	a, _ := connect(t, ln, nil)
	connect(t, ln, nil)
	if _, l := connect(t, ln, nil); l != "host busy" {
		t.Fatalf("third connection from 127.0.0.1 got %q, want host busy", l)
	}
	if _, l := connect(t, ln, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}); l != "hello" {
		t.Fatalf("connection from 127.0.0.2 got %q", l)
	}
	_ = a.c.Close()
	waitFor(t, "the closed connection to be counted out", func() bool { return l.Conns() == 2 })
	if _, l := connect(t, ln, nil); l != "hello" {
		t.Fatalf("after one closed, 127.0.0.1 got %q", l)
	}
	if got := refused.String(); got != "host" {
		t.Errorf("Refused reasons %q, want host", got)
	}
}

// TestPerUserCap: a user at MaxPerUser connections is refused one more
// login, which leaves that connection unauthenticated; once one of the
// user's connections ends, the login succeeds.
func TestPerUserCap(t *testing.T) {
	var refused refusals
	l := New(Config{Name: "test", CloseConns: true, MaxConns: 10, MaxPerUser: 1, Refused: refused.add})
	defer l.Close()
	ln := listen(t)
	serve(l, ln, chat)
	a, _ := connect(t, ln, nil)
	b, _ := connect(t, ln, nil)
	if r := a.say("login alice"); r != "ok" {
		t.Fatalf("first login: %q", r)
	}
	if r := b.say("login alice"); r != "no" {
		t.Fatalf("second login of alice: %q, want no", r)
	}
	if got := unauthenticated(l); got != 1 {
		t.Fatalf("Unauthenticated after the refusal = %d, want 1", got)
	}
	if r := b.say("login bob"); r != "ok" {
		t.Fatalf("another user: %q", r)
	}
	c, _ := connect(t, ln, nil)
	_ = a.c.Close()
	waitFor(t, "alice's connection to be counted out", func() bool { return l.Conns() == 2 })
	if r := c.say("login alice"); r != "ok" {
		t.Fatalf("alice after her connection ended: %q", r)
	}
	if got := refused.String(); got != "user" {
		t.Errorf("Refused reasons %q, want user", got)
	}
}
