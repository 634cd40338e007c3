package imapproxy_test

import (
	"net"
	"testing"
)

// TestIdleSessionsHoldNoBuffers: sessions waiting for their client, in
// IDLE or between commands, give their sockets' buffers back (8 KiB per
// socket, two sockets per session), so that many idle sessions fit in
// little memory. The backend runs in a helper process, so what is
// measured is the proxy's and the test clients' sockets.
func TestIdleSessionsHoldNoBuffers(t *testing.T) {
	if raceEnabled {
		t.Skip("memory per session is not measurable under the race detector")
	}
	const n = 200
	backendAddr, _ := helper(t, "ROOKERY_HELPER=backend")
	addr := fakeMurder(t, map[string]string{"fake1": backendAddr})
	open := func(idle bool) []net.Conn {
		conns := make([]net.Conn, n)
		for i := range conns {
			c := login(t, addr, "alice", "alicepw")
			c.ok("SELECT INBOX")
			if idle {
				c.send("i IDLE\r\n")
				if l := c.line(); l != "+ idling" {
					t.Fatalf("IDLE: %q", l)
				}
			}
			if c.r.Buffered() > 0 {
				t.Fatal("more than the answers came")
			}
			conns[i] = c.conn
		}
		return conns
	}
	for _, idle := range []bool{false, true} {
		before := inUse()
		conns := open(idle)
		per := float64(inUse()-before) / n
		// Holding its buffers, a session costs 16 KiB more: about 31 KiB
		// between commands, 32 KiB in IDLE; without, 10 and 12 KiB.
		if per > 16<<10 {
			t.Errorf("idle=%v: %.0f bytes per idle session, want under 16 KiB", idle, per)
		}
		t.Logf("idle=%v: %.0f bytes per idle session", idle, per)
		for _, c := range conns {
			if idle {
				c.Write([]byte("DONE\r\n"))
			}
			c.Close()
		}
	}
}
