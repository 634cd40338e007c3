package cyrustest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// baseDir is short and world-traversable on purpose: an instance
	// directory is limited to maxDirLen characters (unix socket paths) and
	// user cyrus must reach it, which rules out t.TempDir().
	baseDir = "/tmp"
	// dirPrefix names every instance directory, so orphans can be found.
	dirPrefix = "cyrustest-"
	// ownerFile in an instance directory records the test process that
	// created it ("PID PIDNAMESPACE").
	ownerFile = "cyrustest.owner"
	// envFile in an instance directory describes the running instance as
	// KEY=VALUE lines, for Open and for people.
	envFile = "instance.env"
	// tailLines is how much of an instance's logs a failed test shows.
	tailLines = 60
)

// Options configure an instance. Zero values mean "not given".
type Options struct {
	Addr        string            // loopback address to listen on (default 127.0.0.1)
	Master      string            // host:port of the mupdate master (backend, frontend)
	ServerName  string            // Cyrus servername (default: see below)
	Name        string            // prefix of its log lines (default: role and a random number)
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

// The default ServerName follows how a Cyrus frontend reaches a backend:
// "host:port" sends every proxied protocol to that one port, a bare "host"
// uses the /etc/services ports of imap, pop3 and lmtp. A backend listening
// on exactly those ports (on its own 127.0.0.N, see FreeLoopbackAddr) is
// named by its address and can be proxied IMAP, POP3 and LMTP; any other
// backend is named "addr:imapport" and can be proxied IMAP only. A master
// is "addr:mupdateport", a frontend "addr:imapport".

// Instance is one running Cyrus instance. Its fields describe it as of the
// last (re)start. An Instance is not safe for concurrent use, except that
// Stop may be called from any goroutine.
type Instance struct {
	Role          string // RoleMupdateMaster, RoleBackend or RoleFrontend
	Dir           string // instance directory (config, data, logs)
	Name          string // prefix of its log lines
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
	// Env describes the instance as KEY=VALUE pairs (ROLE, SERVERNAME,
	// IMAPD_CONF, SYSLOG, MASTER_PID, ...), as also kept in DIR/instance.env.
	Env map[string]string

	opt Options
	// exited is closed when the master, started by this process, ended;
	// nil for an instance found by Open.
	exited <-chan struct{}
	// logf reports what a caller may want to know but need not act on.
	logf func(string, ...any)

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
		err = fmt.Errorf("%w\n%s", err, i.logTail(20))
		if cerr := i.Close(); cerr != nil {
			return nil, fmt.Errorf("%w\n%w", err, cerr)
		}
		return nil, err
	}
	return i, nil
}

// LaunchAt is Launch in a directory the caller chose (created if missing;
// data already there are kept), for instances that outlive the program
// that started them, such as the example topologies'. Nothing reaps them:
// stop them with StopDir. Stderr hears what was changed to let user cyrus
// reach dir. On failure the instance is stopped again.
func LaunchAt(dir, role string, opt Options) (*Instance, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cyrustest: %w", err)
	}
	if alive := instancePIDs(dir, 0); len(alive) > 0 {
		return nil, fmt.Errorf("cyrustest: Cyrus processes %v of %s still run; StopDir it first", alive, dir)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
	i, err := prepare(dir, role, opt, logf)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cyrustest: %w", err)
	}
	if err := traversable(dir, logf); err != nil {
		return nil, err
	}
	if err := i.start(); err != nil {
		err = fmt.Errorf("%w\n%s", err, i.logTail(20))
		return nil, errors.Join(err, i.Stop())
	}
	return i, nil
}

