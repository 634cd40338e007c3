package loglimit

import (
	"bytes"
	"errors"
	"fmt"
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
	for i := range 1000 {
		// As Pebble's flush loop did: a new object number each time.
		log.Error(fmt.Sprintf("pebble: background error: creating object %d", i),
			"err", fmt.Errorf("open %06d.sst: no such file or directory", i), "conn", i)
		log.Info("delivered", "i", i)
	}
	log.Error("pebble: background error: creating object 1", "err", errors.New("input/output error"))
	for _, p := range []string{"bad line 1", "bad line 2"} {
		log.Error("users file problem", "problem", p)
	}
	out := buf.String()
	if n := strings.Count(out, "no such file or directory"); n != Burst {
		t.Fatalf("%d lines alike in the window, want %d:\n%.3000s", n, Burst, out)
	}
	for _, want := range []string{"input/output error", "bad line 1", "bad line 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("a record not alike the others was held back: %q", want)
		}
	}
	if n := strings.Count(out, "msg=delivered"); n != 1000 {
		t.Errorf("%d info lines, want every one", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), fmt.Sprintf("%d more in the last 200ms: pebble: background error", 1000-Burst)) {
		if time.Now().After(deadline) {
			t.Fatalf("no count line:\n%s", buf.String()[len(out)-300:])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(buf.String()[len(out):], `node=n1`) {
		t.Error("the count line lost the logger's attributes")
	}
	// After the window they pass again.
	before := strings.Count(buf.String(), "no such file or directory")
	log.Error("pebble: background error: creating object 5000", "err", errors.New("open 005000.sst: no such file or directory"))
	if n := strings.Count(buf.String(), "no such file or directory"); n != before+1 {
		t.Errorf("a record after the window was held back")
	}
}
