package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
)

// Sizes of the -scale mode.
var (
	fullScaleEntries  = []int{1_000_000, 10_000_000}
	quickScaleEntries = []int{100_000, 1_000_000}
)

// scaleResults are the -scale mode's figures for one list size.
type scaleResults struct {
	Entries  int
	Fill     time.Duration
	FillRate float64
	// Resident memory of the master after the fill (and its peak), and
	// after a restart on the full list.
	MasterRSS, MasterPeak, RestartRSS uint64
	Restart                           time.Duration // until MUPDATE answers again
	Sync                              time.Duration // a fresh replica, until it holds every entry
	ReplicaRSS, ReplicaPeak           uint64
	MasterServingPeak                 uint64 // the master's peak after serving the replica's dump
	MasterDisk, ReplicaDisk           int64
}

// nodeProc is a Rookery node run from the built binary, so its memory is
// its own.
type nodeProc struct {
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// runScale measures a Rookery master and a replica, each its own process,
// at each size of entries: fill, memory, restart, full sync.
func runScale(ctx context.Context, out, logw io.Writer, sizes []int) (err error) {
	dir, err := os.MkdirTemp("", "mupdatebench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "node")
	fmt.Fprintf(logw, "building cmd/node ... ")
	if b, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/rookery/rookery/cmd/node").CombinedOutput(); err != nil {
		return fmt.Errorf("mupdatebench: go build: %v\n%s", err, b)
	}
	fmt.Fprintln(logw, "done")
	loadBefore := benchutil.LoadAvg()
	var all []*scaleResults
	for _, n := range sizes {
		r, err := measureScale(ctx, logw, bin, filepath.Join(dir, strconv.Itoa(n)), n)
		if err != nil {
			return err
		}
		all = append(all, r)
	}
	fmt.Fprintf(out, "%s\n\n", benchutil.Machine(loadBefore))
	printScaleTable(out, all)
	return nil
}

func measureScale(ctx context.Context, logw io.Writer, bin, dir string, n int) (_ *scaleResults, err error) {
	res := &scaleResults{Entries: n}
	users := filepath.Join(dir, "users")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(users, []byte("admin:{PLAIN}adminpw\n"), 0o600); err != nil {
		return nil, err
	}
	mAddr, mAdmin := freeAddr(), freeAddr()
	masterConf, err := nodeConf(dir, "master", users, mAddr, mAdmin, "roles: master")
	if err != nil {
		return nil, err
	}
	master, err := startProc(ctx, bin, masterConf, filepath.Join(dir, "master.log"))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, master.stop()) }()
	tg := target{Name: "Rookery master", Addr: mAddr, User: "admin", Pass: "adminpw"}
	if _, err := waitMUPDATE(ctx, tg, time.Minute); err != nil {
		return nil, err
	}

	fmt.Fprintf(logw, "[%d] filling the master (its own process), 4 connections x 64 ACTIVATEs in flight ... ", n)
	start := time.Now()
	if res.FillRate, err = activatePipelined(ctx, tg, names("user.bench", 0, n), 4, 64); err != nil {
		fmt.Fprintln(logw, "failed")
		return nil, err
	}
	res.Fill = time.Since(start)
	fmt.Fprintf(logw, "%v (%.0f/s)\n", res.Fill.Round(time.Millisecond), res.FillRate)
	res.MasterRSS, res.MasterPeak = master.memory()

	fmt.Fprintf(logw, "[%d] restarting the master ... ", n)
	if err := master.stop(); err != nil {
		return nil, err
	}
	if master, err = startProc(ctx, bin, masterConf, filepath.Join(dir, "master2.log")); err != nil {
		return nil, err
	}
	if res.Restart, err = waitMUPDATE(ctx, tg, 5*time.Minute); err != nil {
		return nil, err
	}
	res.RestartRSS, _ = master.memory()
	fmt.Fprintf(logw, "answers after %v\n", res.Restart.Round(time.Millisecond))

	fmt.Fprintf(logw, "[%d] a fresh replica (its own process) syncs ... ", n)
	rAdmin := freeAddr()
	replicaConf, err := nodeConf(dir, "replica", users, freeAddr(), rAdmin,
		"roles: replica", "mupdate_server: "+mAddr, "mupdate_authname: admin", "mupdate_password: adminpw")
	if err != nil {
		return nil, err
	}
	start = time.Now()
	replica, err := startProc(ctx, bin, replicaConf, filepath.Join(dir, "replica.log"))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, replica.stop()) }()
	for {
		if m, err := mailboxes(rAdmin); err == nil && m == uint64(n) {
			break
		}
		if time.Since(start) > syncTimeout(n) {
			return nil, fmt.Errorf("mupdatebench: the replica did not hold %d entries within %v", n, syncTimeout(n))
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	res.Sync = time.Since(start)
	fmt.Fprintf(logw, "%v\n", res.Sync.Round(time.Millisecond))
	res.ReplicaRSS, res.ReplicaPeak = replica.memory()
	_, res.MasterServingPeak = master.memory()
	res.MasterDisk = du(filepath.Join(dir, "master"))
	res.ReplicaDisk = du(filepath.Join(dir, "replica"))
	return res, nil
}

// nodeConf writes a node's config file and returns its path.
func nodeConf(dir, name, users, mupdate, admin string, extra ...string) (string, error) {
	conf := filepath.Join(dir, name+".conf")
	lines := append([]string{
		"servername: " + name + ".scale",
		"data: " + filepath.Join(dir, name),
		"users: " + users,
		"users_poll: 0",
		"admins: admin",
		"allowplaintext: yes",
		"mupdate_listen: " + mupdate,
		"admin_listen: " + admin,
		"imap_listen:", "pop3_listen:", "lmtp_listen:", "gossip_listen:",
		"log_level: warn",
	}, extra...)
	return conf, os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

func startProc(ctx context.Context, bin, conf, logFile string) (*nodeProc, error) {
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--config", conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, err
	}
	p := &nodeProc{cmd: cmd, done: make(chan error, 1), log: log}
	go func() { p.done <- cmd.Wait() }()
	context.AfterFunc(ctx, func() { _ = cmd.Process.Kill() })
	return p, nil
}

// stop ends the node with SIGTERM, as an operator would; once.
func (p *nodeProc) stop() error {
	if p.done == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-p.done:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		err = errors.Join(errors.New("mupdatebench: a node did not stop within a minute of SIGTERM"), <-p.done)
	}
	p.done = nil
	p.log.Close()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 0 {
		err = nil
	}
	return err
}

