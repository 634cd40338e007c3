package auth

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/saslauthdtest"
)

func TestSaslauthdReal(t *testing.T) {
	sock, _ := saslauthdtest.Start(t, map[string]string{"alice": "wonder land"})
	s := &Saslauthd{Path: sock, Service: "imap", Timeout: 5 * time.Second}
	if err := s.Verify("alice", "wonder land"); err != nil {
		t.Errorf("right password: %v", err)
	}
	for _, c := range [][2]string{{"alice", "wonder"}, {"alice", ""}, {"bob", "wonder land"}, {"", "x"}} {
		err := s.Verify(c[0], c[1])
		if !errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrUnavailable) {
			t.Errorf("Verify(%q, %q) = %v, want bad credentials", c[0], c[1], err)
		}
	}
}

// A saslauthd that is not running is unavailable, not a wrong password.
func TestSaslauthdDown(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "mux")
	err := (&Saslauthd{Path: sock}).Verify("alice", "pw")
	if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadCredentials) {
		t.Errorf("no socket: %v", err)
	}
	// A socket nobody accepts on any more (saslauthd killed).
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	err = (&Saslauthd{Path: sock}).Verify("alice", "pw")
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("stale socket: %v", err)
	}
}

// fakeSaslauthd reads one request and answers with reply as given (raw
// bytes, so the test can send garbage), or not at all when reply is nil.
func fakeSaslauthd(t *testing.T, reply []byte) (string, <-chan []string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "mux")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var fields []string
		for range 4 {
			var n uint16
			if binary.Read(c, binary.BigEndian, &n) != nil {
				return
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			fields = append(fields, string(b))
		}
		got <- fields
		if reply == nil {
			io.Copy(io.Discard, c) // until the client gives up
			return
		}
		c.Write(reply)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return sock, got
}

func counted(s string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(s))), s...)
}

func TestSaslauthdProtocol(t *testing.T) {
	sock, got := fakeSaslauthd(t, counted("OK"))
	if err := (&Saslauthd{Path: sock, Service: "pop", Realm: "example.com"}).Verify("alice", "p\x00w"); err != nil {
		t.Fatal(err)
	}
	if f := <-got; strings.Join(f, "|") != "alice|p\x00w|pop|example.com" {
		t.Errorf("request fields %q", f)
	}
	sock, _ = fakeSaslauthd(t, counted("NO authentication failed"))
	if err := (&Saslauthd{Path: sock}).Verify("alice", "pw"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("NO: %v", err)
	}
	for name, reply := range map[string][]byte{
		"garbage":   counted("HELLO"),
		"truncated": {0, 10, 'O', 'K'},
		"huge":      {0xff, 0xff},
		"nothing":   {},
	} {
		sock, _ := fakeSaslauthd(t, reply)
		err := (&Saslauthd{Path: sock, Timeout: 2 * time.Second}).Verify("alice", "pw")
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s reply: %v", name, err)
		}
	}
}

func TestSaslauthdTimeout(t *testing.T) {
	sock, _ := fakeSaslauthd(t, nil)
	start := time.Now()
	err := (&Saslauthd{Path: sock, Timeout: 300 * time.Millisecond}).Verify("alice", "pw")
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("silent saslauthd: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}
