package cyrustest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	// stopTimeout is how long Stop lets Cyrus end on SIGTERM before it
	// kills what is left; killTimeout how long it then waits for that.
	stopTimeout = 15 * time.Second
	killTimeout = 5 * time.Second
	// pollEvery is how often start and stop look again.
	pollEvery = 50 * time.Millisecond
)

// runMaster starts the Cyrus master in the foreground of a new session, so
// its process group holds every service it runs, and a terminal's Ctrl-C
// meant for the Go program does not end it before the cleanup can.
func (i *Instance) runMaster(shim string) error {
	logf, err := os.OpenFile(i.masterLog(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("cyrustest: %w", err)
	}
	defer logf.Close()
	_ = os.Remove(i.pidFile())
	cmd := exec.Command(filepath.Join(cyrusBin, "master"), "-C", i.conf(), "-M", i.masterConf(),
		"-p", i.pidFile(), "-L", i.masterLog())
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "TMPDIR=" + filepath.Join(i.Dir, "tmp")}
	if shim != "" {
		cmd.Env = append(cmd.Env, "LD_PRELOAD="+shim, shimEnv+"="+i.logFile())
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cyrustest: starting the Cyrus master: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // reaps it; how it ended is in its logs
		close(exited)
	}()
	i.MasterPID = cmd.Process.Pid
	i.exited = exited
	return nil
}

// listener is one socket the instance must answer on before it counts as
// started.
type listener struct {
	network, addr, proto string
}

var greetings = map[string]struct{ greeting, bye string }{
	"imap":    {"* OK", "x LOGOUT\r\n"},
	"pop3":    {"+OK", "QUIT\r\n"},
	"lmtp":    {"220", "QUIT\r\n"},
	"mupdate": {"* ", "x LOGOUT\r\n"},
}

func (i *Instance) listeners() []listener {
	o := i.opt
	tcp := func(port int, proto string) listener {
		return listener{"tcp", net.JoinHostPort(o.Addr, strconv.Itoa(port)), proto}
	}
	if i.Role == RoleMupdateMaster {
		return []listener{tcp(o.MupdatePort, "mupdate")}
	}
	ls := []listener{tcp(o.IMAPPort, "imap")}
	if o.POP3Port != 0 {
		ls = append(ls, tcp(o.POP3Port, "pop3"))
	}
	if o.LMTPPort != 0 {
		ls = append(ls, tcp(o.LMTPPort, "lmtp"))
	}
	ls = append(ls, listener{"unix", i.LMTPSocket, "lmtp"})
	// A frontend's slave accepts connections only once it has loaded the
	// master's list, which is what makes the frontend usable.
	if i.Role == RoleFrontend {
		if o.MupdatePort != 0 {
			ls = append(ls, tcp(o.MupdatePort, "mupdate"))
		} else {
			ls = append(ls, listener{"unix", i.MupdateSocket, "mupdate"})
		}
	}
	return ls
}

// waitReady returns once every listener greets, failing early when the
// master dies or logs that it cannot open a listener. A TCP listener
// counts only when the master itself holds it, so a foreign process on the
// same port is never taken for the instance.
func (i *Instance) waitReady() error {
	timeout := i.opt.ReadyTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	pending := i.listeners()
	var last error
	for {
		if !i.masterAlive() {
			return fmt.Errorf("cyrustest: %s in %s: the Cyrus master (pid %d) exited", i.Role, i.Dir, i.MasterPID)
		}
		if line := i.bindError(); line != "" {
			return fmt.Errorf("cyrustest: %s in %s cannot open a listener: %s", i.Role, i.Dir, line)
		}
		pending = slices.DeleteFunc(pending, func(l listener) bool {
			err := i.probe(l)
			if err != nil {
				last = err
			}
			return err == nil
		})
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cyrustest: %s in %s not ready after %v: %w", i.Role, i.Dir, timeout, last)
		}
		time.Sleep(pollEvery)
	}
}

func (i *Instance) probe(l listener) error {
	if l.network == "tcp" {
		if err := i.holds(l.addr); err != nil {
			return err
		}
	}
	c, err := net.DialTimeout(l.network, l.addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s %s: %w", l.proto, l.addr, err)
	}
	g := greetings[l.proto]
	if !strings.HasPrefix(line, g.greeting) {
		return fmt.Errorf("%s %s greeted %q", l.proto, l.addr, line)
	}
	_, _ = c.Write([]byte(g.bye))
	return nil
}

