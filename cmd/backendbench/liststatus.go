package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/internal/rookerytest"
)

// The second user of the -list murders, whose mailboxes live on the
// other backend and are shared with the bench user.
const (
	otherUser = "bench2"
	otherPass = "bench2pw"
)

// listCmd is the timed LIST-STATUS (RFC 5819).
const listCmd = `LIST "" "*" RETURN (STATUS (MESSAGES UNSEEN UIDNEXT))`

// listResults are one murder's LIST-STATUS figures.
type listResults struct {
	Setup time.Duration // CREATE and SETACL of every mailbox through the frontend
	Times timings       // Count is the STATUS responses of the first run
	// Listed is the mailboxes of the first run, Created those of them
	// measureList made.
	Listed, Created int
}

// runList starts a Rookery murder (master, two backends, a frontend),
// times LIST-STATUS through its frontend over n mailboxes, half on each
// backend, stops it, and does the same with a Cyrus murder.
func runList(ctx context.Context, out, logw io.Writer, n, runs int) (err error) {
	base, err := os.MkdirTemp("", "backendbench-list-")
	if err != nil {
		return fmt.Errorf("backendbench: %w", err)
	}
	defer func() { err = errors.Join(err, os.RemoveAll(base)) }()

	fmt.Fprintln(logw, "starting a Rookery murder: master, two backends, frontend ...")
	loadBefore := benchutil.LoadAvg()
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	topo, err := rookerytest.Start(ctx, rookerytest.Murder, base, logger,
		rookerytest.User{Name: benchUser, Pass: benchPass}, rookerytest.User{Name: otherUser, Pass: otherPass})
	if err != nil {
		return fmt.Errorf("backendbench: %w", err)
	}
	rt := target{Name: "Rookery", IMAP: topo.IMAPAddr, User: benchUser, Pass: benchPass}
	rr, err := measureList(ctx, rt, n, runs, nil, logw)
	if cerr := topo.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("backendbench: stopping the rookery murder: %w", cerr))
	}
	if err != nil {
		return err
	}

	fmt.Fprintln(logw, "starting a Cyrus murder: mupdate master, two backends, frontend ...")
	cm, err := startCyrusMurder()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cm.Close()) }()
	ct := target{Name: "Cyrus", IMAP: cm.fe.IMAPAddr(), User: benchUser, Pass: benchPass}
	cr, err := measureList(ctx, ct, n, runs, cm.fe.SyncNow, logw)
	if err != nil {
		return err
	}

	fmt.Fprintln(out, benchutil.Machine(loadBefore))
	fmt.Fprintf(out, "Rookery: in-process murder (master, two backends, frontend with a replica) via rookerytest\n")
	fmt.Fprintf(out, "Cyrus:   murder of cyrustest instances (mupdate -m master, two backends, frontend)\n\n")
	p := func(ds []time.Duration, q float64) float64 { return benchutil.Ms(benchutil.Percentile(ds, q)) }
	benchutil.WriteTable(out, []benchutil.Row{
		{Metric: fmt.Sprintf("LIST-STATUS through the frontend, %d mailboxes on 2 backends, first run (ms)", n),
			Rookery: benchutil.Ms(rr.Times.First), Cyrus: benchutil.Ms(cr.Times.First), Latency: true},
		{Metric: fmt.Sprintf("LIST-STATUS through the frontend, p50 of %d (ms)", runs), Rookery: p(rr.Times.Runs, 0.5), Cyrus: p(cr.Times.Runs, 0.5), Latency: true},
		{Metric: fmt.Sprintf("LIST-STATUS through the frontend, p99 of %d (ms)", runs), Rookery: p(rr.Times.Runs, 0.99), Cyrus: p(cr.Times.Runs, 0.99), Latency: true},
		{Metric: "setup: CREATE + SETACL through the frontend, total (s)", Rookery: rr.Setup.Seconds(), Cyrus: cr.Setup.Seconds(), Latency: true},
		{Metric: fmt.Sprintf("check: of the %d mailboxes, listed", n), Rookery: float64(rr.Created), Cyrus: float64(cr.Created), NoRatio: true},
		{Metric: "check: mailboxes listed in all", Rookery: float64(rr.Listed), Cyrus: float64(cr.Listed), NoRatio: true},
		{Metric: "check: STATUS responses", Rookery: float64(rr.Times.Count), Cyrus: float64(cr.Times.Count), NoRatio: true},
	})
	fmt.Fprintln(out, "\nratio: Cyrus/Rookery; above 1 means Rookery is faster.")
	fmt.Fprintf(out, "mailboxes: %s's INBOX and half of them on one backend, %s's and the other half, shared with\n", benchUser, otherUser)
	fmt.Fprintf(out, "  %s by SETACL lr, on the other; all empty. %s lists them all through the frontend:\n  %s\n", benchUser, benchUser, listCmd)
	return nil
}

// cyrusMurder is a Cyrus mupdate master, two backends and a frontend.
type cyrusMurder struct {
	master, be1, be2, fe *cyrustest.Instance
}

