package imapproxy_test

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/internal/testserve"
	"github.com/rookery/rookery/node"
)

// BenchmarkCyrus moves 1 MiB messages with FETCH and APPEND directly at
// a real Cyrus backend, through the Rookery frontend, and through a real
// Cyrus frontend in front of the same backend, side by side:
//
//	go test -run X -bench Cyrus ./listeners/imapproxy
func BenchmarkCyrus(b *testing.B) {
	m := startMurder(b)
	_, proxy := m.frontend(b)
	fe := cyrustest.Start(b, cyrustest.RoleFrontend, cyrustest.Options{
		Master:   m.master.MUPDATEAddr(),
		IMAPPort: cyrustest.FreePort(b),
	})
	fe.AddUser(b, "alice", "alicepw", false)
	fe.Sync(b)

	const size = 1 << 20
	var msg strings.Builder
	writeBody(&msg, size)
	body := []byte(msg.String())
	seed := login(b, m.be1.IMAPAddr(), "alice", "alicepw")
	seed.ok("APPEND INBOX {%d+}\r\n%s", size, body)

	compare(b, body, []target{
		{"direct", m.be1.IMAPAddr(), nil},
		{"rookery", proxy, nil},
		{"cyrus", fe.IMAPAddr(), nil},
	})
}

// BenchmarkRookery is BenchmarkCyrus with a Rookery backend: directly,
// through the Rookery frontend, through a bare TCP relay (bytes copied
// socket to socket, nothing parsed), which bounds what any proxy on this
// machine can reach, and, when Cyrus is installed, through a real Cyrus
// frontend. The backend is named host:port so that Cyrus finds it.
func BenchmarkRookery(b *testing.B) {
	m := startRookeryMaster(b)
	name := fmt.Sprintf("127.0.0.1:%d", cyrustest.FreePort(b))
	rb := m.rookeryBackend(b, name, func(cfg *node.Config) { cfg.IMAPListen = name })
	login(b, rb.IMAPAddr(), "admin", "secret").ok("CREATE user.alice")
	m.waitEntry(b, "user.alice", name)
	_, proxy := m.frontend(b)
	const size = 1 << 20
	var msg strings.Builder
	writeBody(&msg, size)
	body := []byte(msg.String())
	login(b, rb.IMAPAddr(), "alice", "alicepw").ok("APPEND INBOX {%d+}\r\n%s", size, body)
	targets := []target{{"direct", rb.IMAPAddr(), nil}, {"rookery", proxy, nil}, {"relay", startRelay(b, "127.0.0.1", rb.IMAPAddr()), nil}}
	if err := cyrustest.Available(); err == nil {
		fe := cyrustest.Start(b, cyrustest.RoleFrontend, cyrustest.Options{
			Master:   m.master.MUPDATEAddr(),
			IMAPPort: cyrustest.FreePort(b),
		})
		fe.AddUser(b, "alice", "alicepw", false)
		fe.Sync(b)
		targets = append(targets, target{"cyrus", fe.IMAPAddr(), nil})
	} else {
		b.Logf("no Cyrus frontend in this run: %v", err)
	}
	compare(b, body, targets)
}

// startRelay listens on a free port of host and joins each connection to
// one of its own to addr, copying both ways until either side closes.
func startRelay(t testing.TB, host, addr string) string {
	ln := testserve.Serve(t, net.JoinHostPort(host, "0"), func(c net.Conn) {
		u, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer u.Close()
		go func() { io.Copy(u, c); u.Close() }()
		io.Copy(c, u)
	})
	return ln.Addr().String()
}

type target struct {
	name, addr string
	// dial, if set, opens the client's connection (default: TCP to addr).
	dial func(addr string) (net.Conn, error)
}