// holds reports an error unless the master has a listening socket on the
// IPv4 address addr (Cyrus tests use loopback IPv4 only).
func (i *Instance) holds(addr string) error {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	ip := net.ParseIP(host).To4()
	mine := socketInodes(i.MasterPID)
	tcp, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return err
	}
	for _, row := range strings.Split(string(tcp), "\n")[1:] {
		f := strings.Fields(row)
		if len(f) < 10 || f[3] != "0A" { // 0A: LISTEN
			continue
		}
		h, pt, _ := strings.Cut(f[1], ":")
		raw, err1 := hex.DecodeString(h)
		n, err2 := strconv.ParseUint(pt, 16, 16)
		if err1 != nil || err2 != nil || len(raw) != 4 || int(n) != p {
			continue
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], binary.LittleEndian.Uint32(raw))
		if net.IP(a[:]).Equal(ip) && mine[f[9]] {
			return nil
		}
	}
	return fmt.Errorf("master %d does not listen on %s (yet)", i.MasterPID, addr)
}

// socketInodes returns the inodes of pid's sockets.
func socketInodes(pid int) map[string]bool {
	out := make(map[string]bool)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			out[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return out
}

// bindError returns the line in which Cyrus said it could not open a
// listener, or "".
func (i *Instance) bindError() string {
	for _, f := range []string{i.logFile(), i.masterLog()} {
		b, _ := os.ReadFile(f)
		for line := range strings.Lines(string(b)) {
			if strings.Contains(line, "unable to bind") || strings.Contains(line, "unable to listen") {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

func (i *Instance) masterAlive() bool {
	if i.exited != nil {
		select {
		case <-i.exited:
			return false
		default:
			return true
		}
	}
	return alive(i.MasterPID)
}

// procInfo is what stop needs to know of a process.
type procInfo struct {
	zombie bool
	pgrp   int
	args   []string
}

func readProc(pid int) (procInfo, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, false
	}
	// After "(comm) ": state ppid pgrp ...; comm may hold spaces and ')'.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 3 {
		return procInfo{}, false
	}
	pgrp, _ := strconv.Atoi(f[2])
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	return procInfo{zombie: f[0] == "Z", pgrp: pgrp, args: args}, true
}

func alive(pid int) bool {
	p, ok := readProc(pid)
	return ok && !p.zombie
}

// isMaster reports whether pid is the running Cyrus master of dir.
func isMaster(pid int, dir string) bool {
	p, ok := readProc(pid)
	if !ok || p.zombie || len(p.args) == 0 || p.args[0] != filepath.Join(cyrusBin, "master") {
		return false
	}
	j := slices.Index(p.args, "-M")
	return j >= 0 && j+1 < len(p.args) && p.args[j+1] == filepath.Join(dir, "etc", "cyrus.conf")
}

// instancePIDs lists the live Cyrus processes of dir: those in the process
// group of its master mpid (0: unknown) and those started with its
// configuration, which finds services whose master was killed.
func instancePIDs(dir string, mpid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	confs := []string{filepath.Join(dir, "etc", "imapd.conf"), filepath.Join(dir, "etc", "cyrus.conf")}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, ok := readProc(pid)
		if !ok || p.zombie || len(p.args) == 0 || !strings.HasPrefix(p.args[0], cyrusBin+"/") {
			continue
		}
		if (mpid != 0 && p.pgrp == mpid) || slices.ContainsFunc(p.args, func(a string) bool { return slices.Contains(confs, a) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// stopDir stops the Cyrus instance in dir whose master is mpid (0: read
// it from the pid file): SIGTERM to the master, which ends its services;
// what is left after stopTimeout gets SIGKILL. Without a master, its
// leftover services get the signals directly.
func stopDir(dir string, mpid int) error {
	if mpid == 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "run", "master.pid"))
		mpid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if mpid != 0 && !isMaster(mpid, dir) {
		mpid = 0 // gone, or the pid was reused by another process
	}
	signal := func(sig syscall.Signal) {
		if mpid != 0 {
			_ = syscall.Kill(mpid, sig)
		}
		for _, p := range instancePIDs(dir, mpid) {
			if p != mpid && (mpid == 0 || sig == syscall.SIGKILL) {
				_ = syscall.Kill(p, sig)
			}
		}
	}
	gone := func(within time.Duration) bool {
		for deadline := time.Now().Add(within); ; time.Sleep(pollEvery) {
			if len(instancePIDs(dir, mpid)) == 0 {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
		}
	}
	signal(syscall.SIGTERM)
	if !gone(stopTimeout) {
		signal(syscall.SIGKILL)
		if !gone(killTimeout) {
			return fmt.Errorf("cyrustest: processes %v of %s survive SIGKILL", instancePIDs(dir, mpid), dir)
		}
	}
	err := os.Remove(filepath.Join(dir, "run", "master.pid"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cyrustest: %w", err)
	}
	return nil
}
