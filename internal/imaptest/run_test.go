package imaptest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// A server that never greets: the run is killed at its timeout and says
// so, instead of hanging the test.
func TestRunTimeout(t *testing.T) {
	Require(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	r, err := Run(t.Context(), Config{Addr: ln.Addr().String(), User: "u", Pass: "p", Box: "INBOX.x", Test: "tests/select", Timeout: time.Second})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("run against a silent server: %v", err)
	}
	if r == nil || r.Summary {
		t.Errorf("a killed run has a summary: %+v", r)
	}
}
