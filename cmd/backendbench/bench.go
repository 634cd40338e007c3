package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/internal/benchutil"
)

// Message sizes of the measurements; fillSize is the size of the messages
// in the mailbox that SELECT opens (SELECT cost grows with their number,
// hardly with their size).
const (
	size10K  = 10 << 10
	size1M   = 1 << 20
	fillSize = 1 << 10
)

// ioTimeout bounds one exchange with a server, so a stuck server fails
// the run instead of hanging it.
const ioTimeout = 2 * time.Minute

// sizes says how much work each measurement does.
type sizes struct {
	Append10K int // 10 KiB APPENDs on one connection, one at a time
	Append1M  int // 1 MiB APPENDs on one connection, one at a time
	Conns     int // connections of the parallel APPEND
	Parallel  int // 10 KiB APPENDs spread over Conns connections
	Fetches   int // timed FETCHes of one 1 MiB message
	Fill      int // messages in the mailbox that SELECT opens
	Batch     int // messages per MULTIAPPEND while filling it
	Selects   int // timed SELECTs of it
	LMTP10K   int // 10 KiB LMTP deliveries on one connection
	LMTP1M    int // 1 MiB LMTP deliveries on one connection
}

// target is one backend under test.
type target struct {
	Name       string
	IMAP       string // host:port
	User, Pass string // owner of the mailboxes measured
	// LMTP is the LMTP listener, host:port; "" when the server has none.
	LMTP string
	// LMTPUser and LMTPPass authenticate LMTP when the server offers AUTH.
	LMTPUser, LMTPPass string
	// DelayedACK leaves the client's delayed ACKs on (see quickAck).
	DelayedACK bool
}

// results are one backend's figures; rates are messages per second, and
// NaN marks what was not measured.
type results struct {
	Append10K, Append1M, Parallel float64
	Fetch                         []time.Duration // sorted
	Fill                          float64
	Select                        []time.Duration // sorted
	LMTP10K, LMTP1M               float64
}

// The mailboxes of the measurements, below the bench user's INBOX.
const (
	boxAppend10K = "INBOX.append10k"
	boxAppend1M  = "INBOX.append1m"
	boxParallel  = "INBOX.parallel" // + connection number
	boxFetch     = "INBOX.fetch"
	boxSelect    = "INBOX.select"
)

