package imapproxy_test

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/imapproxy"
)

// selectHandler answers SELECT and FETCH like a small mailbox.
func selectHandler(c *fakeConn, tag, cmd string) bool {
	switch up := strings.ToUpper(cmd); {
	case strings.HasPrefix(up, "SELECT "):
		c.send("* 1 EXISTS")
		c.send(tag + " OK [READ-WRITE] selected")
	case strings.HasPrefix(up, "FETCH "):
		c.send("* 1 FETCH (BODY[] {5}\r\nhello)")
		c.send(tag + " OK done")
	default:
		c.send(tag + " BAD unknown")
	}
	return true
}

func TestProxyLoginAsProxyUser(t *testing.T) {
	f := startFake(t, "LITERAL+ IDLE", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	if u := c.ok("SELECT INBOX"); !has(u, "1 EXISTS") {
		t.Errorf("SELECT: %v", u)
	}
	if u := c.ok("FETCH 1 BODY[]"); !has(u, "hello") {
		t.Errorf("FETCH: %v", u)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.login != "alice proxy" {
		t.Errorf("backend login (authzid authcid) = %q", f.login)
	}
}

func TestProxySelectedBackendLost(t *testing.T) {
	f := startFake(t, "LITERAL+", func(c *fakeConn, tag, cmd string) bool {
		if strings.HasPrefix(strings.ToUpper(cmd), "FETCH") {
			c.send("* 1 FETCH (BODY[] {100}\r\nhalf") // then dies mid-literal
			return false
		}
		return selectHandler(c, tag, cmd)
	})
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	c.send("f1 FETCH 1 BODY[]\r\n")
	var last string
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			break
		}
		last = l
	}
	if !strings.Contains(last, "* BYE Fatal error: Lost connection to selected backend") {
		t.Errorf("last line %q", last)
	}
}

func TestProxyOtherBackendDown(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String(), "fake2": closedAddr(t)})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	if tagged := c.no("STATUS other (MESSAGES)"); !strings.Contains(tagged, "[UNAVAILABLE]") {
		t.Errorf("STATUS on a down backend: %s", tagged)
	}
	if tagged := c.no("APPEND other {3+}\r\nabc"); !strings.Contains(tagged, "[UNAVAILABLE]") {
		t.Errorf("APPEND to a down backend: %s", tagged)
	}
	if tagged := c.no("APPEND nowhere {3+}\r\nabc"); !strings.Contains(tagged, "[TRYCREATE]") {
		t.Errorf("APPEND to a missing mailbox: %s", tagged)
	}
	c.ok("FETCH 1 BODY[]") // the selected mailbox still works
}

// TestProxyLiteralConversion: a backend without LITERAL+ is asked before
// each literal, though the client sent a non-synchronising one; a backend
// refusing a literal ends the command without the client sending it.
func TestProxyLiteralConversion(t *testing.T) {
	f := startFake(t, "", func(c *fakeConn, tag, cmd string) bool {
		up := strings.ToUpper(cmd)
		switch {
		case strings.HasPrefix(up, "APPEND OTHER "):
			c.send(tag + " NO [OVERQUOTA] no room")
		case strings.HasPrefix(up, "APPEND INBOX "):
			c.send("+ send it")
			buf := make([]byte, 5)
			if _, err := io.ReadFull(c.r, buf); err != nil || string(buf) != "hello" {
				c.send(tag + " BAD literal " + string(buf))
				return true
			}
			if rest := c.line(); rest != "" {
				c.send(tag + " BAD rest " + rest)
				return true
			}
			c.send(tag + " OK [APPENDUID 1 1] stored")
		default:
			return selectHandler(c, tag, cmd)
		}
		return true
	})
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String(), "fake2": f.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	if _, tagged := c.cmd("APPEND INBOX {5+}\r\nhello"); !strings.HasPrefix(tagged, "OK [APPENDUID") {
		t.Errorf("APPEND: %s", tagged)
	}
	if !has(f.received(), "APPEND INBOX {5}") {
		t.Errorf("the backend was not asked with a synchronising literal: %q", f.received())
	}
	// A large synchronising literal is the backend's to accept: its
	// refusal reaches the client instead of "+".
	c.send("a2 APPEND other {100000}\r\n")
	if l := c.line(); !strings.HasPrefix(l, "a2 NO [OVERQUOTA]") {
		t.Errorf("refused APPEND: %q", l)
	}
	c.ok("NOOP")
}

