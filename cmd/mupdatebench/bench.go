package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
	"github.com/rookery/rookery/listeners/mupdate"
)

// Every mailbox the benchmark creates has this location and ACL, so all
// entries have the same size on both masters.
const (
	benchLocation = "bench!default"
	benchACL      = "u\tlrswipkxtecdan\t"
)

// streamTimeout bounds the wait for one change on an UPDATE stream; Cyrus
// batches changes on a ~5 s tick, so this only fires on a broken master.
const streamTimeout = 30 * time.Second

// sizes says how much work each measurement does.
type sizes struct {
	Serial         int // ACTIVATEs on one connection, one at a time
	Pipelined      int // ACTIVATEs spread over Conns connections
	Conns          int // connections of the pipelined measurements
	Window         int // commands in flight per connection
	Finds          int // FINDs on one connection, one at a time
	FindsPipelined int // FINDs spread over Conns connections
	Entries        int // mailboxes on the master before the UPDATE dumps
	Dumps          int // UPDATE dumps timed; the fastest counts
	Propagation    int // change-propagation samples
}

// target is one master under test.
type target struct {
	Name, Addr, User, Pass string
}

// results are one master's figures; rates are per second.
type results struct {
	Serial, Pipelined, Load float64 // ACTIVATE
	LoadCount               int     // ACTIVATEs of the bulk load
	Find, FindPipelined     float64
	Dump                    float64 // entries per second, best of sizes.Dumps
	DumpEntries             int     // entries in each dump
	Propagation             []time.Duration
}

// measure runs every measurement against tg, one after the other, on a
// master that has none of the benchmark's names yet. Each step's figure is
// logged to logw as it comes in.
func measure(ctx context.Context, tg target, sz sizes, logw io.Writer) (*results, error) {
	var res results
	// timed runs one rate measurement, logging what it does and its figure.
	timed := func(what string, into *float64, fn func() (float64, error)) error {
		fmt.Fprintf(logw, "%s: %s ... ", tg.Name, what)
		v, err := fn()
		if err != nil {
			fmt.Fprintln(logw, "failed")
			return err
		}
		fmt.Fprintf(logw, "%.0f/s\n", v)
		*into = max(*into, v)
		return nil
	}
	pipe := fmt.Sprintf("%d x %d", sz.Conns, sz.Window)
	serial := names("user.benchs", 0, sz.Serial)
	piped := names("user.benchp", 0, sz.Pipelined)
	// The bulk load brings the master to exactly sz.Entries mailboxes.
	res.LoadCount = max(0, sz.Entries-sz.Serial-sz.Pipelined)
	load := names("user.bench", 0, res.LoadCount)
	existing := slices.Concat(load, piped, serial)

	err := timed(fmt.Sprintf("ACTIVATE serial, %d", len(serial)), &res.Serial, func() (float64, error) {
		return activateSerial(ctx, tg, serial)
	})
	if err == nil {
		err = timed(fmt.Sprintf("ACTIVATE pipelined, %d over %s", len(piped), pipe), &res.Pipelined, func() (float64, error) {
			return activatePipelined(ctx, tg, piped, sz.Conns, sz.Window)
		})
	}
	if err == nil {
		// A slow master takes long here; say how long.
		what := fmt.Sprintf("bulk load, %d pipelined ACTIVATEs", len(load))
		if res.Pipelined > 0 {
			what += fmt.Sprintf(" (about %v)", time.Duration(float64(len(load))/res.Pipelined*float64(time.Second)).Round(time.Second))
		}
		err = timed(what, &res.Load, func() (float64, error) {
			return activatePipelined(ctx, tg, load, sz.Conns, sz.Window)
		})
	}
	if err == nil {
		err = timed(fmt.Sprintf("FIND serial, %d", sz.Finds), &res.Find, func() (float64, error) {
			return findSerial(ctx, tg, pick(existing, sz.Finds))
		})
	}
	if err == nil {
		err = timed(fmt.Sprintf("FIND pipelined, %d over %s", sz.FindsPipelined, pipe), &res.FindPipelined, func() (float64, error) {
			return findPipelined(ctx, tg, pick(existing, sz.FindsPipelined), sz.Conns, sz.Window)
		})
	}
	for i := 0; i < sz.Dumps && err == nil; i++ {
		err = timed(fmt.Sprintf("UPDATE dump %d/%d, entries", i+1, sz.Dumps), &res.Dump, func() (float64, error) {
			rate, n, err := updateDump(ctx, tg)
			if err == nil && n != len(existing) {
				err = fmt.Errorf("mupdatebench: %s: UPDATE dumped %d entries, want %d", tg.Name, n, len(existing))
			}
			res.DumpEntries = n
			return rate, err
		})
	}
	if err != nil {
		return nil, err
	}

	fmt.Fprintf(logw, "%s: change propagation, %d samples ... ", tg.Name, sz.Propagation)
	if res.Propagation, err = streamPropagation(ctx, tg, tg, names("user.benchw", 0, sz.Propagation)); err != nil {
		fmt.Fprintln(logw, "failed")
		return nil, err
	}
	fmt.Fprintf(logw, "p50 %v\n", benchutil.Percentile(res.Propagation, 0.5))
	return &res, nil
}

