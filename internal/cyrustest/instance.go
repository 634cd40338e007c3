package cyrustest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Roles accepted by Start.
const (
	RoleMupdateMaster = "mupdate-master"
	RoleBackend       = "backend"
	RoleFrontend      = "frontend"
)

const (
	// baseDir is short and world-traversable on purpose: the harness limits
	// an instance directory to 77 characters (unix socket paths) and user
	// cyrus must reach it, which rules out t.TempDir().
	baseDir = "/tmp"
	// dirPrefix names every instance directory, so orphans can be found.
	dirPrefix = "cyrustest-"
	// ownerFile in an instance directory records the test process that
	// created it ("PID PIDNAMESPACE").
	ownerFile = "cyrustest.owner"
	// harnessTimeout bounds one murder.sh call; start waits up to 30 s for
	// readiness and stop up to 20 s before it kills.
	harnessTimeout = 2 * time.Minute
	// tailLines is how much of an instance's logs a failed test shows.
	tailLines = 60
)

// Options configure an instance; they map onto murder.sh start options.
// Zero values mean "not given" (the harness default applies).
type Options struct {
	Addr        string            // loopback address to listen on (default 127.0.0.1)
	Master      string            // host:port of the mupdate master (backend, frontend)
	ServerName  string            // Cyrus servername (default: see the harness README, "Addressing")
	Name        string            // syslog prefix (default: role and a random number)
	IMAPPort    int               // backend, frontend: required
	POP3Port    int               // backend, frontend
	LMTPPort    int               // backend, frontend
	MupdatePort int               // mupdate-master: required; frontend: TCP port of its mupdate slave
	Serverlist  []string          // frontend: backends for new top-level mailboxes
	Conf        map[string]string // extra or overriding imapd.conf options
	LMTPPreauth bool              // TCP lmtpd without LMTP AUTH
	// ReadyTimeout bounds the wait for every listener to greet (default
	// 30 s). A frontend greets on its mupdate port only once its slave has
	// loaded the master's whole list, which takes longer for big lists.
	ReadyTimeout time.Duration
}

func (o Options) args() []string {
	var a []string
	add := func(flag, v string) {
		if v != "" {
			a = append(a, flag, v)
		}
	}
	port := func(p int) string {
		if p == 0 {
			return ""
		}
		return strconv.Itoa(p)
	}
	add("--addr", o.Addr)
	add("--master", o.Master)
	add("--servername", o.ServerName)
	add("--name", o.Name)
	add("--imap-port", port(o.IMAPPort))
	add("--pop3-port", port(o.POP3Port))
	add("--lmtp-port", port(o.LMTPPort))
	add("--mupdate-port", port(o.MupdatePort))
	add("--serverlist", strings.Join(o.Serverlist, " "))
	for _, k := range slices.Sorted(maps.Keys(o.Conf)) {
		a = append(a, "--conf", k+"="+o.Conf[k])
	}
	if o.LMTPPreauth {
		a = append(a, "--lmtp-preauth")
	}
	if o.ReadyTimeout > 0 {
		a = append(a, "--timeout", strconv.Itoa(int(math.Ceil(o.ReadyTimeout.Seconds()))))
	}
	return a
}

// Instance is one running Cyrus instance. Its fields describe it as the
// harness reported it on the last (re)start. An Instance is not safe for
// concurrent use, except that Stop may be called from any goroutine.
type Instance struct {
	Role          string // RoleMupdateMaster, RoleBackend or RoleFrontend
	Dir           string // instance directory (config, data, logs)
	Name          string // syslog prefix
	Addr          string // loopback address it listens on
	ServerName    string // Cyrus servername; a backend's mailboxes live at ServerName!default
	Master        string // host:port of its mupdate master ("" for a master)
	IMAPPort      int    // 0 when not listening
	POP3Port      int
	LMTPPort      int
	MupdatePort   int
	LMTPSocket    string // unix socket of the local lmtpd (no AUTH needed)
	MupdateSocket string // frontend without MupdatePort: unix socket of its mupdate slave
	MasterPID     int    // pid of the Cyrus master process
	// Env holds every KEY=VALUE line that murder.sh start printed
	// (IMAPD_CONF, SYSLOG, PIDS, ...).
	Env map[string]string

	harness string
	args    []string
	// startTimeout bounds one murder.sh start: its readiness wait and the
	// rest of its work.
	startTimeout time.Duration

	mu      sync.Mutex
	stopped bool
}

