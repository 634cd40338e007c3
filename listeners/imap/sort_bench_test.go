package imap

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/store/mailstore"
)

// sortBenchBox fills alice's INBOX with n messages of many subjects,
// senders and dates, each replying to an earlier one, and returns a raw
// session that has selected it.
func sortBenchBox(b *testing.B, n int) *raw {
	e := startEnvB(b)
	const batch = 1000
	for i := 0; i < n; i += batch {
		var msgs []mailstore.NewMessage
		for j := i; j < min(i+batch, n); j++ {
			h := fmt.Sprintf("From: User %d <u%d@example.com>\r\nTo: t%d@example.com\r\nSubject: Re: topic %d\r\n"+
				"Date: %s\r\nMessage-ID: <m%d@x>\r\nReferences: <m%d@x>\r\n\r\nbody\r\n",
				j*7919%1000, j*7919%1000, j%97, j%5000,
				time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(j*7919%n)*time.Minute).Format(time.RFC1123Z), j, j/3)
			st, err := e.store.Stage(context.Background(), strings.NewReader(h), 0)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, mailstore.NewMessage{Body: st})
		}
		if _, err := e.store.Append("user.alice", msgs); err != nil {
			b.Fatal(err)
		}
	}
	a := e.raw()
	a.cmd("1", "LOGIN alice alicepw", "OK")
	a.cmd("2", "SELECT INBOX", "OK")
	return a
}

// sortBenchN is the mailbox size of the SORT and THREAD benchmarks.
const sortBenchN = 100_000

// benchSort runs cmd over sortBenchN messages; the first run, which reads
// every header, is logged apart from the repeated ones, which find the
// keys cached.
func benchSort(b *testing.B, cmd string) {
	a := sortBenchBox(b, sortBenchN)
	// The first run reads every message's header from the store, which
	// may take longer than raw's deadline.
	start := time.Now()
	a.send("3 " + cmd + "\r\n")
	_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
	first, err := a.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(first, "* ") {
		b.Fatalf("%s: %q, %v", cmd, first[:min(len(first), 80)], err)
	}
	if last, err := a.br.ReadString('\n'); err != nil || !strings.HasPrefix(last, "3 OK") {
		b.Fatalf("%s: %q, %v", cmd, last, err)
	}
	b.Logf("%s, first run: %v, %d bytes", cmd, time.Since(start), len(first))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a.cmd("4", cmd, "OK")
	}
}

func BenchmarkSortArrival100k(b *testing.B) { benchSort(b, "SORT (ARRIVAL) UTF-8 ALL") }
func BenchmarkSortDate100k(b *testing.B)    { benchSort(b, "SORT (DATE) UTF-8 ALL") }
func BenchmarkSortSubject100k(b *testing.B) { benchSort(b, "SORT (SUBJECT) UTF-8 ALL") }
func BenchmarkSortFrom100k(b *testing.B)    { benchSort(b, "SORT (FROM) UTF-8 ALL") }
func BenchmarkThreadRefs100k(b *testing.B)  { benchSort(b, "THREAD REFERENCES UTF-8 ALL") }
