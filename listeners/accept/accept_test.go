package accept

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func dial(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// serve runs l.Serve(ln, handle) and returns what it returned, on a channel.
func serve(l *Loop, ln net.Listener, handle func(net.Conn, *Preauth)) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.Serve(ln, handle) }()
	return done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

// greet is a handler that says hello and then holds the connection until
// the loop closes.
func greet(l *Loop) func(net.Conn, *Preauth) {
	return func(c net.Conn, _ *Preauth) {
		_, _ = c.Write([]byte("hello\r\n"))
		<-l.Context().Done()
	}
}

func TestCapRefusesWithBusy(t *testing.T) {
	const busy = "* BYE full\r\n"
	l := New(Config{Name: "test", MaxConns: 2, MaxUnauthenticated: 2, Busy: busy})
	ln := listen(t)
	done := serve(l, ln, greet(l))
	buf := make([]byte, len("hello\r\n"))
	for range 2 {
		if _, err := io.ReadFull(dial(t, ln), buf); err != nil || string(buf) != "hello\r\n" {
			t.Fatalf("admitted connection read %q, %v", buf, err)
		}
	}
	if got := l.Conns(); got != 2 {
		t.Fatalf("Conns = %d, want 2", got)
	}
	got, err := io.ReadAll(dial(t, ln))
	if err != nil || string(got) != busy {
		t.Fatalf("connection over the cap read %q, %v; want %q and EOF", got, err, busy)
	}
	if got := l.Conns(); got != 2 {
		t.Fatalf("Conns after refusal = %d, want 2", got)
	}
	l.Close()
	if err := result(t, done); err != nil {
		t.Fatalf("Serve after Close returned %v, want nil", err)
	}
	if got := l.Conns(); got != 0 {
		t.Fatalf("Conns after Close = %d, want 0", got)
	}
}

func TestCloseWaitsForHandlers(t *testing.T) {
	l := New(Config{Name: "test", MaxConns: 10})
	ln := listen(t)
	var finished atomic.Bool
	done := serve(l, ln, func(c net.Conn, _ *Preauth) {
		_, _ = c.Write([]byte("x"))
		<-l.Context().Done()
		// Work done after cancellation must still finish before Close
		// returns.
		time.Sleep(50 * time.Millisecond)
		finished.Store(true)
	})
	c := dial(t, ln)
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if !finished.Load() {
		t.Fatal("Close returned before the handler did")
	}
	if err := result(t, done); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	// Without CloseConns the handler, not the loop, chose when to end;
	// the loop still closes the connection after it.
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read after Close = %v, want EOF", err)
	}
}

func TestCloseConnsEndsBlockedReads(t *testing.T) {
	l := New(Config{Name: "test", MaxConns: 10, CloseConns: true})
	ln := listen(t)
	readErr := make(chan error, 1)
	done := serve(l, ln, func(c net.Conn, _ *Preauth) {
		_, _ = c.Write([]byte("x"))
		// Ignores Context: only closing the connection ends this read.
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	})
	c := dial(t, ln)
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	select {
	case err := <-readErr:
		if err == nil {
			t.Fatal("handler's read succeeded after Close")
		}
	default:
		t.Fatal("Close returned before the handler did")
	}
	if err := result(t, done); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

func TestServeAfterClose(t *testing.T) {
	l := New(Config{Name: "test", MaxConns: 1})
	l.Close()
	ln := listen(t)
	defer ln.Close()
	if err := l.Serve(ln, func(net.Conn, *Preauth) { t.Error("handler ran") }); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve after Close = %v, want net.ErrClosed", err)
	}
}

func TestListenerClosedElsewhere(t *testing.T) {
	l := New(Config{Name: "test", MaxConns: 1})
	defer l.Close()
	ln := listen(t)
	done := serve(l, ln, func(net.Conn, *Preauth) {})
	// Wait until Serve has registered ln, so that the close below hits
	// its Accept rather than racing it.
	waitFor(t, "Serve to accept", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.listeners) == 1
	})
	_ = ln.Close()
	if err := result(t, done); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Serve = %v, want net.ErrClosed", err)
	}
}

// flaky fails its first n accepts as a process out of file descriptors
// does.
type flaky struct {
	net.Listener
	n atomic.Int32
}

func (f *flaky) Accept() (net.Conn, error) {
	if f.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return f.Listener.Accept()
}

func TestAcceptErrorsDoNotStopServe(t *testing.T) {
	l := New(Config{Name: "test", MaxConns: 1})
	ln := &flaky{Listener: listen(t)}
	ln.n.Store(3)
	done := serve(l, ln, greet(l))
	buf := make([]byte, len("hello\r\n"))
	if _, err := io.ReadFull(dial(t, ln), buf); err != nil {
		t.Fatalf("after accept errors: %v", err)
	}
	if ln.n.Load() >= 0 {
		t.Fatal("the failing accepts were not all made")
	}
	l.Close()
	if err := result(t, done); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

func TestCloseDuringBackoff(t *testing.T) {
	l := New(Config{Name: "test", MaxConns: 1})
	ln := &flaky{Listener: listen(t)}
	ln.n.Store(1 << 30)
	done := serve(l, ln, func(net.Conn, *Preauth) {})
	waitFor(t, "accept errors", func() bool { return ln.n.Load() < 1<<30-2 })
	l.Close()
	if err := result(t, done); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
}

// syncBuffer is a log sink the handler goroutines and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestHandlerPanicCostsOneConnection: a handler that panics ends its own
// connection, is logged with its stack at error level, and the process
// and the listener go on serving. Without the recover the test binary
// dies.
func TestHandlerPanicCostsOneConnection(t *testing.T) {
	var logs syncBuffer
	l := New(Config{Name: "test", MaxConns: 10,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelError}))})
	ln := listen(t)
	var n atomic.Int32
	done := serve(l, ln, func(c net.Conn, _ *Preauth) {
		if i := n.Add(1); i == 1 {
			_ = []byte("hello")[i+8] // a real runtime panic, as a bad index on a peer's bytes
		}
		_, _ = c.Write([]byte("hello\r\n"))
		<-l.Context().Done()
	})
	first := dial(t, ln)
	if b, err := io.ReadAll(first); err != nil || len(b) != 0 {
		t.Fatalf("panicked connection read %q, %v; want a plain close", b, err)
	}
	buf := make([]byte, len("hello\r\n"))
	if _, err := io.ReadFull(dial(t, ln), buf); err != nil || string(buf) != "hello\r\n" {
		t.Fatalf("next connection read %q, %v", buf, err)
	}
	waitFor(t, "the panicked connection to be counted out", func() bool { return l.Conns() == 1 })
	out := logs.String()
	for _, want := range []string{"level=ERROR", "test: connection handler panicked", "index out of range", "accept_test.go"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	l.Close()
	if err := result(t, done); err != nil {
		t.Errorf("Serve: %v", err)
	}
}
