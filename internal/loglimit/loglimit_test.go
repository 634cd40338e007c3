package loglimit

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRepeatsHeldBackAndCounted(t *testing.T) {
	var buf syncBuf
	h := New(slog.NewTextHandler(&buf, nil)).(*handler)
	h.window = 200 * time.Millisecond
	log := slog.New(h).With("node", "n1")
	bad := errors.New("creating object 7: no such file or directory")
	for i := range 1000 {
		log.Error("pebble: background error", "err", bad, "i", i)
		log.Info("delivered", "i", i)
	}
	log.Error("pebble: background error", "err", errors.New("another cause"))
	out := buf.String()
	if n := strings.Count(out, "pebble: background error"); n != 2 {
		t.Fatalf("%d background error lines in the window, want the first of each cause:\n%.2000s", n, out)
	}
	if n := strings.Count(out, "msg=delivered"); n != 1000 {
		t.Errorf("%d info lines, want every one", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "999 more in the last 200ms: pebble: background error") {
		if time.Now().After(deadline) {
			t.Fatalf("no count line:\n%s", buf.String()[len(out)-300:])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(buf.String(), `node=n1`) {
		t.Error("the count line lost the logger's attributes")
	}
	// After the window the next one passes again.
	log.Error("pebble: background error", "err", bad)
	if n := strings.Count(buf.String(), "msg=\"pebble: background error\""); n != 3 {
		t.Errorf("%d lines after the window, want 3:\n%s", n, buf.String()[len(out):])
	}
}