// names returns prefix+i for i in [from, from+n).
func names(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, from+i)
	}
	return out
}

// pick draws n of names at random, with a fixed seed so that both
// masters are asked for the same names in the same order.
func pick(names []string, n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]string, n)
	for i := range out {
		out[i] = names[r.IntN(len(names))]
	}
	return out
}

// dial logs in to tg. The connection is closed when ctx ends, which
// unblocks whatever waits on it; done must be called when finished.
func dial(ctx context.Context, tg target) (c *mupdate.Client, done func(), err error) {
	c, err = mupdate.Dial(ctx, tg.Addr, mupdate.ClientConfig{Username: tg.User, Password: tg.Pass})
	if err != nil {
		return nil, nil, fmt.Errorf("mupdatebench: %s: %w", tg.Name, err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	return c, func() { stop(); c.Close() }, nil
}

// fail wraps a measurement error, preferring the cancellation that
// caused it when there is one.
func fail(ctx context.Context, tg target, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("mupdatebench: %s: %s: %w", tg.Name, what, ctx.Err())
	}
	return fmt.Errorf("mupdatebench: %s: %s: %w", tg.Name, what, err)
}

// rate is ops per second over d.
func rate(ops int, d time.Duration) float64 { return float64(ops) / d.Seconds() }

// activateSerial sends one ACTIVATE per name and waits for each reply
// before the next.
func activateSerial(ctx context.Context, tg target, names []string) (float64, error) {
	c, done, err := dial(ctx, tg)
	if err != nil {
		return 0, err
	}
	defer done()
	start := time.Now()
	for _, n := range names {
		if err := c.Activate(n, benchLocation, benchACL); err != nil {
			return 0, fail(ctx, tg, "ACTIVATE "+n, err)
		}
	}
	return rate(len(names), time.Since(start)), nil
}

// activatePipelined spreads names over conns connections that each keep
// window ACTIVATEs in flight.
func activatePipelined(ctx context.Context, tg target, names []string, conns, window int) (float64, error) {
	return pipelined(ctx, tg, names, conns, window, func(c *mupdate.Client, name string) (string, error) {
		return c.Send("ACTIVATE", name, benchLocation, benchACL)
	})
}

// findSerial sends one FIND per name and waits for each answer; every
// name must exist.
func findSerial(ctx context.Context, tg target, names []string) (float64, error) {
	c, done, err := dial(ctx, tg)
	if err != nil {
		return 0, err
	}
	defer done()
	start := time.Now()
	for _, n := range names {
		e, err := c.Find(n)
		if err != nil {
			return 0, fail(ctx, tg, "FIND "+n, err)
		}
		if e == nil {
			return 0, fmt.Errorf("mupdatebench: %s: FIND %s found nothing", tg.Name, n)
		}
	}
	return rate(len(names), time.Since(start)), nil
}

// findPipelined is findSerial over conns connections with window FINDs
// in flight on each.
func findPipelined(ctx context.Context, tg target, names []string, conns, window int) (float64, error) {
	return pipelined(ctx, tg, names, conns, window, func(c *mupdate.Client, name string) (string, error) {
		return c.Send("FIND", name)
	})
}

// pipelined opens conns connections, gives each an equal share of names
// and keeps window commands (made by send) in flight on each, refilling
// as replies come in. Every command must end in OK. The clock runs from
// the first command to the last reply; logins are not timed.
func pipelined(ctx context.Context, tg target, names []string, conns, window int,
	send func(*mupdate.Client, string) (string, error)) (float64, error) {
	clients := make([]*mupdate.Client, conns)
	for i := range clients {
		c, done, err := dial(ctx, tg)
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
		share := names[len(names)*i/conns : len(names)*(i+1)/conns]
		wg.Go(func() { errs[i] = keepInFlight(c, share, window, send) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, fail(ctx, tg, "pipelined", err)
	}
	return rate(len(names), elapsed), nil
}

func keepInFlight(c *mupdate.Client, names []string, window int,
	send func(*mupdate.Client, string) (string, error)) error {
	inFlight := make([]string, 0, window) // tags, oldest first
	next := 0
	for next < len(names) || len(inFlight) > 0 {
		for next < len(names) && len(inFlight) < window {
			tag, err := send(c, names[next])
			if err != nil {
				return err
			}
			inFlight = append(inFlight, tag)
			next++
		}
		if err := c.Flush(); err != nil {
			return err
		}
		if _, err := c.Await(inFlight[0]); err != nil {
			return err
		}
		inFlight = inFlight[1:]
	}
	return nil
}

// updateDump times one UPDATE from the command to `OK "streaming
// starts"` and returns entries per second and the number of entries.
func updateDump(ctx context.Context, tg target) (float64, int, error) {
	c, done, err := dial(ctx, tg)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	entries := 0
	start := time.Now()
	err = c.Update(nil, func(mupdate.Record) error { entries++; return nil })
	if err != nil {
		return 0, 0, fail(ctx, tg, "UPDATE", err)
	}
	elapsed := time.Since(start)
	if err := c.Logout(); err != nil {
		return 0, 0, fail(ctx, tg, "LOGOUT", err)
	}
	return rate(entries, elapsed), entries, nil
}

// arrival waits until name has reached the far side of a propagation
// measurement and returns when it got there.
type arrival func(name string) (time.Time, error)

// propagation measures, for each name, the time from sending its
// ACTIVATE to writer until arrived sees it. Before each sample it waits a
// random time below the previous sample's latency, so that the samples are
// not locked to the phase of a master that sends its stream on a timer.
// The samples come back sorted.
func propagation(ctx context.Context, writer target, names []string, arrived arrival) ([]time.Duration, error) {
	w, done, err := dial(ctx, writer)
	if err != nil {
		return nil, err
	}
	defer done()
	var out []time.Duration
	var last time.Duration
	for _, name := range names {
		if last > 0 {
			if err := pause(ctx, rand.N(last)); err != nil {
				return nil, err
			}
		}
		start := time.Now()
		if err := w.Activate(name, benchLocation, benchACL); err != nil {
			return nil, fail(ctx, writer, "ACTIVATE "+name, err)
		}
		at, err := arrived(name)
		if err != nil {
			return nil, err
		}
		last = at.Sub(start)
		out = append(out, last)
	}
	slices.Sort(out)
	return out, nil
}

// streamPropagation is propagation until each name's MAILBOX line arrives
// on an UPDATE stream from reader (writer itself, or a replica of it).
func streamPropagation(ctx context.Context, writer, reader target, names []string) ([]time.Duration, error) {
	stream, done, err := dial(ctx, reader)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := stream.Update(nil, func(mupdate.Record) error { return nil }); err != nil {
		return nil, fail(ctx, reader, "UPDATE", err)
	}

	type line struct {
		name string
		at   time.Time
	}
	lines := make(chan line, 64)
	readErr := make(chan error, 1)
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		for {
			r, err := stream.Next()
			if err != nil {
				readErr <- err
				return
			}
			if r.Kind == "MAILBOX" {
				select {
				case lines <- line{r.Name, time.Now()}:
				case <-quit:
					return
				}
			}
		}
	}()
	return propagation(ctx, writer, names, func(name string) (time.Time, error) {
		timeout := time.NewTimer(streamTimeout)
		defer timeout.Stop()
		for {
			select {
			case l := <-lines:
				if l.name == name {
					return l.at, nil
				}
			case err := <-readErr:
				return time.Time{}, fail(ctx, reader, "reading the UPDATE stream", err)
			case <-timeout.C:
				return time.Time{}, fmt.Errorf("mupdatebench: %s: %s did not arrive on the UPDATE stream within %v", reader.Name, name, streamTimeout)
			}
		}
	})
}

// findPropagation is propagation until a FIND on reader finds each name;
// the FIND is repeated every so often until it does.
func findPropagation(ctx context.Context, writer, reader target, names []string, every time.Duration) ([]time.Duration, error) {
	c, done, err := dial(ctx, reader)
	if err != nil {
		return nil, err
	}
	defer done()
	return propagation(ctx, writer, names, func(name string) (time.Time, error) {
		deadline := time.Now().Add(streamTimeout)
		for {
			e, err := c.Find(name)
			if err != nil {
				return time.Time{}, fail(ctx, reader, "FIND "+name, err)
			}
			if e != nil {
				return time.Now(), nil
			}
			if time.Now().After(deadline) {
				return time.Time{}, fmt.Errorf("mupdatebench: %s: FIND did not find %s within %v", reader.Name, name, streamTimeout)
			}
			if err := pause(ctx, every); err != nil {
				return time.Time{}, err
			}
		}
	})
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
