package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rookery/rookery/actors/slave"
	"github.com/rookery/rookery/internal/benchutil"
	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/node"
)

// replicaSizes say how much work the replica measurements do.
type replicaSizes struct {
	Entries      int // mailboxes on the Rookery master for the full sync
	CyrusEntries int // mailboxes on the Cyrus master, which loads slowly
	Propagation  int // Rookery propagation samples
	CyrusSamples int // Cyrus propagation samples (each waits for a ~5 s tick)
	Changes      int // master changes while the replica is down
	Conns        int // connections of the loads
	Window       int // ACTIVATEs in flight per load connection
}

// Sizes of a full and a quick replica run. The Cyrus master loads at about
// 2,000 ACTIVATE/s, so CyrusEntries dominates the run time.
var (
	fullReplicaSizes = replicaSizes{
		Entries: 1_000_000, CyrusEntries: 100_000, Propagation: 500, CyrusSamples: 5,
		Changes: 100, Conns: 4, Window: 64,
	}
	quickReplicaSizes = replicaSizes{
		Entries: 100_000, CyrusEntries: 20_000, Propagation: 200, CyrusSamples: 3,
		Changes: 100, Conns: 4, Window: 64,
	}
)

// replicaResults are one side's replica figures.
type replicaResults struct {
	Entries     int             // on the master during the full sync
	FullSync    time.Duration   // a fresh replica, from start until it holds every entry and serves
	Propagation []time.Duration // master to replica, sorted
	Restart     time.Duration   // from a restart after sizes.Changes changes until caught up
	// RestartStart is the part of Restart that node.Start took, before
	// the replica contacted its master (Rookery only).
	RestartStart time.Duration
}

// Bounds for waits that only a broken replica exceeds: syncing takes far
// less than a millisecond per entry on both sides.
const (
	syncTimeoutBase     = time.Minute
	syncTimeoutPerEntry = time.Millisecond
	// statusPoll is how often the Rookery replica's status is read: a
	// request to an actor, cheap enough to ask every millisecond.
	statusPoll = time.Millisecond
	// cyrusPoll is how often a Cyrus slave is asked with FIND.
	cyrusPoll = 20 * time.Millisecond
)

func syncTimeout(entries int) time.Duration {
	return syncTimeoutBase + time.Duration(entries)*syncTimeoutPerEntry
}

// runReplica measures a Rookery replica of a Rookery master and a Cyrus
// slave of a Cyrus master, one side after the other, and prints the table
// to out; progress goes to logw. Everything it starts is stopped before it
// returns.
func runReplica(ctx context.Context, out, logw io.Writer, sz replicaSizes) (err error) {
	m, err := startMasters(ctx, logw)
	if err != nil {
		return err
	}
	defer closing(&err, "the masters", m.Close)

	loadBefore := benchutil.LoadAvg()
	rr, err := measureRookeryReplica(ctx, m.rookery, filepath.Join(m.dir, "replica"), sz, m.log, logw)
	if err != nil {
		return err
	}
	cr, err := measureCyrusReplica(ctx, m.ct, sz, logw)
	if err != nil {
		return err
	}

	m.printHeader(out, loadBefore, "in-process master and in-process replica",
		"mupdate -m master and a frontend's mupdate slave, via cyrustest")
	fmt.Fprintf(out, "data: everything under %s (%s); masters loaded with pipelined ACTIVATE, %d connections x %d in flight\n\n",
		m.base, benchutil.FSType(m.base), sz.Conns, sz.Window)
	printReplicaTable(out, sz, rr, cr)
	return nil
}

