// Package loglimit keeps a failure that repeats from flooding the log: of
// identical warnings and errors (same level, message and err) it passes
// the first of each window and then one line counting the ones it held
// back. A master whose disk vanished once wrote 17 GB of one Pebble line.
package loglimit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Window is how long identical records are held back after the first.
const Window = time.Minute

// maxKeys bounds the memory of distinct records being counted; past it,
// records pass unlimited rather than evicting live counts.
const maxKeys = 4096

// New wraps h. Records below Warn always pass.
func New(h slog.Handler) slog.Handler {
	return &handler{next: h, st: &state{seen: make(map[key]*run)}, window: Window}
}

type key struct {
	level slog.Level
	msg   string
	err   string
}

type run struct {
	start time.Time
	held  int
	next  slog.Handler // the handler of the first held record, for the count line
	timer *time.Timer
}

type state struct {
	mu   sync.Mutex
	seen map[key]*run
}

type handler struct {
	next   slog.Handler
	st     *state
	window time.Duration
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{next: h.next.WithAttrs(as), st: h.st, window: h.window}
}

func (h *handler) WithGroup(g string) slog.Handler {
	return &handler{next: h.next.WithGroup(g), st: h.st, window: h.window}
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	k := key{level: r.Level, msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			k.err = a.Value.String()
			return false
		}
		return true
	})
	st := h.st
	st.mu.Lock()
	if ru, ok := st.seen[k]; ok && r.Time.Sub(ru.start) < h.window {
		ru.held++
		if ru.timer == nil {
			ru.next = h.next
			ru.timer = time.AfterFunc(h.window-r.Time.Sub(ru.start), func() { h.report(k) })
		}
		st.mu.Unlock()
		return nil
	}
	if len(st.seen) >= maxKeys {
		for k, ru := range st.seen {
			if ru.timer == nil && r.Time.Sub(ru.start) >= h.window {
				delete(st.seen, k)
			}
		}
	}
	if len(st.seen) < maxKeys {
		if _, ok := st.seen[k]; !ok {
			st.seen[k] = &run{start: r.Time}
		} else {
			st.seen[k].start = r.Time
		}
	}
	st.mu.Unlock()
	return h.next.Handle(ctx, r)
}

// report writes how many records like k were held back in the window
// that just ended, and forgets k, so its next one passes.
func (h *handler) report(k key) {
	st := h.st
	st.mu.Lock()
	ru := st.seen[k]
	delete(st.seen, k)
	st.mu.Unlock()
	if ru == nil || ru.held == 0 {
		return
	}
	r := slog.NewRecord(time.Now(), k.level, fmt.Sprintf("%d more in the last %v: %s", ru.held, h.window, k.msg), 0)
	if k.err != "" {
		r.AddAttrs(slog.String("err", k.err))
	}
	_ = ru.next.Handle(context.Background(), r)
}
