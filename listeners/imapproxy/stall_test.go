package imapproxy_test

import (
	"bytes"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rookery/rookery/listeners/imapproxy"
)

// A backend that breaks in the middle of a response, by stalling or by
// hanging up, costs the client that command (tagged NO [UNAVAILABLE]) when
// the session can go on, or the session (BYE, then the connection closes)
// when the selected mailbox or the client's stream is lost; the backend
// connection is dropped, and other sessions are served meanwhile.

// breakage is how a scripted backend breaks: what it writes (to a FETCH,
// to a STATUS) before it stops, and whether it then hangs up or stalls
// until the proxy drops it.
type breakage struct {
	name          string
	fetch, status string
	hangUp        bool
}

var breakages = []breakage{
	{name: "stall after partial untagged line", fetch: "* 1 FETCH (", status: "* STATUS other (MESS"},
	{name: "stall inside a literal", fetch: "* 1 FETCH (BODY[] {500}\r\nhal", status: "* STATUS {5}\r\not"},
	{name: "close mid-response", fetch: "* 1 FETCH (UID 1", status: "* STATUS other (MESS", hangUp: true},
	{name: "empty line", fetch: "\r\n", status: "\r\n"},
}

// breaker answers like selectHandler (and STATUS), except that the first
// command starting with trigger gets brk: after writing its partial it
// reports on stalled, then hangs up, or waits for the proxy to drop the
// connection and reports how that wait ended on dropped (nil: the proxy
// closed it).
func breaker(trigger string, brk breakage, stalled chan<- struct{}, dropped chan<- error) func(c *fakeConn, tag, cmd string) bool {
	var fired atomic.Bool
	return func(c *fakeConn, tag, cmd string) bool {
		up := strings.ToUpper(cmd)
		if strings.HasPrefix(up, trigger) && fired.CompareAndSwap(false, true) {
			partial := brk.fetch
			if trigger == "STATUS " {
				partial = brk.status
			}
			io.WriteString(c.conn, partial)
			stalled <- struct{}{}
			if brk.hangUp {
				return false
			}
			_, err := io.Copy(io.Discard, c.r)
			dropped <- err
			return false
		}
		if strings.HasPrefix(up, "STATUS ") {
			c.send(`* STATUS other (MESSAGES 1)`)
			c.send(tag + " OK done")
			return true
		}
		return selectHandler(c, tag, cmd)
	}
}

func stallMurder(t *testing.T, h1, h2 func(c *fakeConn, tag, cmd string) bool) string {
	t.Helper()
	f1 := startFake(t, "LITERAL+ IDLE", h1)
	f2 := startFake(t, "LITERAL+", h2)
	return fakeMurder(t, map[string]string{"fake1": f1.ln.Addr().String(), "fake2": f2.ln.Addr().String()},
		func(cfg *imapproxy.Config) { cfg.Limits.BackendTimeout = 300 * time.Millisecond })
}

// rest reads what the proxy sends until it closes the connection; a
// proxy that never does fails the test at the client's deadline.
func (c *client) rest() string {
	c.t.Helper()
	c.deadline()
	b, err := io.ReadAll(c.r)
	if err != nil {
		c.t.Fatalf("waiting for the proxy to close: %v (got %q)", err, b)
	}
	return string(b)
}

// otherSessionWorks runs a whole session beside a broken one.
func otherSessionWorks(t *testing.T, addr string) {
	t.Helper()
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	if u := c.ok("FETCH 2 BODY[]"); !has(u, "hello") {
		t.Errorf("FETCH in another session: %v", u)
	}
	c.ok("LOGOUT")
}