// Start runs a Cyrus instance of the given role in a fresh directory and
// returns once all its listeners answer. t.Cleanup stops it and removes its
// directory; if the test failed, the tail of its logs is logged first.
// Start calls Require, and fails the test if the instance does not start.
//
// Start also stops and removes instances whose test process died without
// cleaning up (killed, or timed out), so they cannot pile up.
func Start(t testing.TB, role string, opt Options) *Instance {
	t.Helper()
	Require(t)
	i, err := newInstance(role, opt, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { i.cleanup(t) })
	if err := i.start(); err != nil {
		t.Fatal(err)
	}
	return i
}

// Launch is Start for programs (benchmarks, tools) that have no
// testing.TB: it returns an error instead of failing a test, and the
// caller must Close the instance on every path, also after an error-free
// Launch. On failure Launch has already stopped whatever it started and
// removed the directory. Orphans are reaped as by Start.
func Launch(role string, opt Options) (*Instance, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	i, err := newInstance(role, opt, func(string, ...any) {})
	if err != nil {
		return nil, err
	}
	if err := i.start(); err != nil {
		if cerr := i.Close(); cerr != nil {
			return nil, fmt.Errorf("%w\n%w", err, cerr)
		}
		return nil, err
	}
	return i, nil
}

// Close stops the instance (see Stop) and removes its directory. A
// directory whose processes could not be stopped is kept, because without
// it nobody could find and stop them; the error names it.
func (i *Instance) Close() error {
	if err := i.Stop(); err != nil {
		return fmt.Errorf("%w\ncyrustest: kept %s", err, i.Dir)
	}
	if err := os.RemoveAll(i.Dir); err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	return nil
}

// newInstance prepares a fresh instance directory; nothing runs yet, and
// on error nothing is left behind.
func newInstance(role string, opt Options, logf func(string, ...any)) (*Instance, error) {
	switch role {
	case RoleMupdateMaster, RoleBackend, RoleFrontend:
	default:
		return nil, fmt.Errorf("cyrustest: unknown role %q", role)
	}
	harness, err := Dir()
	if err != nil {
		return nil, err
	}
	reapOrphans(logf, harness)

	dir, err := os.MkdirTemp(baseDir, dirPrefix+role+"-")
	if err != nil {
		return nil, fmt.Errorf("cyrustest: %w", err)
	}
	if opt.Name == "" {
		opt.Name = strings.TrimPrefix(filepath.Base(dir), dirPrefix) // e.g. backend-123456
	}
	err = os.Chmod(dir, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(ownerID()), 0o644)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("cyrustest: %w", err)
	}
	return &Instance{Role: role, Dir: dir, harness: harness, args: opt.args(),
		startTimeout: harnessTimeout + opt.ReadyTimeout}, nil
}

func (i *Instance) start() error {
	// From here on something may run, even if start fails half-way.
	i.mu.Lock()
	i.stopped = false
	i.mu.Unlock()
	out, err := murderWithin(i.startTimeout, i.harness, append([]string{"start", i.Role, i.Dir}, i.args...)...)
	if err != nil {
		return err
	}
	env := make(map[string]string)
	for line := range strings.Lines(out) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			env[k] = v
		}
	}
	num := func(k string) int {
		n, _ := strconv.Atoi(env[k])
		return n
	}
	i.Env = env
	i.Name = env["NAME"]
	i.Addr = env["ADDR"]
	i.ServerName = env["SERVERNAME"]
	i.Master = env["MASTER"]
	i.IMAPPort = num("IMAP_PORT")
	i.POP3Port = num("POP3_PORT")
	i.LMTPPort = num("LMTP_PORT")
	i.MupdatePort = num("MUPDATE_PORT")
	i.LMTPSocket = env["LMTP_SOCKET"]
	i.MupdateSocket = env["MUPDATE_SOCKET"]
	i.MasterPID = num("MASTER_PID")
	if i.MasterPID == 0 {
		return fmt.Errorf("cyrustest: murder.sh start printed no MASTER_PID:\n%s", out)
	}
	return nil
}

// Stop stops the instance and every process of it (murder.sh stop); its
// data stay until the test's cleanup. Calling Stop again is a no-op.
func (i *Instance) Stop() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.stopped {
		return nil
	}
	if _, err := murder(i.harness, "stop", i.Dir); err != nil {
		return err
	}
	i.stopped = true
	return nil
}

// Restart stops the instance and starts it again with the same options;
// mailboxes and users are kept. A restarted backend pushes its mailboxes to
// the mupdate master again.
func (i *Instance) Restart(t testing.TB) {
	t.Helper()
	if err := i.Relaunch(); err != nil {
		t.Fatal(err)
	}
}

// Relaunch is Restart for programs without testing.TB. After an error the
// instance may be half-started; Close still cleans it up.
func (i *Instance) Relaunch() error {
	if err := i.Stop(); err != nil {
		return err
	}
	return i.start()
}