// compare runs FETCH and APPEND of body against each target in turn
// within each iteration, so that a busy machine slows them alike, and
// reports each one's throughput and its ratio to the first.
func compare(b *testing.B, body []byte, targets []target) {
	size := int64(len(body))
	conns := make([]*client, len(targets))
	for i, tg := range targets {
		if tg.dial == nil {
			conns[i] = login(b, tg.addr, "alice", "alicepw")
		} else {
			conn, err := tg.dial(tg.addr)
			if err != nil {
				b.Fatal(err)
			}
			conns[i] = greeted(b, conn)
			conns[i].ok("LOGIN alice alicepw")
		}
		conns[i].cmd("CREATE INBOX.bench-%s", tg.name) // exists after the first round
	}
	run := func(b *testing.B, op func(c *client, i int)) {
		spent := make([]time.Duration, len(targets))
		b.SetBytes(size * int64(len(targets)))
		b.ResetTimer()
		for k := range b.N {
			// Each iteration starts at the next target, so that each one
			// follows each other one (and whatever work it leaves the
			// machine) equally often.
			for j := range conns {
				i := (k + j) % len(conns)
				start := time.Now()
				op(conns[i], i)
				spent[i] += time.Since(start)
			}
		}
		for i, tg := range targets {
			b.ReportMetric(float64(b.N)*float64(size)/spent[i].Seconds()/1e6, tg.name+"-MB/s")
			if i > 0 {
				b.ReportMetric(spent[0].Seconds()/spent[i].Seconds(), tg.name+"/"+targets[0].name)
			}
		}
	}
	b.Run("fetch-1MiB", func(b *testing.B) {
		for _, c := range conns {
			c.ok("EXAMINE INBOX")
		}
		run(b, func(c *client, _ int) { c.fetchDiscard("FETCH 1 BODY.PEEK[]") })
	})
	b.Run("append-1MiB", func(b *testing.B) {
		run(b, func(c *client, i int) { c.appendLiteral("INBOX.bench-"+targets[i].name, body) })
	})
}

// fetchDiscard runs a FETCH and reads its literals into io.Discard.
func (c *client) fetchDiscard(cmd string) {
	c.t.Helper()
	c.n++
	tag := "f" + strconv.Itoa(c.n)
	c.send(tag + " " + cmd + "\r\n")
	for {
		l := c.line()
		if n, ok := litSize(l); ok {
			if _, err := io.CopyN(io.Discard, c.r, int64(n)); err != nil {
				c.t.Fatal(err)
			}
			continue
		}
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				c.t.Fatal(l)
			}
			return
		}
	}
}

// appendLiteral appends msg with a synchronising literal, as mail
// clients do.
func (c *client) appendLiteral(mailbox string, msg []byte) {
	c.t.Helper()
	c.n++
	tag := "a" + strconv.Itoa(c.n)
	c.send(tag + " APPEND " + mailbox + " {" + strconv.Itoa(len(msg)) + "}\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		c.t.Fatal(l)
	}
	if _, err := c.conn.Write(msg); err != nil {
		c.t.Fatal(err)
	}
	c.send("\r\n")
	if l := c.line(); !strings.HasPrefix(l, tag+" OK") {
		c.t.Fatal(l)
	}
}

// BenchmarkPipe measures the proxy alone: FETCH and APPEND of 1 MiB
// against a backend process that answers from memory, directly and
// through the proxy, taking turns.
func BenchmarkPipe(b *testing.B) {
	backendAddr, _ := helper(b, "ROOKERY_HELPER=backend")
	proxy := fakeMurder(b, map[string]string{"fake1": backendAddr})
	direct := dial(b, backendAddr)
	direct.ok("LOGIN alice x")
	through := login(b, proxy, "alice", "alicepw")
	conns := []*client{direct, through}
	for _, c := range conns {
		c.ok("SELECT INBOX")
	}
	msg := fakeBody
	for _, op := range []struct {
		name string
		run  func(c *client)
	}{
		{"fetch-1MiB", func(c *client) { c.fetchDiscard("FETCH 1 BODY.PEEK[]") }},
		{"append-1MiB", func(c *client) { c.appendLiteral("INBOX", msg) }},
	} {
		b.Run(op.name, func(b *testing.B) {
			var spent [2]time.Duration
			b.SetBytes(2 * int64(len(msg)))
			b.ResetTimer()
			for range b.N {
				for i, c := range conns {
					start := time.Now()
					op.run(c)
					spent[i] += time.Since(start)
				}
			}
			mbps := func(d time.Duration) float64 { return float64(b.N) * float64(len(msg)) / d.Seconds() / 1e6 }
			b.ReportMetric(mbps(spent[0]), "direct-MB/s")
			b.ReportMetric(mbps(spent[1]), "rookery-MB/s")
			b.ReportMetric(spent[0].Seconds()/spent[1].Seconds(), "rookery/direct")
		})
	}
}