// Open returns the instance that LaunchAt or Start started in dir, as
// described by its DIR/instance.env, e.g. for AddUser or Tool from another
// process.
func Open(dir string) (*Instance, error) {
	b, err := os.ReadFile(filepath.Join(dir, envFile))
	if err != nil {
		return nil, fmt.Errorf("cyrustest: no instance in %s: %w", dir, err)
	}
	env := make(map[string]string)
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			env[k] = v
		}
	}
	num := func(k string) int {
		n, _ := strconv.Atoi(env[k])
		return n
	}
	i := &Instance{Role: env["ROLE"], Dir: env["DIR"], Name: env["NAME"], Addr: env["ADDR"],
		ServerName: env["SERVERNAME"], Master: env["MASTER"], IMAPPort: num("IMAP_PORT"),
		POP3Port: num("POP3_PORT"), LMTPPort: num("LMTP_PORT"), MupdatePort: num("MUPDATE_PORT"),
		LMTPSocket: env["LMTP_SOCKET"], MupdateSocket: env["MUPDATE_SOCKET"],
		MasterPID: num("MASTER_PID"), Env: env, logf: func(string, ...any) {}}
	i.opt = Options{Addr: i.Addr, Master: i.Master, ServerName: i.ServerName, Name: i.Name,
		IMAPPort: i.IMAPPort, POP3Port: i.POP3Port, LMTPPort: i.LMTPPort, MupdatePort: i.MupdatePort}
	return i, nil
}

// StopDir stops the Cyrus instance in dir and every process of it, as
// Stop does, without needing the Instance; its data stay. Stopping a
// stopped instance does nothing.
func StopDir(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	return stopDir(dir, 0)
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

// newInstance prepares a fresh instance directory below baseDir; nothing
// runs yet, and on error nothing is left behind.
func newInstance(role string, opt Options, logf func(string, ...any)) (*Instance, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	reapOrphans(logf)
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
	var i *Instance
	if err == nil {
		i, err = prepare(dir, role, opt, logf)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("cyrustest: %w", err)
	}
	return i, nil
}

func checkRole(role string) error {
	switch role {
	case RoleMupdateMaster, RoleBackend, RoleFrontend:
		return nil
	}
	return fmt.Errorf("cyrustest: unknown role %q", role)
}

// prepare checks the options and describes the instance; nothing is
// written yet.
func prepare(dir, role string, opt Options, logf func(string, ...any)) (*Instance, error) {
	if err := checkRole(role); err != nil {
		return nil, err
	}
	if len(dir) > maxDirLen {
		return nil, fmt.Errorf("cyrustest: %s is longer than %d characters, too long for Cyrus's unix sockets", dir, maxDirLen)
	}
	if opt.Addr == "" || opt.Addr == "localhost" {
		opt.Addr = "127.0.0.1"
	}
	if opt.Name == "" {
		opt.Name = filepath.Base(dir)
	}
	if err := opt.check(role); err != nil {
		return nil, err
	}
	i := &Instance{Role: role, Dir: dir, Name: opt.Name, Addr: opt.Addr, Master: opt.Master,
		IMAPPort: opt.IMAPPort, POP3Port: opt.POP3Port, LMTPPort: opt.LMTPPort,
		MupdatePort: opt.MupdatePort, ServerName: serverName(role, opt), opt: opt, logf: logf}
	if role != RoleMupdateMaster {
		i.LMTPSocket = filepath.Join(dir, "conf", "socket", "lmtp")
	}
	if role == RoleFrontend && opt.MupdatePort == 0 {
		i.MupdateSocket = filepath.Join(dir, "conf", "socket", "mupdate")
	}
	if role == RoleMupdateMaster {
		i.Master = ""
	}
	return i, nil
}

// start writes the instance's configuration and users, runs its master
// and waits until it answers.
func (i *Instance) start() error {
	// From here on something may run, even if start fails half-way.
	i.mu.Lock()
	i.stopped = false
	i.mu.Unlock()
	if alive := instancePIDs(i.Dir, 0); len(alive) > 0 {
		return fmt.Errorf("cyrustest: Cyrus processes %v of %s still run", alive, i.Dir)
	}
	ports := []int{i.IMAPPort, i.POP3Port, i.LMTPPort, i.MupdatePort}
	if err := bindable(i.Addr, slices.DeleteFunc(ports, func(p int) bool { return p == 0 })); err != nil {
		return err
	}
	if err := i.layout(); err != nil {
		return err
	}
	for _, u := range [][2]string{{AdminUser, AdminPass}, {ProxyUser, ProxyPass}, {MupdateUser, MupdatePass}} {
		if err := i.saslUser(u[0], u[1]); err != nil {
			return err
		}
	}
	if err := os.WriteFile(i.logFile(), nil, 0o640); err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	shim, err := i.installShim()
	if err != nil {
		i.logf("%v; Cyrus logs of %s go to the system log", err, i.Dir)
	}
	if err := i.chown(); err != nil {
		return err
	}
	if err := i.runMaster(shim); err != nil {
		return err
	}
	if err := i.waitReady(); err != nil {
		return err
	}
	i.Env = i.describe(shim != "")
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(i.Env)) {
		fmt.Fprintf(&b, "%s=%s\n", k, i.Env[k])
	}
	if err := os.WriteFile(filepath.Join(i.Dir, envFile), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	return nil
}

func (i *Instance) describe(ownLog bool) map[string]string {
	port := func(p int) string {
		if p == 0 {
			return ""
		}
		return strconv.Itoa(p)
	}
	syslog := ""
	if ownLog {
		syslog = i.logFile()
	}
	return map[string]string{
		"ROLE": i.Role, "NAME": i.Name, "DIR": i.Dir, "ADDR": i.Addr,
		"SERVERNAME": i.ServerName, "MASTER": i.Master,
		"IMAP_PORT": port(i.IMAPPort), "POP3_PORT": port(i.POP3Port),
		"LMTP_PORT": port(i.LMTPPort), "MUPDATE_PORT": port(i.MupdatePort),
		"LMTP_SOCKET": i.LMTPSocket, "MUPDATE_SOCKET": i.MupdateSocket,
		"IMAPD_CONF": i.conf(), "CYRUS_CONF": i.masterConf(),
		"SASLDB": filepath.Join(i.Dir, "sasldb2"), "SYSLOG": syslog, "MASTER_LOG": i.masterLog(),
		"ADMIN_USER": AdminUser, "ADMIN_PASS": AdminPass, "PROXY_USER": ProxyUser,
		"PROXY_PASS": ProxyPass, "MUPDATE_USER": MupdateUser, "MUPDATE_PASS": MupdatePass,
		"MASTER_PID": strconv.Itoa(i.MasterPID),
	}
}

// chown gives the instance's files to user cyrus, which its services run
// as; DIR/lib stays root's (see installShim), DIR itself stays readable.
func (i *Instance) chown() error {
	id, err := cyrusIDs()
	if err != nil {
		return err
	}
	lib := filepath.Join(i.Dir, "lib")
	err = filepath.WalkDir(i.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == lib {
			return fs.SkipDir
		}
		if path == i.Dir || d.Name() == ownerFile || d.Name() == envFile {
			return nil
		}
		return os.Lchown(path, id.uid, id.gid)
	})
	if err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	return nil
}