// measure runs every measurement against tg, one after the other, on a
// backend where the bench user has nothing but an empty INBOX. Each
// figure is logged to logw as it comes in.
func measure(ctx context.Context, tg target, sz sizes, logw io.Writer) (*results, error) {
	res := results{LMTP10K: math.NaN(), LMTP1M: math.NaN()}
	boxes := []string{boxAppend10K, boxAppend1M, boxFetch, boxSelect}
	for i := range sz.Conns {
		boxes = append(boxes, fmt.Sprintf("%s%d", boxParallel, i))
	}
	if err := createMailboxes(ctx, tg, boxes); err != nil {
		return nil, err
	}
	m10k, m1m, small := newMessage("10k", size10K), newMessage("1m", size1M), newMessage("fill", fillSize)

	// timed runs one rate measurement, logging what it does and its figure.
	timed := func(what string, into *float64, fn func() (float64, error)) error {
		fmt.Fprintf(logw, "%s: %s ... ", tg.Name, what)
		v, err := fn()
		if err != nil {
			fmt.Fprintln(logw, "failed")
			return err
		}
		fmt.Fprintf(logw, "%.1f/s\n", v)
		*into = v
		return nil
	}
	// sampled is timed for latency samples.
	sampled := func(what string, into *[]time.Duration, fn func() ([]time.Duration, error)) error {
		fmt.Fprintf(logw, "%s: %s ... ", tg.Name, what)
		v, err := fn()
		if err != nil {
			fmt.Fprintln(logw, "failed")
			return err
		}
		fmt.Fprintf(logw, "p50 %v\n", benchutil.Percentile(v, 0.5))
		*into = v
		return nil
	}
	err := timed(fmt.Sprintf("APPEND 10 KiB serial, %d", sz.Append10K), &res.Append10K, func() (float64, error) {
		return appendSerial(ctx, tg, boxAppend10K, m10k, sz.Append10K)
	})
	if err == nil {
		err = timed(fmt.Sprintf("APPEND 1 MiB serial, %d", sz.Append1M), &res.Append1M, func() (float64, error) {
			return appendSerial(ctx, tg, boxAppend1M, m1m, sz.Append1M)
		})
	}
	if err == nil {
		err = timed(fmt.Sprintf("APPEND 10 KiB over %d connections, %d", sz.Conns, sz.Parallel), &res.Parallel, func() (float64, error) {
			return appendParallel(ctx, tg, m10k, sz.Conns, sz.Parallel)
		})
	}
	if err == nil {
		err = sampled(fmt.Sprintf("FETCH BODY.PEEK[] of 1 MiB, %d", sz.Fetches), &res.Fetch, func() ([]time.Duration, error) {
			return fetchBody(ctx, tg, m1m, sz.Fetches)
		})
	}
	if err == nil {
		err = timed(fmt.Sprintf("filling %s, MULTIAPPEND of %d in batches of %d", boxSelect, sz.Fill, sz.Batch), &res.Fill, func() (float64, error) {
			return fill(ctx, tg, boxSelect, sz.Fill, sz.Batch, func(w *bufio.Writer, i int) {
				fmt.Fprintf(w, " {%d+}\r\n", small.size)
				w.Write(small.head(i))
				w.Write(small.body)
			})
		})
	}
	if err == nil {
		err = sampled(fmt.Sprintf("SELECT of %d messages, %d", sz.Fill, sz.Selects), &res.Select, func() ([]time.Duration, error) {
			return selectBox(ctx, tg, boxSelect, sz.Fill, sz.Selects)
		})
	}
	if err == nil && tg.LMTP != "" {
		err = timed(fmt.Sprintf("LMTP 10 KiB serial, %d", sz.LMTP10K), &res.LMTP10K, func() (float64, error) {
			return lmtpSerial(ctx, tg, m10k, sz.LMTP10K)
		})
		if err == nil {
			err = timed(fmt.Sprintf("LMTP 1 MiB serial, %d", sz.LMTP1M), &res.LMTP1M, func() (float64, error) {
				return lmtpSerial(ctx, tg, m1m, sz.LMTP1M)
			})
		}
	}
	if err != nil {
		return nil, err
	}
	return &res, nil
}

// message is a test message of a fixed size whose Message-ID differs for
// every number, because Cyrus drops LMTP deliveries of a Message-ID it
// has already delivered to the mailbox (duplicate suppression).
type message struct {
	kind string
	body []byte
	size int
}

// header is the same length for every n below 10^8, so every message of
// a kind has the same size.
const header = "From: Bench <bench@backendbench.test>\r\nTo: bench@backendbench.test\r\n" +
	"Subject: backendbench %s %08d\r\nDate: Mon, 02 Jan 2006 15:04:05 +0000\r\n" +
	"Message-ID: <%s.%08d@backendbench.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"

// newMessage makes messages of size bytes with a body of 78-byte lines.
func newMessage(kind string, size int) *message {
	m := &message{kind: kind, size: size}
	n := size - len(m.head(0))
	line := strings.Repeat("0123456789", 7) + "abcdef\r\n"
	body := bytes.Repeat([]byte(line), n/len(line)+1)[:n-2]
	if body[len(body)-1] == '\r' {
		body[len(body)-1] = 'x' // no bare CR before the final CRLF
	}
	m.body = append(body, '\r', '\n')
	return m
}

// head is the header of message number n.
func (m *message) head(n int) []byte {
	return fmt.Appendf(nil, header, m.kind, n, m.kind, n)
}

// rate is messages per second over d.
func rate(n int, d time.Duration) float64 { return float64(n) / d.Seconds() }

