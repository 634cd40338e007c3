// Package loglimit keeps a failure that repeats from flooding the log: of
// records alike at Warn and above it passes the first few of each window
// and then one line counting the ones it held back. A master whose disk
// vanished once wrote 17 GB of one Pebble line.
//
// Records are alike when their level, message and attributes are, except
// for the connection's (conn, remote) and for numbers, which a loop tends
// to count up ("creating object 7", "8", ...).
package loglimit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Window is how long records alike are counted before they pass again.
const Window = time.Minute

// Burst is how many records alike pass in a window: an operator's
// repeated mistake (two reloads of a bad file) still shows in full.
const Burst = 5

// maxKeys bounds the memory of distinct records being counted; past it,
// records pass unlimited rather than evicting live counts.
const maxKeys = 4096

// New wraps h. Records below Warn always pass.
func New(h slog.Handler) slog.Handler {
	return &handler{next: h, st: &state{seen: make(map[string]*run)}, window: Window}
}

type run struct {
	start  time.Time
	passed int
	held   int
	msg    string
	level  slog.Level
	next   slog.Handler // the handler of the first held record, for the count line
	timer  *time.Timer
}

type state struct {
	mu   sync.Mutex
	seen map[string]*run
}

type handler struct {
	next   slog.Handler
	st     *state
	window time.Duration
	attrs  string // the key of the attributes given With
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	var b strings.Builder
	b.WriteString(h.attrs)
	for _, a := range as {
		keyAttr(&b, "", a)
	}
	return &handler{next: h.next.WithAttrs(as), st: h.st, window: h.window, attrs: b.String()}
}

func (h *handler) WithGroup(g string) slog.Handler {
	return &handler{next: h.next.WithGroup(g), st: h.st, window: h.window, attrs: h.attrs + "[" + g + "]"}
}

// keyAttr writes a into a record's key, numbers and connections left out.
func keyAttr(b *strings.Builder, prefix string, a slog.Attr) {
	if a.Key == "conn" || a.Key == "remote" {
		return
	}
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, g := range v.Group() {
			keyAttr(b, prefix+a.Key+".", g)
		}
		return
	}
	b.WriteString(prefix + a.Key + "=")
	writeNoDigits(b, v.String())
	b.WriteByte(' ')
}

// writeNoDigits writes s with each run of digits as '#'.
func writeNoDigits(b *strings.Builder, s string) {
	digits := false
	for _, c := range s {
		if c >= '0' && c <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(c)
	}
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	var b strings.Builder
	b.WriteString(r.Level.String() + " ")
	writeNoDigits(&b, r.Message)
	b.WriteString(" " + h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		keyAttr(&b, "", a)
		return true
	})
	k := b.String()
	st := h.st
	st.mu.Lock()
	ru, ok := st.seen[k]
	if ok && r.Time.Sub(ru.start) < h.window {
		if ru.passed < Burst {
			ru.passed++
			st.mu.Unlock()
			return h.next.Handle(ctx, r)
		}
		ru.held++
		if ru.timer == nil {
			ru.next, ru.msg, ru.level = h.next, r.Message, r.Level
			ru.timer = time.AfterFunc(h.window-r.Time.Sub(ru.start), func() { h.report(k) })
		}
		st.mu.Unlock()
		return nil
	}
	if !ok && len(st.seen) >= maxKeys {
		for k, ru := range st.seen {
			if ru.timer == nil && r.Time.Sub(ru.start) >= h.window {
				delete(st.seen, k)
			}
		}
	}
	if ok {
		ru.start, ru.passed = r.Time, 1
	} else if len(st.seen) < maxKeys {
		st.seen[k] = &run{start: r.Time, passed: 1}
	}
	st.mu.Unlock()
	return h.next.Handle(ctx, r)
}

// report writes how many records alike were held back in the window that
// just ended, and forgets them, so the next one passes.
func (h *handler) report(k string) {
	st := h.st
	st.mu.Lock()
	ru := st.seen[k]
	delete(st.seen, k)
	st.mu.Unlock()
	if ru == nil || ru.held == 0 {
		return
	}
	r := slog.NewRecord(time.Now(), ru.level, fmt.Sprintf("%d more in the last %v: %s", ru.held, h.window, ru.msg), 0)
	_ = ru.next.Handle(context.Background(), r)
}
