package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/internal/testserve"
	"github.com/rookery/rookery/listeners/lmtp"
)

// TestMeasureRookery runs every measurement, with tiny sizes, against a
// Rookery node only, so the benchmark's code paths stay working without
// Cyrus; LMTP goes to a minimal LMTP server of the test, as the node has
// no LMTP listener yet. It checks that each step produced a figure and
// stored what it should, not how good the figures are.
func TestMeasureRookery(t *testing.T) {
	n, err := startRookery(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	lm := startLMTPSink(t)
	tg := target{Name: "Rookery", IMAP: n.IMAPAddr(), User: benchUser, Pass: benchPass,
		LMTP: lm.addr, LMTPUser: cyrustest.AdminUser, LMTPPass: cyrustest.AdminPass}
	sz := sizes{Append10K: 5, Append1M: 2, Conns: 2, Parallel: 6, Fetches: 3, Fill: 70, Batch: 30, Selects: 3, LMTP10K: 4, LMTP1M: 2}

	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := createUser(ctx, tg, cyrustest.AdminUser, cyrustest.AdminPass); err != nil {
		t.Fatal(err)
	}
	res, err := measure(ctx, tg, sz, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"append 10k": res.Append10K, "append 1m": res.Append1M, "parallel": res.Parallel,
		"fill": res.Fill, "lmtp 10k": res.LMTP10K, "lmtp 1m": res.LMTP1M} {
		if !(v > 0) {
			t.Errorf("%s rate = %v, want > 0", name, v)
		}
	}
	if len(res.Fetch) != sz.Fetches || res.Fetch[0] <= 0 || len(res.Select) != sz.Selects || res.Select[0] <= 0 {
		t.Errorf("fetch samples %v, select samples %v", res.Fetch, res.Select)
	}
	for box, want := range map[string]uint32{boxAppend10K: 5, boxAppend1M: 2, boxParallel + "0": 3, boxParallel + "1": 3, boxFetch: 1, boxSelect: 70} {
		name := "user." + benchUser + strings.TrimPrefix(box, "INBOX")
		mb, ok, err := n.Mail().Mailbox(name)
		if err != nil || !ok || mb.Exists != want {
			t.Errorf("%s: %d messages (found %v, %v), want %d", name, mb.Exists, ok, err, want)
		}
	}
	if got := lm.deliveries(); !slices.Equal(got, []int{size10K, size10K, size10K, size10K, size1M, size1M}) {
		t.Errorf("LMTP sink got messages of sizes %v", got)
	}

	var out bytes.Buffer
	c := *res
	c.LMTP10K, c.LMTP1M = math.NaN(), math.NaN()
	printTable(&out, sz, res, &c, false)
	got := out.String()
	for _, want := range []string{"SELECT of 70 msgs, p50 of 3 (ms)", "1.00x", "LMTP 1 MiB, 1 conn serial, 2 msgs (msgs/s)"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

// TestMeasureCancel checks that cancelling stops a measurement promptly,
// as Ctrl-C must (cleanup follows in run).
func TestMeasureCancel(t *testing.T) {
	n, err := startRookery(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	tg := target{Name: "Rookery", IMAP: n.IMAPAddr(), User: benchUser, Pass: benchPass}
	if err := createUser(context.Background(), tg, cyrustest.AdminUser, cyrustest.AdminPass); err != nil {
		t.Fatal(err)
	}
	// The deadline hits mid-way: far more messages than fit into it.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = appendSerial(ctx, tg, "INBOX", newMessage("c", size10K), 1_000_000)
	if err == nil || ctx.Err() == nil {
		t.Fatalf("err = %v after cancel, want a cancellation error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v to stop", d)
	}
}

func TestMessage(t *testing.T) {
	for _, size := range []int{fillSize, size10K, size1M, 1000, 1001} {
		m := newMessage("k", size)
		for _, n := range []int{0, 7, 99_999_999} {
			msg := append(m.head(n), m.body...)
			if len(msg) != size || !bytes.HasSuffix(msg, []byte("\r\n")) ||
				bytes.Count(msg, []byte("\r")) != bytes.Count(msg, []byte("\r\n")) || bytes.Count(msg, []byte("\n")) != bytes.Count(msg, []byte("\r\n")) {
				t.Errorf("size %d, n %d: %d bytes, or a bare CR or LF, or no final CRLF", size, n, len(msg))
			}
		}
	}
	if bytes.Equal(newMessage("k", 1000).head(1), newMessage("k", 1000).head(2)) {
		t.Error("two messages share a header (and a Message-ID)")
	}
}

// lmtpSink is a minimal LMTP server that accepts every delivery after
// AUTH PLAIN as the harness's admin and records each message's size.
type lmtpSink struct {
	addr  string
	mu    sync.Mutex
	sizes []int
}

func startLMTPSink(t *testing.T) *lmtpSink {
	s := &lmtpSink{}
	s.addr = testserve.Serve(t, "127.0.0.1:0", func(conn net.Conn) { s.serve(t, conn) }).Addr().String()
	return s
}

func (s *lmtpSink) serve(t *testing.T, conn net.Conn) {
	defer conn.Close()
	r := lmtp.NewReader(bufio.NewReader(conn), 4096)
	w := lmtp.NewWriter(bufio.NewWriter(conn))
	authed := false
	w.Reply(220, "sink LMTP ready")
	for w.Flush() == nil {
		cmd, err := r.ReadCommand()
		if err != nil {
			return
		}
		switch {
		case cmd.Verb == "LHLO":
			w.Reply(250, "sink", "PIPELINING", "AUTH PLAIN")
		case cmd.Verb == "AUTH":
			ir, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(cmd.Arg, "PLAIN "))
			authed = string(ir) == "\x00"+cyrustest.AdminUser+"\x00"+cyrustest.AdminPass
			if !authed {
				w.Reply(535, "5.7.8 bad credentials")
				continue
			}
			w.Reply(235, "2.7.0 ok")
		case !authed:
			w.Reply(530, "5.7.0 authentication required")
		case cmd.Verb == "MAIL":
			w.Reply(250, "2.1.0 ok")
		case cmd.Verb == "RCPT":
			if addr, _, err := lmtp.ParsePath(cmd.Arg, "TO"); err != nil || addr != benchUser {
				t.Errorf("RCPT %s", cmd.Arg)
			}
			w.Reply(250, "2.1.5 ok")
		case cmd.Verb == "DATA":
			w.Reply(354, "go ahead")
			if err := w.Flush(); err != nil {
				return
			}
			n, err := io.Copy(io.Discard, r.DotReader())
			if err != nil {
				return
			}
			s.mu.Lock()
			s.sizes = append(s.sizes, int(n))
			s.mu.Unlock()
			w.Reply(250, "2.1.5 delivered")
		case cmd.Verb == "QUIT":
			w.Reply(221, "bye")
			_ = w.Flush()
			return
		default:
			w.Reply(500, "5.5.1 unknown")
		}
	}
}

func (s *lmtpSink) deliveries() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}