// fail wraps a measurement error, preferring the cancellation that caused
// it when there is one.
func fail(ctx context.Context, tg target, what string, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("backendbench: %s: %s: %w", tg.Name, what, err)
}

// dial connects to addr, one of tg's listeners.
func dial(ctx context.Context, tg target, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil || tg.DelayedACK {
		return conn, err
	}
	return quickAck(conn), nil
}

// login connects to tg's IMAP listener as user. The connection is closed
// when ctx ends, which unblocks whatever waits on it; done logs out and
// closes it.
func login(ctx context.Context, tg target, user, pass string) (c *imapclient.Client, done func(), err error) {
	conn, err := dial(ctx, tg, tg.IMAP)
	if err != nil {
		return nil, nil, fail(ctx, tg, "IMAP", err)
	}
	c = imapclient.New(conn, nil)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		stop()
		c.Close()
		return nil, nil, fail(ctx, tg, "LOGIN "+user, err)
	}
	return c, func() {
		stop()
		_ = c.Logout().Wait()
		c.Close()
	}, nil
}

// createUser makes user.<bench user> as an admin, as a provisioning
// system would.
func createUser(ctx context.Context, tg target, admin, pass string) error {
	c, done, err := login(ctx, tg, admin, pass)
	if err != nil {
		return err
	}
	defer done()
	if err := c.Create("user."+tg.User, nil).Wait(); err != nil {
		return fail(ctx, tg, "CREATE user."+tg.User, err)
	}
	return nil
}

// serverVersion is the name and version the server gives to IMAP ID.
func serverVersion(ctx context.Context, tg target) (string, error) {
	c, done, err := login(ctx, tg, tg.User, tg.Pass)
	if err != nil {
		return "", err
	}
	defer done()
	id, err := c.ID(&imap.IDData{Name: "backendbench"}).Wait()
	if err != nil {
		return "", fail(ctx, tg, "ID", err)
	}
	return strings.TrimSpace(id.Name + " " + id.Version), nil
}

// createMailboxes creates the measurements' mailboxes as the bench user.
func createMailboxes(ctx context.Context, tg target, names []string) error {
	c, done, err := login(ctx, tg, tg.User, tg.Pass)
	if err != nil {
		return err
	}
	defer done()
	for _, name := range names {
		if err := c.Create(name, nil).Wait(); err != nil {
			return fail(ctx, tg, "CREATE "+name, err)
		}
	}
	return nil
}

// appendOne appends message number n of m to mailbox and waits for the
// server's answer.
func appendOne(c *imapclient.Client, mailbox string, m *message, n int) error {
	cmd := c.Append(mailbox, int64(m.size), nil)
	_, werr := cmd.Write(m.head(n))
	if werr == nil {
		_, werr = cmd.Write(m.body)
	}
	cerr := cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		return err
	}
	return errors.Join(werr, cerr)
}

// appendSerial appends n messages of m to mailbox on one connection, each
// after the previous one's answer. The login is not timed.
func appendSerial(ctx context.Context, tg target, mailbox string, m *message, n int) (float64, error) {
	c, done, err := login(ctx, tg, tg.User, tg.Pass)
	if err != nil {
		return 0, err
	}
	defer done()
	start := time.Now()
	for i := range n {
		if err := appendOne(c, mailbox, m, i); err != nil {
			return 0, fail(ctx, tg, "APPEND to "+mailbox, err)
		}
	}
	return rate(n, time.Since(start)), nil
}

