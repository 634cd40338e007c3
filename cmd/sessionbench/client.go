package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// conn is a setup-time client connection: a small reader that is dropped
// once the session idles, so that the client side holds no more than the
// socket per session.
type conn struct {
	c net.Conn
	r *bufio.Reader
}

func dial(ctx context.Context, local *net.TCPAddr, addr string) (*conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: local}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	cc := &conn{c: c, r: bufio.NewReaderSize(c, 512)}
	if _, err := cc.line(); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return cc, nil
}

func (c *conn) line() (string, error) {
	l, err := c.r.ReadString('\n')
	return strings.TrimRight(l, "\r\n"), err
}

// cmd sends one command and reads to its tagged answer, which must be OK.
// The answers the bench asks for hold no literals.
func (c *conn) cmd(tag, command string) error {
	if _, err := c.c.Write([]byte(tag + " " + command + "\r\n")); err != nil {
		return err
	}
	for {
		l, err := c.line()
		if err != nil {
			return fmt.Errorf("%s: %w", command, err)
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return fmt.Errorf("%s: %s", command, l)
			}
			return nil
		}
	}
}

// idle starts IDLE and waits for the continuation.
func (c *conn) idle(tag string) error {
	if _, err := c.c.Write([]byte(tag + " IDLE\r\n")); err != nil {
		return err
	}
	for {
		l, err := c.line()
		if err != nil {
			return fmt.Errorf("IDLE: %w", err)
		}
		if strings.HasPrefix(l, "+") {
			return nil
		}
		if strings.HasPrefix(l, tag+" ") {
			return fmt.Errorf("IDLE: %s", l)
		}
	}
}

// createInboxes makes user.NAME for each user on the backend at addr.
func createInboxes(ctx context.Context, addr string, users []string) error {
	c, err := dial(ctx, nil, addr)
	if err != nil {
		return err
	}
	defer c.c.Close()
	if err := c.cmd("a", "LOGIN "+adminUser+" "+adminPass); err != nil {
		return err
	}
	for i, u := range users {
		_ = c.c.SetDeadline(time.Now().Add(60 * time.Second))
		if err := c.cmd(fmt.Sprintf("c%d", i), "CREATE user."+u); err != nil {
			return err
		}
	}
	return nil
}

// selectOnce logs in as user and selects the INBOX.
func selectOnce(addr, user string) error {
	c, err := dial(context.Background(), nil, addr)
	if err != nil {
		return err
	}
	defer c.c.Close()
	if err := c.cmd("a", "LOGIN "+user+" "+userPass); err != nil {
		return err
	}
	return c.cmd("b", "SELECT INBOX")
}

// perSource is how many connections one client address opens: well
// under the ephemeral port range (32768-60999 by default), so that
// 100,000 sessions to one port do not run out of ports.
const perSource = 20000

// sourceAddr is the client address of connection i: 127.<net>.x.y, one
// address per perSource connections.
func sourceAddr(net8 byte, i int) *net.TCPAddr {
	n := i / perSource
	return &net.TCPAddr{IP: net.IPv4(127, net8, byte(n/250), byte(1+n%250))}
}

// script is what each session does once connected: how far it goes.
type script int

const (
	scriptLogin  script = iota // LOGIN only: no backend connection
	scriptSelect               // LOGIN, SELECT INBOX
	scriptIdle                 // LOGIN, SELECT INBOX, IDLE
)

var scriptNames = map[string]script{"login": scriptLogin, "select": scriptSelect, "idle": scriptIdle}

func (s script) String() string {
	for k, v := range scriptNames {
		if v == s {
			return k
		}
	}
	return "?"
}

// openSessions opens n sessions to addr with workers goroutines, user
// i%len(users) for session i, each running s and then left open. It
// returns the connections (nil entries for failures), the time it took
// and the first error.
func openSessions(ctx context.Context, addr string, users []string, n, workers int, s script, progress func(int)) ([]net.Conn, time.Duration, error) {
	conns := make([]net.Conn, n)
	var next, opened atomic.Int64
	var firstErr error
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := openOne(ctx, addr, sourceAddr(1, i), users[i%len(users)], s)
				if err != nil {
					fail(fmt.Errorf("session %d: %w", i, err))
					continue
				}
				conns[i] = c
				if k := opened.Add(1); k%5000 == 0 {
					progress(int(k))
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return conns, took, firstErr
}

func openOne(ctx context.Context, addr string, local *net.TCPAddr, user string, s script) (net.Conn, error) {
	c, err := dial(ctx, local, addr)
	if err != nil {
		return nil, err
	}
	err = c.cmd("a", "LOGIN "+user+" "+userPass)
	if err == nil && s >= scriptSelect {
		err = c.cmd("b", "SELECT INBOX")
	}
	if err == nil && s >= scriptIdle {
		err = c.idle("c")
	}
	if err == nil && c.r.Buffered() > 0 {
		err = errors.New("unexpected data after setup")
	}
	if err != nil {
		c.c.Close()
		return nil, err
	}
	_ = c.c.SetDeadline(time.Time{})
	return c.c, nil
}

// finish ends every open session: DONE (in IDLE) and LOGOUT, checking
// the answers, so that a session the server lost while it idled counts.
// It returns how many ended properly.
func finish(conns []net.Conn, s script, workers int) (ok int, firstErr error) {
	var next, good atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(conns) {
					return
				}
				if conns[i] == nil {
					continue
				}
				err := finishOne(conns[i], s)
				conns[i].Close()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("session %d: %w", i, err)
					}
					mu.Unlock()
					continue
				}
				good.Add(1)
			}
		}()
	}
	wg.Wait()
	return int(good.Load()), firstErr
}

func finishOne(nc net.Conn, s script) error {
	_ = nc.SetDeadline(time.Now().Add(60 * time.Second))
	c := &conn{c: nc, r: bufio.NewReaderSize(nc, 512)}
	if s == scriptIdle {
		if _, err := nc.Write([]byte("DONE\r\n")); err != nil {
			return err
		}
		for {
			l, err := c.line()
			if err != nil {
				return fmt.Errorf("DONE: %w", err)
			}
			if strings.HasPrefix(l, "c ") {
				if !strings.HasPrefix(l, "c OK") {
					return fmt.Errorf("DONE: %s", l)
				}
				break
			}
		}
	}
	return c.cmd("z", "LOGOUT")
}

// loginRate logs in and out over fresh connections with workers
// goroutines for d, and returns the logins per second.
func loginRate(ctx context.Context, addr string, users []string, workers int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var next, done atomic.Int64
	var firstErr error
	var mu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				c, err := dial(context.Background(), sourceAddr(2, i), addr)
				if err == nil {
					err = c.cmd("a", "LOGIN "+users[i%len(users)]+" "+userPass)
					if err == nil {
						err = c.cmd("z", "LOGOUT")
					}
					c.c.Close()
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(done.Load()) / time.Since(start).Seconds(), firstErr
}