// AddUser adds (or updates) a SASL user of the instance. With inbox set, a
// backend also creates the user's INBOX (CREATE user.USER as admin).
// Frontends authenticate users themselves, so users of a frontend must be
// added there too.
func (i *Instance) AddUser(t testing.TB, user, pass string, inbox bool) {
	t.Helper()
	args := []string{"adduser", i.Dir, user, pass}
	if inbox {
		args = append(args, "--inbox")
	}
	if _, err := murder(i.harness, args...); err != nil {
		t.Fatal(err)
	}
}

// Sync makes a frontend's mupdate slave catch up with the master now,
// instead of within the master's 5 s streaming interval.
func (i *Instance) Sync(t testing.TB) {
	t.Helper()
	if _, err := murder(i.harness, "sync", i.Dir); err != nil {
		t.Fatal(err)
	}
}

// Tool runs a Cyrus tool from /usr/lib/cyrus/bin with the instance's
// configuration, e.g. Tool(t, "ctl_mboxlist", "-d"), and returns its stdout.
func (i *Instance) Tool(t testing.TB, tool string, args ...string) string {
	t.Helper()
	out, err := murder(i.harness, append([]string{"tool", i.Dir, tool}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Syslog returns everything the instance's processes have logged so far
// ("" if nothing could be read).
func (i *Instance) Syslog() string {
	b, _ := os.ReadFile(filepath.Join(i.Dir, "log", "syslog"))
	return string(b)
}

// IMAPAddr returns the "host:port" of the instance's IMAP listener.
func (i *Instance) IMAPAddr() string {
	return net.JoinHostPort(i.Addr, strconv.Itoa(i.IMAPPort))
}

// MupdateAddr returns the "host:port" of the instance's MUPDATE listener,
// e.g. a master's address for Options.Master.
func (i *Instance) MupdateAddr() string {
	return net.JoinHostPort(i.Addr, strconv.Itoa(i.MupdatePort))
}

// cleanup is the t.Cleanup of Start. A directory whose processes could not
// be stopped is kept: without it nobody could find and stop them.
func (i *Instance) cleanup(t testing.TB) {
	err := i.Stop()
	if err != nil || t.Failed() {
		for _, log := range []string{"syslog", "master.err"} {
			path := filepath.Join(i.Dir, "log", log)
			if b, _ := os.ReadFile(path); len(bytes.TrimSpace(b)) > 0 {
				t.Logf("cyrustest: last lines of %s:\n%s", path, tail(string(b), tailLines))
			}
		}
	}
	if err != nil {
		t.Errorf("%v\ncyrustest: kept %s", err, i.Dir)
		return
	}
	if err := os.RemoveAll(i.Dir); err != nil {
		t.Errorf("cyrustest: %v", err)
	}
}

// murder runs the harness script and returns its stdout. Its stderr
// (progress, and the tail of the logs when start fails) goes into the error.
func murder(harness string, args ...string) (string, error) {
	return murderWithin(harnessTimeout, harness, args...)
}

// murderWithin is murder with its own bound on the call.
func murderWithin(timeout time.Duration, harness string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(harness, "murder.sh"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// Cyrus daemons must never hold our pipes open, but if one did, this
	// keeps the call from hanging.
	cmd.WaitDelay = 5 * time.Second
	// Its own process group keeps a terminal's Ctrl-C, meant for the Go
	// program, from killing the harness half-way through start or stop:
	// the program's own cleanup still needs a working stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("cyrustest: murder.sh %s: %w\n%s",
			strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ownerID identifies this process: PID plus PID namespace, so a directory
// made by a process in another namespace is never taken for an orphan.
func ownerID() string {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return fmt.Sprintf("%d %s\n", os.Getpid(), ns)
}

// reapOrphans stops and removes instance directories whose test process is
// gone: t.Cleanup does not run when a test binary is killed or panics on
// -timeout, and the Cyrus master is a daemon that outlives it.
func reapOrphans(logf func(string, ...any), harness string) {
	dirs, _ := filepath.Glob(filepath.Join(baseDir, dirPrefix+"*"))
	_, selfNS, _ := strings.Cut(strings.TrimSpace(ownerID()), " ")
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // not ours to judge, or still being created
		}
		pid, ns, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
		if _, err := strconv.Atoi(pid); err != nil || ns != selfNS {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // owner still alive
		}
		if _, err := murder(harness, "stop", d); err != nil {
			logf("cyrustest: could not stop orphaned instance %s: %v", d, err)
			continue
		}
		if err := os.RemoveAll(d); err == nil {
			logf("cyrustest: stopped and removed %s, left behind by test process %s", d, pid)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