func waitDropped(t *testing.T, brk breakage, dropped <-chan error) {
	t.Helper()
	if brk.hangUp {
		return
	}
	select {
	case err := <-dropped:
		if err != nil {
			t.Errorf("the backend connection was not closed by the proxy: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the backend connection was not dropped")
	}
}

// TestSelectedBackendBreaks: the selected backend breaking in a FETCH
// ends the session with BYE (the client's view of the mailbox is lost).
func TestSelectedBackendBreaks(t *testing.T) {
	for _, brk := range breakages {
		t.Run(brk.name, func(t *testing.T) {
			stalled, dropped := make(chan struct{}, 1), make(chan error, 1)
			addr := stallMurder(t, breaker("FETCH 1 ", brk, stalled, dropped), selectHandler)
			c := login(t, addr, "alice", "alicepw")
			c.ok("SELECT INBOX")
			c.send("f1 FETCH 1 BODY[]\r\n")
			<-stalled
			otherSessionWorks(t, addr)
			got := c.rest()
			if !strings.HasSuffix(got, "* BYE Fatal error: Lost connection to selected backend\r\n") {
				t.Errorf("client got %q, want a BYE and the end", got)
			}
			if strings.Contains(got, "f1 ") {
				t.Errorf("client got a tagged response too: %q", got)
			}
			waitDropped(t, brk, dropped)
			otherSessionWorks(t, addr)
		})
	}
}

// TestOtherBackendBreaks: a backend that is not the selected one breaking
// in a STATUS costs the client the command only, unless part of the
// response had reached the client (a literal): then the session ends.
func TestOtherBackendBreaks(t *testing.T) {
	for _, brk := range breakages {
		t.Run(brk.name, func(t *testing.T) {
			stalled, dropped := make(chan struct{}, 1), make(chan error, 1)
			addr := stallMurder(t, selectHandler, breaker("STATUS ", brk, stalled, dropped))
			c := login(t, addr, "alice", "alicepw")
			c.ok("SELECT INBOX")
			c.send("s1 STATUS other (MESSAGES)\r\n")
			<-stalled
			otherSessionWorks(t, addr)
			if strings.Contains(brk.status, "{") {
				got := c.rest()
				if !strings.HasSuffix(got, "\r\n* BYE Fatal error: Lost connection to backend in the middle of a response\r\n") {
					t.Errorf("client got %q, want the half response ended and a BYE", got)
				}
			} else {
				var untagged []string
				for {
					r := c.response()
					if rest, ok := strings.CutPrefix(r, "s1 "); ok {
						if !strings.HasPrefix(rest, "NO [UNAVAILABLE]") {
							t.Errorf("STATUS: %s", rest)
						}
						break
					}
					untagged = append(untagged, r)
				}
				if len(untagged) > 0 {
					t.Errorf("half a response reached the client: %q", untagged)
				}
				// The session goes on, and the backend can be used again
				// through a new connection.
				c.ok("FETCH 1 BODY[]")
				if u := c.ok("STATUS other (MESSAGES)"); !has(u, "MESSAGES 1") {
					t.Errorf("STATUS after the breakage: %v", u)
				}
			}
			waitDropped(t, brk, dropped)
			otherSessionWorks(t, addr)
		})
	}
}

// TestSlowFetchIsNotCut: the backend timeout counts from the last byte
// received, so a FETCH that takes several timeouts to arrive but never
// pauses for one goes through whole, through the buffered path (a small
// literal) and socket to socket (a large one).
func TestSlowFetchIsNotCut(t *testing.T) {
	const timeout = time.Second
	const pause = timeout / 8 // the backend's pace: slow, but moving
	for _, chunk := range []int{4 << 10, 32 << 10} {
		body := bytes.Repeat([]byte("0123456789abcdef"), 12*chunk/16)
		t.Run(strconv.Itoa(len(body)), func(t *testing.T) {
			f := startFake(t, "LITERAL+", func(c *fakeConn, tag, cmd string) bool {
				if !strings.HasPrefix(strings.ToUpper(cmd), "FETCH ") {
					return selectHandler(c, tag, cmd)
				}
				io.WriteString(c.conn, "* 1 FETCH (BODY[] {"+strconv.Itoa(len(body))+"}\r\n")
				for p := body; len(p) > 0; p = p[chunk:] {
					time.Sleep(pause)
					if _, err := c.conn.Write(p[:chunk]); err != nil {
						return false
					}
				}
				c.send(")")
				c.send(tag + " OK done")
				return true
			})
			addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()},
				func(cfg *imapproxy.Config) { cfg.Limits.BackendTimeout = timeout })
			c := login(t, addr, "alice", "alicepw")
			c.ok("SELECT INBOX")
			u := c.ok("FETCH 1 BODY[]")
			want := "* 1 FETCH (BODY[] {" + strconv.Itoa(len(body)) + "}\r\n" + string(body) + ")"
			if len(u) != 1 || u[0] != want {
				t.Errorf("FETCH came back cut or changed (%d responses)", len(u))
			}
		})
	}
}