// startCyrusMurder starts a Cyrus murder with the bench user's
// INBOX on one backend and the other user's on the other. On error
// nothing is left running.
func startCyrusMurder() (_ *cyrusMurder, err error) {
	m := &cyrusMurder{}
	defer func() {
		if err != nil {
			err = errors.Join(err, m.Close())
		}
	}()
	ports := make([]int, 5)
	for i := range ports {
		if ports[i], err = benchutil.FreePort(); err != nil {
			return nil, err
		}
	}
	if m.master, err = cyrustest.Launch(cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: ports[0]}); err != nil {
		return nil, err
	}
	if m.be1, err = cyrustest.Launch(cyrustest.RoleBackend, cyrustest.Options{Master: m.master.MupdateAddr(), IMAPPort: ports[1]}); err != nil {
		return nil, err
	}
	if m.be2, err = cyrustest.Launch(cyrustest.RoleBackend, cyrustest.Options{Master: m.master.MupdateAddr(), IMAPPort: ports[2]}); err != nil {
		return nil, err
	}
	if m.fe, err = cyrustest.Launch(cyrustest.RoleFrontend, cyrustest.Options{Master: m.master.MupdateAddr(), IMAPPort: ports[3], MupdatePort: ports[4]}); err != nil {
		return nil, err
	}
	for _, u := range []struct {
		name, pass string
		home       *cyrustest.Instance
	}{{benchUser, benchPass, m.be1}, {otherUser, otherPass, m.be2}} {
		for _, i := range []*cyrustest.Instance{m.be1, m.be2, m.fe} {
			if err := i.SetUser(u.name, u.pass, i == u.home); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Close stops every instance, the frontend first.
func (m *cyrusMurder) Close() error {
	var errs []error
	for _, i := range []*cyrustest.Instance{m.fe, m.be2, m.be1, m.master} {
		if i != nil {
			errs = append(errs, i.Close())
		}
	}
	return errors.Join(errs...)
}

// measureList creates n mailboxes through tg, a frontend: half below the
// bench user's INBOX, half below the other user's, shared with the bench
// user. It waits until the bench user lists them all (sync, if not nil,
// first makes the frontend catch up with its master), then times listCmd
// 1+runs times.
func measureList(ctx context.Context, tg target, n, runs int, sync func() error, logw io.Writer) (*listResults, error) {
	res := &listResults{}
	if sync != nil {
		if err := sync(); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(logw, "%s: CREATE and SETACL of %d mailboxes through the frontend ... ", tg.Name, n)
	start := time.Now()
	other := tg
	other.User, other.Pass = otherUser, otherPass
	for k, owner := range []target{tg, other} {
		c, err := dialRaw(ctx, owner)
		if err != nil {
			return nil, err
		}
		for i := k * n / 2; i < (k+1)*n/2; i++ {
			name := fmt.Sprintf("INBOX.l%04d", i)
			if _, err := c.Cmd("CREATE %s", name); err != nil {
				c.Close()
				return nil, fail(ctx, owner, "CREATE "+name, err)
			}
			if owner.User == otherUser {
				if _, err := c.Cmd("SETACL %s %s lr", name, benchUser); err != nil {
					c.Close()
					return nil, fail(ctx, owner, "SETACL "+name, err)
				}
			}
		}
		c.Close()
	}
	res.Setup = time.Since(start)
	fmt.Fprintf(logw, "%v\n", res.Setup.Round(time.Millisecond))

	c, err := dialRaw(ctx, tg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		if sync != nil {
			if err := sync(); err != nil {
				return nil, err
			}
		}
		untagged, err := c.Cmd(`LIST "" "*"`)
		if err != nil {
			return nil, fail(ctx, tg, "LIST", err)
		}
		if got := created(untagged); got >= n {
			break
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("backendbench: %s: the frontend lists %d of the %d mailboxes", tg.Name, got, n)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}

	fmt.Fprintf(logw, "%s: %s, 1 + %d runs ... ", tg.Name, listCmd, runs)
	for i := range 1 + runs {
		start := time.Now()
		untagged, err := c.Cmd("%s", listCmd)
		d := time.Since(start)
		if err != nil {
			fmt.Fprintln(logw, "failed")
			return nil, fail(ctx, tg, "LIST-STATUS", err)
		}
		if i > 0 {
			res.Times.Runs = append(res.Times.Runs, d)
			continue
		}
		res.Times.First = d
		for _, line := range untagged {
			switch {
			case strings.HasPrefix(line, "* LIST "):
				res.Listed++
				res.Created += created([]string{line})
			case strings.HasPrefix(line, "* STATUS "):
				res.Times.Count++
			}
		}
	}
	slices.Sort(res.Times.Runs)
	fmt.Fprintf(logw, "first %v, p50 %v, %d listed, %d STATUS\n", res.Times.First,
		benchutil.Percentile(res.Times.Runs, 0.5), res.Listed, res.Times.Count)
	return res, nil
}

// created counts the LIST responses of mailboxes measureList made, the
// only ones whose names have a level starting with l.
func created(untagged []string) int {
	n := 0
	for _, line := range untagged {
		if strings.HasPrefix(line, "* LIST ") && strings.Contains(line, ".l") {
			n++
		}
	}
	return n
}