// measureRookeryReplica loads master with sz.Entries mailboxes and
// measures a Rookery replica of it with its data in dir: the full sync of
// a fresh replica, propagation through it, and its catch-up after a
// restart. The replica is closed again on return.
func measureRookeryReplica(ctx context.Context, master *node.Node, dir string, sz replicaSizes,
	logger *slog.Logger, logw io.Writer) (_ *replicaResults, err error) {
	mt := rookeryTarget("Rookery", master.MUPDATEAddr())
	res := replicaResults{Entries: sz.Entries}
	if err := load(ctx, mt, sz.Entries, sz, logw); err != nil {
		return nil, err
	}

	fmt.Fprintf(logw, "Rookery: full sync of a fresh replica, %d entries ... ", sz.Entries)
	start := time.Now()
	r, err := startReplica(dir, master.MUPDATEAddr(), logger)
	if err != nil {
		return nil, err
	}
	// r is replaced on the restart below; the deferred call closes the
	// current one (Close is idempotent).
	defer func() { closing(&err, "the rookery replica", r.Close) }()
	want := uint64(sz.Entries)
	synced, _, err := waitReplica(ctx, r, syncTimeout(sz.Entries), func(st slave.Status) bool {
		return st.Connected && st.FullSyncs == 1 && r.Store().Count() == want
	})
	if err != nil {
		return nil, err
	}
	res.FullSync = synced.Sub(start)
	fmt.Fprintf(logw, "%v\n", res.FullSync.Round(time.Millisecond))

	fmt.Fprintf(logw, "Rookery: propagation master -> replica -> UPDATE client, %d samples ... ", sz.Propagation)
	res.Propagation, err = streamPropagation(ctx, mt, rookeryTarget("Rookery replica", r.MUPDATEAddr()),
		names("user.benchw", 0, sz.Propagation))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "p50 %v\n", benchutil.Percentile(res.Propagation, 0.5))

	fmt.Fprintf(logw, "Rookery: replica restart after %d changes on the master ... ", sz.Changes)
	if err := r.Close(); err != nil {
		return nil, fmt.Errorf("mupdatebench: closing the rookery replica: %w", err)
	}
	if _, err := activatePipelined(ctx, mt, names("user.benchx", 0, sz.Changes), 1, sz.Window); err != nil {
		return nil, err
	}
	lastSeq := master.Store().LastSeq()
	start = time.Now()
	again, err := startReplica(dir, master.MUPDATEAddr(), logger)
	if err != nil {
		return nil, err
	}
	res.RestartStart = time.Since(start)
	r = again
	caught, st, err := waitReplica(ctx, r, syncTimeout(sz.Entries), func(st slave.Status) bool {
		return st.Connected && st.AppliedSeq == lastSeq
	})
	if err != nil {
		return nil, err
	}
	res.Restart = caught.Sub(start)
	if st.Resumes != 1 || st.FullSyncs != 0 {
		return nil, fmt.Errorf("mupdatebench: the restarted rookery replica did not resume: %+v", st)
	}
	if got, want := r.Store().Count(), master.Store().Count(); got != want {
		return nil, fmt.Errorf("mupdatebench: the resumed rookery replica holds %d mailboxes, the master %d", got, want)
	}
	fmt.Fprintf(logw, "%v (node start %v)\n", res.Restart.Round(time.Microsecond), res.RestartStart.Round(time.Microsecond))
	return &res, nil
}

// load brings a fresh master to n mailboxes, user.bench0 and up.
func load(ctx context.Context, tg target, n int, sz replicaSizes, logw io.Writer) error {
	fmt.Fprintf(logw, "%s: loading the master with %d pipelined ACTIVATEs ... ", tg.Name, n)
	rate, err := activatePipelined(ctx, tg, names("user.bench", 0, n), sz.Conns, sz.Window)
	if err != nil {
		fmt.Fprintln(logw, "failed")
		return err
	}
	fmt.Fprintf(logw, "%.0f/s\n", rate)
	return nil
}

// waitReplica polls the replica's status until ok accepts it, and returns
// when it first did and what it saw.
func waitReplica(ctx context.Context, r *node.Node, timeout time.Duration, ok func(slave.Status) bool) (time.Time, slave.Status, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, _ := r.ReplicaStatus()
		if ok(st) {
			return time.Now(), st, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, st, fmt.Errorf("mupdatebench: the rookery replica did not get there within %v: %+v, %d mailboxes",
				timeout, st, r.Store().Count())
		}
		if err := pause(ctx, statusPoll); err != nil {
			return time.Time{}, st, err
		}
	}
}

