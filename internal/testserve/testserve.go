// Package testserve runs the throwaway servers tests talk to: scripted
// backends, sinks and relays on a free loopback port.
package testserve

import (
	"net"
	"sync"
	"testing"
)

// Serve listens on addr (host:0 for a free port) and runs handle for each
// connection in its own goroutine, closing the connection when handle
// returns. When the test ends the listener is closed and every handler
// waited for, so handlers must end once their peer hangs up.
func Serve(t testing.TB, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	return ln
}