// traversable adds o+x to the ancestors of dir that keep user cyrus out
// (t.TempDir() parents are 0700), saying so through logf.
func traversable(dir string, logf func(string, ...any)) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("cyrustest: %w", err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("cyrustest: %w", err)
			}
			logf("cyrustest: added o+x to %s so that user cyrus reaches %s", d, dir)
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// saslUser creates or updates a user in the instance's sasldb, in the realm
// Cyrus asks SASL for: its servername.
func (i *Instance) saslUser(user, pass string) error {
	db := filepath.Join(i.Dir, "sasldb2")
	cmd := exec.Command("saslpasswd2", "-p", "-c", "-f", db, "-u", i.ServerName, user)
	cmd.Stdin = strings.NewReader(pass)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cyrustest: saslpasswd2 %s: %w\n%s", user, err, out)
	}
	id, err := cyrusIDs()
	if err == nil {
		err = os.Chown(db, id.uid, id.gid)
	}
	if err == nil {
		err = os.Chmod(db, 0o640)
	}
	if err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	return nil
}

// Stop stops the instance and every process of it: SIGTERM to its master,
// SIGKILL to what is left after 15 s. Its data stay until the test's
// cleanup. Calling Stop again is a no-op.
func (i *Instance) Stop() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.stopped {
		return nil
	}
	if err := stopDir(i.Dir, i.MasterPID); err != nil {
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
	if err := i.SetUser(user, pass, inbox); err != nil {
		t.Fatal(err)
	}
}