// memory reads the process's resident set and its peak, in bytes.
func (p *nodeProc) memory() (rss, peak uint64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak
}

// waitMUPDATE waits until tg greets and logs in, and returns how long
// that took.
func waitMUPDATE(ctx context.Context, tg target, within time.Duration) (time.Duration, error) {
	start := time.Now()
	for {
		_, done, err := dial(ctx, tg)
		if err == nil {
			done()
			return time.Since(start), nil
		}
		if time.Since(start) > within {
			return 0, fmt.Errorf("mupdatebench: %s did not answer within %v: %w", tg.Name, within, err)
		}
		if err := pause(ctx, 20*time.Millisecond); err != nil {
			return 0, err
		}
	}
}

// mailboxes asks a node's admin listener how many entries its list holds.
func mailboxes(admin string) (uint64, error) {
	resp, err := http.Get("http://" + admin + "/status")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var st struct {
		Mailboxes uint64 `json:"mailboxes"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st.Mailboxes, err
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

// du sums the sizes of the files under dir.
func du(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func printScaleTable(w io.Writer, all []*scaleResults) {
	mib := func(b uint64) string { return fmt.Sprintf("%.0f", float64(b)/(1<<20)) }
	fmt.Fprintln(w, "entries  | fill (s) | fill (/s) | master RSS / peak (MiB) | restart (s) | RSS after (MiB) | replica sync (s) | replica RSS / peak (MiB) | master peak serving (MiB) | disk master / replica (MiB)")
	fmt.Fprintln(w, "---------|----------|-----------|-------------------------|-------------|-----------------|------------------|--------------------------|---------------------------|----------------------------")
	for _, r := range all {
		fmt.Fprintf(w, "%-8d | %8.1f | %9.0f | %23s | %11.2f | %15s | %16.1f | %24s | %25s | %27s\n",
			r.Entries, r.Fill.Seconds(), r.FillRate, mib(r.MasterRSS)+" / "+mib(r.MasterPeak), r.Restart.Seconds(),
			mib(r.RestartRSS), r.Sync.Seconds(), mib(r.ReplicaRSS)+" / "+mib(r.ReplicaPeak), mib(r.MasterServingPeak),
			mib(uint64(r.MasterDisk))+" / "+mib(uint64(r.ReplicaDisk)))
	}
	fmt.Fprintln(w, "\nmaster and replica: `cmd/node` built by the run, each its own process, MUPDATE only; RSS and its peak")
	fmt.Fprintln(w, "  (VmHWM) from /proc. fill: pipelined ACTIVATE over MUPDATE. restart: SIGTERM, then a new process on the")
	fmt.Fprintln(w, "  same data until MUPDATE greets and logs in. replica sync: from its start until its /status counts every")
	fmt.Fprintln(w, "  entry (a full dump: the replica starts empty).")
}