// measureCyrusReplica loads the Cyrus master (reached through ct) with
// sz.CyrusEntries mailboxes and measures a Cyrus frontend's mupdate slave
// of it: the first full sync, propagation to it, and its resync after a
// restart. The frontend is stopped and removed again on return.
func measureCyrusReplica(ctx context.Context, ct target, sz replicaSizes, logw io.Writer) (_ *replicaResults, err error) {
	res := replicaResults{Entries: sz.CyrusEntries}
	if err := load(ctx, ct, sz.CyrusEntries, sz, logw); err != nil {
		return nil, err
	}
	imapPort, err := benchutil.FreePort()
	if err != nil {
		return nil, err
	}
	mupdatePort, err := benchutil.FreePort()
	if err != nil {
		return nil, err
	}
	opt := cyrustest.Options{
		Master: ct.Addr, IMAPPort: imapPort, MupdatePort: mupdatePort,
		ReadyTimeout: syncTimeout(sz.CyrusEntries),
	}
	// Only admins may talk to a frontend's mupdate slave.
	st := target{Name: "Cyrus slave", Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(mupdatePort)),
		User: cyrustest.AdminUser, Pass: cyrustest.AdminPass}

	fmt.Fprintf(logw, "Cyrus: full sync of a fresh frontend mupdate slave, %d entries ... ", sz.CyrusEntries)
	var fe *cyrustest.Instance
	defer func() {
		if fe != nil {
			closing(&err, "the cyrus frontend", fe.Close)
		}
	}()
	res.FullSync, err = timeCyrusStart(ctx, st, fmt.Sprintf("user.bench%d", sz.CyrusEntries-1), func() (int, error) {
		var err error
		fe, err = cyrustest.Launch(cyrustest.RoleFrontend, opt)
		if err != nil {
			return 0, err
		}
		return fe.MasterPID, nil
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "%v\n", res.FullSync.Round(time.Millisecond))

	fmt.Fprintf(logw, "Cyrus: propagation master -> slave (FIND every %v), %d samples ... ", cyrusPoll, sz.CyrusSamples)
	res.Propagation, err = findPropagation(ctx, ct, st, names("user.benchw", 0, sz.CyrusSamples), cyrusPoll)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "p50 %v\n", benchutil.Percentile(res.Propagation, 0.5))

	fmt.Fprintf(logw, "Cyrus: slave restart after %d changes on the master ... ", sz.Changes)
	if err := fe.Stop(); err != nil {
		return nil, err
	}
	changes := names("user.benchx", 0, sz.Changes)
	if _, err := activatePipelined(ctx, ct, changes, 1, sz.Window); err != nil {
		return nil, err
	}
	res.Restart, err = timeCyrusStart(ctx, st, changes[len(changes)-1], func() (int, error) {
		if err := fe.Relaunch(); err != nil {
			return 0, err
		}
		return fe.MasterPID, nil
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logw, "%v\n", res.Restart.Round(time.Millisecond))
	return &res, nil
}

// timeCyrusStart runs start, which starts a Cyrus frontend and returns its
// master's pid, and times it from the start of that process until the
// frontend's mupdate slave, reached through tg, greets and finds last. A
// Cyrus slave greets only once it has synced with its master. The clock
// starts with the Cyrus master process, not with start, which also sets
// up the instance's directory and users.
func timeCyrusStart(ctx context.Context, tg target, last string, start func() (pid int, err error)) (time.Duration, error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type ready struct {
		at  time.Time
		err error
	}
	done := make(chan ready, 1)
	go func() {
		at, err := awaitFind(wctx, tg, last)
		done <- ready{at, err}
	}()
	pid, err := start()
	if err != nil {
		cancel()
		<-done
		return 0, err
	}
	// start returned once the harness saw the greeting, so the FIND is
	// due any moment.
	var r ready
	select {
	case r = <-done:
	case <-time.After(streamTimeout):
		cancel()
		<-done
		return 0, fmt.Errorf("mupdatebench: %s greeted the harness but did not find %s within %v", tg.Name, last, streamTimeout)
	}
	if r.err != nil {
		return 0, r.err
	}
	age, at, err := processAge(pid)
	if err != nil {
		return 0, err
	}
	return age - at.Sub(r.at), nil
}