func TestProxyLimits(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()}, func(cfg *imapproxy.Config) {
		cfg.Limits.MaxLine = 1000
		cfg.Limits.MaxLiteral = 4096
		cfg.Limits.MaxConns = 2
		cfg.Limits.IdleTimeout = 300 * time.Millisecond
	})
	c := login(t, addr, "alice", "alicepw")
	// A synchronising literal over the limit is not asked for.
	c.send("a1 APPEND INBOX {5000}\r\n")
	if l := c.line(); !strings.HasPrefix(l, "a1 NO [TOOBIG]") {
		t.Errorf("oversized literal: %q", l)
	}
	c.ok("NOOP")
	// Over MaxConns: turned away at once.
	extra := dial(t, addr)
	third, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	if l, _ := bufio.NewReader(third).ReadString('\n'); !strings.HasPrefix(l, "* BYE Too many") {
		t.Errorf("third connection: %q", l)
	}
	// A line over MaxLine ends the session.
	extra.send("a1 LOGIN " + strings.Repeat("x", 2000) + " y\r\n")
	if l := extra.line(); !strings.HasPrefix(l, "* BYE Line too long") {
		t.Errorf("long line: %q", l)
	}
	// Idle clients are logged out.
	if l := c.line(); !strings.HasPrefix(l, "* BYE Autologout") {
		t.Errorf("idle: %q", l)
	}
}

func TestProxyBeforeLogin(t *testing.T) {
	addr := fakeMurder(t, nil, func(cfg *imapproxy.Config) { cfg.AllowPlaintext = false })
	c := dial(t, addr)
	u := c.ok("CAPABILITY")
	if !has(u, "LOGINDISABLED") || has(u, "AUTH=PLAIN") {
		t.Errorf("CAPABILITY without TLS: %v", u)
	}
	if tagged := c.no("LOGIN alice alicepw"); !strings.Contains(tagged, "PRIVACYREQUIRED") {
		t.Errorf("plaintext LOGIN: %s", tagged)
	}
	for _, cmd := range []string{"SELECT INBOX", `LIST "" "*"`, "ENABLE CONDSTORE"} {
		if _, tagged := c.cmd("%s", cmd); tagged != "BAD Please login first" {
			t.Errorf("%s before login: %s", cmd, tagged)
		}
	}
}

func TestProxyShutdown(t *testing.T) {
	f := startFake(t, "LITERAL+ IDLE", func(c *fakeConn, tag, cmd string) bool {
		if strings.EqualFold(cmd, "IDLE") {
			c.send("+ idling")
			if l := c.line(); l != "DONE" {
				return false
			}
			c.send(tag + " OK idle done")
			return true
		}
		return selectHandler(c, tag, cmd)
	})
	var srv *imapproxy.Server
	fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()}, func(cfg *imapproxy.Config) {
		var err error
		if srv, err = imapproxy.NewServer(*cfg); err != nil {
			t.Fatal(err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	waiting := login(t, ln.Addr().String(), "alice", "alicepw")
	idling := login(t, ln.Addr().String(), "alice", "alicepw")
	idling.ok("SELECT INBOX")
	idling.send("i1 IDLE\r\n")
	if l := idling.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q", l)
	}
	srv.Close()
	if err := <-served; err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	if l := waiting.line(); l != "* BYE Server shutting down" {
		t.Errorf("waiting client: %q", l)
	}
	for {
		l := idling.line()
		if strings.HasPrefix(l, "* BYE") {
			break
		}
		if !strings.HasPrefix(l, "i1 ") {
			t.Fatalf("idling client: %q", l)
		}
	}
	if srv.Conns() != 0 {
		t.Errorf("%d connections after Close", srv.Conns())
	}
}

// TestProxyIdleWithoutBackendIdle: the proxy idles for a backend that
// cannot, and relays the updates of the NOOP after DONE.
func TestProxyIdleWithoutBackendIdle(t *testing.T) {
	f := startFake(t, "LITERAL+", selectHandler)
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	c.send("i1 IDLE\r\n")
	if l := c.line(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	c.send("DONE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "i1 OK") {
		t.Errorf("IDLE end: %q", l)
	}
	if got := f.received(); !has(got[len(got)-1:], "NOOP") {
		t.Errorf("no NOOP after DONE: %q", got)
	}
}

// TestProxyReconnect: a cached connection to a backend that has since
// closed it is replaced without the client noticing.
func TestProxyReconnect(t *testing.T) {
	one := startFake(t, "LITERAL+", selectHandler)
	two := startFake(t, "LITERAL+", func(c *fakeConn, tag, cmd string) bool {
		c.send("* STATUS other (MESSAGES 7)")
		c.send(tag + " OK done")
		return false // and hang up, as a restarting backend would
	})
	addr := fakeMurder(t, map[string]string{"fake1": one.ln.Addr().String(), "fake2": two.ln.Addr().String()})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	for range 3 {
		if u := c.ok("STATUS other (MESSAGES)"); !has(u, "MESSAGES 7") {
			t.Errorf("STATUS: %v", u)
		}
	}
}