// SetUser is AddUser for programs without testing.TB.
func (i *Instance) SetUser(user, pass string, inbox bool) error {
	if err := i.saslUser(user, pass); err != nil {
		return err
	}
	if !inbox {
		return nil
	}
	if i.Role != RoleBackend {
		return fmt.Errorf("cyrustest: only a backend has INBOXes, not a %s", i.Role)
	}
	c, err := OpenIMAP(i.IMAPAddr(), AdminUser, AdminPass)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, _, err := c.Cmd("CREATE %s", quote("user."+user)); err != nil &&
		!strings.Contains(strings.ToLower(err.Error()), "exists") {
		return err
	}
	return nil
}

// Sync makes a frontend's mupdate slave catch up with the master now,
// instead of within the master's 5 s streaming interval.
func (i *Instance) Sync(t testing.TB) {
	t.Helper()
	if err := i.SyncNow(); err != nil {
		t.Fatal(err)
	}
}

// SyncNow is Sync for programs without testing.TB. It uses Cyrus's own
// kick socket: the slave answers "ok" after a NOOP round trip to the
// master, so by then it has everything the master had.
func (i *Instance) SyncNow() error {
	sock := filepath.Join(i.Dir, "conf", "socket", "mupdate.target")
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return fmt.Errorf("cyrustest: sync %s (not a running frontend?): %w", i.Dir, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	b := make([]byte, 2)
	if _, err := c.Read(b); err != nil || string(b) != "ok" {
		return fmt.Errorf("cyrustest: the mupdate slave of %s answered %q to the kick: %v", i.Dir, b, err)
	}
	return nil
}

// Tool runs a Cyrus tool from /usr/lib/cyrus/bin with the instance's
// configuration, e.g. Tool(t, "ctl_mboxlist", "-d"), and returns its stdout.
func (i *Instance) Tool(t testing.TB, tool string, args ...string) string {
	t.Helper()
	out, err := i.RunTool(tool, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// RunTool is Tool for programs without testing.TB. Started as root, the
// Cyrus tools switch to user cyrus themselves.
func (i *Instance) RunTool(tool string, args ...string) (string, error) {
	if strings.ContainsAny(tool, "/.") {
		return "", fmt.Errorf("cyrustest: %q is not a Cyrus tool name", tool)
	}
	cmd := exec.Command(filepath.Join(cyrusBin, tool), append([]string{"-C", i.conf()}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	if shims, _ := filepath.Glob(filepath.Join(i.Dir, "lib", "syslog-*.so")); len(shims) == 1 {
		cmd.Env = append(cmd.Env, "LD_PRELOAD="+shims[0], shimEnv+"="+i.logFile())
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("cyrustest: %s %s: %w\n%s", tool, strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.String(), nil
}

// Syslog returns everything the instance's processes have logged so far
// ("" if nothing could be read).
func (i *Instance) Syslog() string {
	b, _ := os.ReadFile(i.logFile())
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

// logTail returns the last n lines of each of the instance's logs.
func (i *Instance) logTail(n int) string {
	var b strings.Builder
	for _, path := range []string{i.logFile(), i.masterLog()} {
		if log, _ := os.ReadFile(path); len(bytes.TrimSpace(log)) > 0 {
			fmt.Fprintf(&b, "cyrustest: last lines of %s:\n%s\n", path, tail(string(log), n))
		}
	}
	return b.String()
}

// cleanup is the t.Cleanup of Start. A directory whose processes could not
// be stopped is kept: without it nobody could find and stop them.
func (i *Instance) cleanup(t testing.TB) {
	err := i.Stop()
	if err != nil || t.Failed() {
		if logs := i.logTail(tailLines); logs != "" {
			t.Log(logs)
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

// ownerID identifies this process: PID plus PID namespace, so a directory
// made by a process in another namespace is never taken for an orphan.
func ownerID() string {
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return fmt.Sprintf("%d %s\n", os.Getpid(), ns)
}

// reapOrphans stops and removes instance directories whose test process is
// gone: t.Cleanup does not run when a test binary is killed or panics on
// -timeout, and the Cyrus master outlives it.
func reapOrphans(logf func(string, ...any)) {
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
		if err := stopDir(d, 0); err != nil {
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