// awaitFind connects to tg until it greets and a FIND of name succeeds,
// and returns when it did. Connections are accepted before the server
// greets, so each one waits as long as it takes.
func awaitFind(ctx context.Context, tg target, name string) (time.Time, error) {
	for {
		c, err := mupdate.Dial(ctx, tg.Addr, mupdate.ClientConfig{Username: tg.User, Password: tg.Pass, Timeout: time.Hour})
		if err == nil {
			var e *mupdate.Record
			e, err = c.Find(name)
			c.Close()
			if err == nil && e != nil {
				return time.Now(), nil
			}
		}
		// Refused (not listening yet), cut, or not there yet: try again.
		if err := pause(ctx, 10*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// clockTicks is the unit of a process's start time in /proc (USER_HZ,
// 100 on every Linux Go runs on).
const clockTicks = 100

// processAge is how long process pid has been running, at the returned
// time, to 10 ms.
func processAge(pid int) (time.Duration, time.Time, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("mupdatebench: %w", err)
	}
	uptime, err := os.ReadFile("/proc/uptime")
	now := time.Now()
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("mupdatebench: %w", err)
	}
	// The fields after the command name, which may hold anything but
	// ends with the last ")"; the start time is field 22, the 20th here.
	i := strings.LastIndexByte(string(stat), ')')
	f := strings.Fields(string(stat[i+1:]))
	u := strings.Fields(string(uptime))
	if i < 0 || len(f) < 20 || len(u) < 1 {
		return 0, time.Time{}, errors.New("mupdatebench: unexpected /proc format")
	}
	ticks, err1 := strconv.ParseUint(f[19], 10, 64)
	up, err2 := strconv.ParseFloat(u[0], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, time.Time{}, fmt.Errorf("mupdatebench: reading /proc: %w", err)
	}
	age := time.Duration(up*float64(time.Second)) - time.Duration(ticks)*time.Second/clockTicks
	return age, now, nil
}

func printReplicaTable(w io.Writer, sz replicaSizes, r, c *replicaResults) {
	same := r.Entries == c.Entries
	sizes := fmt.Sprintf("%d entries", r.Entries)
	if !same {
		sizes = fmt.Sprintf("Rookery %d / Cyrus %d entries", r.Entries, c.Entries)
	}
	rows := []benchutil.Row{
		{Metric: fmt.Sprintf("full sync of a fresh replica, %s (s)", sizes),
			Rookery: r.FullSync.Seconds(), Cyrus: c.FullSync.Seconds(), Latency: true, NoRatio: !same},
		{Metric: "full sync rate (entries/s)",
			Rookery: rate(r.Entries, r.FullSync), Cyrus: rate(c.Entries, c.FullSync)},
	}
	rows = append(rows, benchutil.PercentileRows(func(q string) string {
		return fmt.Sprintf("propagation master -> replica %s, %d/%d samples (ms)", q, len(r.Propagation), len(c.Propagation))
	}, r.Propagation, c.Propagation)...)
	rows = append(rows, benchutil.Row{Metric: fmt.Sprintf("restart after %d master changes, %s (ms)", sz.Changes, sizes),
		Rookery: benchutil.Ms(r.Restart), Cyrus: benchutil.Ms(c.Restart), Latency: true})
	benchutil.WriteTable(w, rows)

	fmt.Fprintln(w, "\nratio: Rookery/Cyrus for rates, Cyrus/Rookery for times; above 1 means Rookery is faster.")
	if !same {
		fmt.Fprintln(w, "sizes differ, so the full sync times are not compared: compare its entries/s row.")
	}
	fmt.Fprintln(w, "full sync: Rookery from node start until its status says connected after one full sync with every entry stored;")
	fmt.Fprintln(w, "  Cyrus from its master process's start (from /proc, 10 ms resolution) until the frontend's mupdate slave greets")
	fmt.Fprintln(w, "  on its port (it greets only after its first sync) and FIND finds the last entry there.")
	fmt.Fprintln(w, "propagation: Rookery from ACTIVATE on the master until the MAILBOX line arrives on an UPDATE stream from the")
	fmt.Fprintln(w, "  replica's own listener (master -> replica -> its client); Cyrus until a FIND on the slave, sent every 20 ms, finds it.")
	fmt.Fprintln(w, "restart: replica stopped, changes made on its master, replica started on the same data. Rookery until connected by a")
	fmt.Fprintln(w, "  resume (no full sync) with the master's last seq applied; Cyrus, which has no resume and resyncs its whole list,")
	fmt.Fprintln(w, "  timed like its full sync, until FIND finds the last change.")
	fmt.Fprintf(w, "  Of Rookery's %.3f ms, node start (opening the store) took %.3f ms and catching up after it %.3f ms.\n",
		benchutil.Ms(r.Restart), benchutil.Ms(r.RestartStart), benchutil.Ms(r.Restart-r.RestartStart))
	switch {
	case c.Entries < r.Entries:
		fmt.Fprintln(w, "  Cyrus's restart time grows with its size, so with fewer entries there the restart ratio understates Rookery's lead.")
	case c.Entries > r.Entries:
		fmt.Fprintln(w, "  Cyrus's restart time grows with its size, so with more entries there the restart ratio overstates Rookery's lead.")
	}
}