// appendParallel appends n messages of m over conns connections, each
// appending its share serially to a mailbox of its own, as independent
// clients do. The clock runs from the first APPEND to the last answer.
func appendParallel(ctx context.Context, tg target, m *message, conns, n int) (float64, error) {
	clients := make([]*imapclient.Client, conns)
	for i := range clients {
		c, done, err := login(ctx, tg, tg.User, tg.Pass)
		if err != nil {
			return 0, err
		}
		defer done()
		clients[i] = c
	}
	errs := make([]error, conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		mailbox := fmt.Sprintf("%s%d", boxParallel, i)
		wg.Go(func() {
			for k := n * i / conns; k < n*(i+1)/conns && errs[i] == nil; k++ {
				errs[i] = appendOne(c, mailbox, m, k)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, fail(ctx, tg, "parallel APPEND", err)
	}
	return rate(n, elapsed), nil
}

// fetchBody appends one message of m to its own mailbox, then fetches its
// whole body (BODY.PEEK[]) n times, reading every byte, and returns the
// sorted times from command to tagged answer. One untimed FETCH first
// warms the caches on both sides.
func fetchBody(ctx context.Context, tg target, m *message, n int) ([]time.Duration, error) {
	c, done, err := login(ctx, tg, tg.User, tg.Pass)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := appendOne(c, boxFetch, m, 0); err != nil {
		return nil, fail(ctx, tg, "APPEND to "+boxFetch, err)
	}
	if _, err := c.Select(boxFetch, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return nil, fail(ctx, tg, "EXAMINE "+boxFetch, err)
	}
	var out []time.Duration
	for i := range n + 1 {
		start := time.Now()
		got, err := fetchOne(c)
		if err != nil {
			return nil, fail(ctx, tg, "FETCH", err)
		}
		if got != int64(m.size) {
			return nil, fmt.Errorf("backendbench: %s: FETCH returned %d bytes, want %d", tg.Name, got, m.size)
		}
		if i > 0 {
			out = append(out, time.Since(start))
		}
	}
	slices.Sort(out)
	return out, nil
}

// fetchOne fetches BODY.PEEK[] of message 1 and returns its length.
func fetchOne(c *imapclient.Client) (int64, error) {
	cmd := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
	var got int64
	var rerr error
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
				k, err := io.Copy(io.Discard, b.Literal)
				got += k
				rerr = errors.Join(rerr, err)
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return 0, err
	}
	return got, rerr
}

// selectBox SELECTs mailbox, which must hold want messages, n times and
// returns the sorted times from command to tagged answer. Each SELECT
// opens the mailbox afresh: an UNSELECT, not timed, closes it in between.
func selectBox(ctx context.Context, tg target, mailbox string, want, n int) ([]time.Duration, error) {
	c, done, err := login(ctx, tg, tg.User, tg.Pass)
	if err != nil {
		return nil, err
	}
	defer done()
	var out []time.Duration
	for range n {
		start := time.Now()
		data, err := c.Select(mailbox, nil).Wait()
		if err != nil {
			return nil, fail(ctx, tg, "SELECT "+mailbox, err)
		}
		out = append(out, time.Since(start))
		if int(data.NumMessages) != want {
			return nil, fmt.Errorf("backendbench: %s: SELECT %s: %d messages, want %d", tg.Name, mailbox, data.NumMessages, want)
		}
		if err := c.Unselect().Wait(); err != nil {
			return nil, fail(ctx, tg, "UNSELECT", err)
		}
	}
	slices.Sort(out)
	return out, nil
}

// fill appends n messages to mailbox with MULTIAPPEND (RFC 3502), batch
// messages per command sent as non-synchronizing literals (LITERAL+, RFC
// 7888), which both servers offer: the fastest way in over IMAP. put
// writes message i as an APPEND argument, its leading space included. It
// returns messages per second, login not timed.
func fill(ctx context.Context, tg target, mailbox string, n, batch int, put func(w *bufio.Writer, i int)) (float64, error) {
	c, err := dialRaw(ctx, tg)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	start := time.Now()
	for from := 0; from < n; from += batch {
		_, err := c.CmdWith(func(w *bufio.Writer) {
			w.WriteString("APPEND " + mailbox)
			for i := from; i < min(from+batch, n); i++ {
				put(w, i)
			}
		})
		if err != nil {
			return 0, fail(ctx, tg, "MULTIAPPEND", err)
		}
	}
	return rate(n, time.Since(start)), nil
}