// logBuffer collects a proxy's log lines for a test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBackendFailureCauseLogged: what makes a NO or a BYE is logged with
// its cause, while the client gets only the generic text.
func TestBackendFailureCauseLogged(t *testing.T) {
	var logs logBuffer
	var gone atomic.Bool // fake2 is taken out of the configuration
	stalled, dropped := make(chan struct{}, 2), make(chan error, 2)
	f1 := startFake(t, "LITERAL+", breaker("FETCH 1 ", breakages[2], stalled, dropped))
	f2 := startFake(t, "LITERAL+", breaker("STATUS ", breakages[3], stalled, dropped))
	addr := fakeMurder(t, map[string]string{"fake1": f1.ln.Addr().String(), "fake2": f2.ln.Addr().String()},
		func(cfg *imapproxy.Config) {
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			resolve := cfg.Resolve
			cfg.Resolve = func(server string) (string, string, string, bool) {
				if server == "fake2" && gone.Load() {
					return "", "", "", false
				}
				return resolve(server)
			}
		})
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	for range 2 {
		if tagged := c.no("STATUS other (MESSAGES)"); tagged != "NO [UNAVAILABLE] Server(s) unavailable to complete operation" {
			t.Errorf("STATUS: %s", tagged)
		}
		gone.Store(true)
	}
	c.send("f1 FETCH 1 BODY[]\r\n")
	if got := c.rest(); got != "* BYE Fatal error: Lost connection to selected backend\r\n" {
		t.Errorf("FETCH: %q", got)
	}
	out := logs.String()
	for _, want := range [][]string{
		{`msg="imapproxy: backend failed"`, "backend=fake2", `err="imapproxy: backend fake2: unexpected response \"\""`},
		{`msg="imapproxy: backend unavailable"`, "backend=fake2", `err="no address known"`},
		{`msg="imapproxy: lost the selected backend"`, "backend=fake1", "err=EOF"},
	} {
		if !slices.ContainsFunc(strings.Split(out, "\n"), func(line string) bool {
			return !slices.ContainsFunc(want, func(w string) bool { return !strings.Contains(line, w) })
		}) {
			t.Errorf("no log line has all of %q:\n%s", want, out)
		}
	}
}

// TestIdleBackendStallsMidResponse: in IDLE the backend may stay silent
// as long as it likes between responses, but not inside one: the client
// gets BYE without having to end its IDLE first.
func TestIdleBackendStallsMidResponse(t *testing.T) {
	f := startFake(t, "LITERAL+ IDLE", func(c *fakeConn, tag, cmd string) bool {
		if strings.ToUpper(cmd) != "IDLE" {
			return selectHandler(c, tag, cmd)
		}
		c.send("+ idling")
		io.WriteString(c.conn, "* 1 FETCH (FLAGS (")
		io.Copy(io.Discard, c.r) // until the proxy drops the connection
		return false
	})
	addr := fakeMurder(t, map[string]string{"fake1": f.ln.Addr().String()},
		func(cfg *imapproxy.Config) { cfg.Limits.BackendTimeout = 300 * time.Millisecond })
	c := login(t, addr, "alice", "alicepw")
	c.ok("SELECT INBOX")
	c.send("i1 IDLE\r\n")
	if l := c.line(); l != "+ idling" {
		t.Fatalf("IDLE: %q", l)
	}
	if got := c.rest(); got != "* BYE Fatal error: Lost connection to selected backend\r\n" {
		t.Errorf("client got %q", got)
	}
}
