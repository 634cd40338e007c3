package imap

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/rookery/rookery/store/mailstore"
)

// startEnvB is a backend with user alice, for benchmarks.
func startEnvB(b *testing.B) *env {
	e := startEnv(b, b.TempDir(), nil)
	e.makeUsers("alice")
	return e
}

func sizedMessage(n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(testMessage("bench", ""))
	line := strings.Repeat("abcdefghij", 7) + "\r\n"
	for buf.Len() < n {
		buf.WriteString(line)
	}
	return buf.Bytes()[:n]
}

func benchAppend(b *testing.B, size int) {
	e := startEnvB(b)
	c := e.client("alice", "alicepw", nil)
	msg := sizedMessage(size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		_, _ = cmd.Write(msg)
		_ = cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkAppend10KiB(b *testing.B) { benchAppend(b, 10<<10) }
func BenchmarkAppend1MiB(b *testing.B)  { benchAppend(b, 1<<20) }

func BenchmarkDeliver10KiB(b *testing.B) {
	e := startEnvB(b)
	msg := sizedMessage(10 << 10)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.store.Deliver(context.Background(), "user.alice", nil, time.Now(), bytes.NewReader(msg), 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkFetch1MiB(b *testing.B) {
	e := startEnvB(b)
	msg := sizedMessage(1 << 20)
	if _, err := e.store.Deliver(context.Background(), "user.alice", nil, time.Now(), bytes.NewReader(msg), 0); err != nil {
		b.Fatal(err)
	}
	c := e.client("alice", "alicepw", nil)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil || len(msgs[0].BodySection) != 1 {
			b.Fatal(err)
		}
	}
}

func BenchmarkSelect10k(b *testing.B) {
	e := startEnvB(b)
	msg := sizedMessage(2 << 10)
	const n, batch = 10000, 500
	for i := 0; i < n; i += batch {
		var msgs []mailstore.NewMessage
		for j := 0; j < batch; j++ {
			st, err := e.store.Stage(context.Background(), bytes.NewReader(msg), 0)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, mailstore.NewMessage{Body: st, Flags: []string{`\Seen`}})
		}
		if _, err := e.store.Append("user.alice", msgs); err != nil {
			b.Fatal(err)
		}
	}
	c := e.client("alice", "alicepw", nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d, err := c.Select("INBOX", nil).Wait()
		if err != nil || d.NumMessages != n {
			b.Fatal(d, err)
		}
	}
}
