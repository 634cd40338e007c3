package cyrustest

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCyrusMurder starts a real mupdate master and a backend, creates a
// mailbox on the backend over IMAP and checks that the master knows it.
func TestCyrusMurder(t *testing.T) {
	Require(t)
	master := Start(t, RoleMupdateMaster, Options{MupdatePort: FreePort(t)})
	be := Start(t, RoleBackend, Options{Master: master.MupdateAddr(), IMAPPort: FreePort(t)})
	if be.ServerName == "" || be.Master != master.MupdateAddr() || be.MasterPID == 0 {
		t.Fatalf("backend env not parsed: %+v", be)
	}

	admin := DialIMAP(t, be.IMAPAddr(), AdminUser, AdminPass)
	if _, _, err := admin.Cmd("CREATE %s", "user.alice"); err != nil {
		t.Fatal(err)
	}
	if _, status, err := admin.Cmd("CREATE user.alice"); status != "NO" || err == nil {
		t.Fatalf("second CREATE: status %q, err %v; want NO and an error", status, err)
	}

	where := be.ServerName + "!default"
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		reply := mupdateFind(t, master.MupdateAddr(), "user.alice")
		if slices.ContainsFunc(reply, isMailboxAt(where)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("master does not know user.alice at %s; FIND replied %q", where, reply)
		}
	}
	if reply := mupdateFind(t, master.MupdateAddr(), "user.nobody"); len(reply) != 1 || !strings.HasPrefix(reply[0], "F OK") {
		t.Fatalf("master knows user.nobody: %q", reply)
	}

	// A user's own session, with a literal in each direction.
	be.AddUser(t, "alice", "alicepw", false)
	alice := DialIMAP(t, be.IMAPAddr(), "alice", "alicepw")
	msg := "Subject: cyrustest\r\n\r\nhello\r\n"
	if _, _, err := alice.Cmd("APPEND INBOX {%d+}\r\n%s", len(msg), msg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := alice.Cmd("SELECT INBOX"); err != nil {
		t.Fatal(err)
	}
	fetched, _, err := alice.Cmd("FETCH 1 BODY[]")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("{%d}\r\n%s)", len(msg), msg); len(fetched) != 1 || !strings.HasSuffix(fetched[0], want) {
		t.Fatalf("FETCH 1 BODY[] gave %q, want one line ending in %q", fetched, want)
	}

	if path := be.Tool(t, "mbpath", "user.alice"); !strings.HasPrefix(path, be.Dir+"/") {
		t.Fatalf("mbpath user.alice = %q, want a path below %s", path, be.Dir)
	}
	if !strings.Contains(be.Syslog(), "alice") {
		t.Fatalf("backend syslog does not mention alice:\n%s", be.Syslog())
	}

	// AddUser with inbox makes the INBOX, also when it exists already.
	be.AddUser(t, "bob", "bobpw", true)
	be.AddUser(t, "bob", "bobpw2", true)
	bob := DialIMAP(t, be.IMAPAddr(), "bob", "bobpw2")
	if _, _, err := bob.Cmd("SELECT INBOX"); err != nil {
		t.Fatal(err)
	}

	// Restart keeps the data.
	oldPID := be.MasterPID
	be.Restart(t)
	if be.MasterPID == oldPID {
		t.Fatalf("restart kept master pid %d", oldPID)
	}
	again := DialIMAP(t, be.IMAPAddr(), "alice", "alicepw")
	if lines, _, err := again.Cmd("STATUS INBOX (MESSAGES)"); err != nil || len(lines) != 1 || !strings.Contains(lines[0], "MESSAGES 1") {
		t.Fatalf("STATUS after restart: %q, %v", lines, err)
	}

	for _, inst := range []*Instance{be, master} {
		if !isMaster(inst.MasterPID, inst.Dir) {
			t.Fatalf("pid %d is not the master of running %s", inst.MasterPID, inst.Role)
		}
		if len(processes(inst)) == 0 {
			t.Fatalf("no processes found for running %s (pid %d)", inst.Role, inst.MasterPID)
		}
		if err := inst.Stop(); err != nil {
			t.Fatal(err)
		}
		if alive(inst.MasterPID) {
			t.Fatalf("master %d of stopped %s still runs", inst.MasterPID, inst.Role)
		}
		if left := processes(inst); len(left) > 0 {
			t.Fatalf("processes of stopped %s still running: %v", inst.Role, left)
		}
		if err := inst.Stop(); err != nil {
			t.Fatalf("second Stop: %v", err)
		}
	}
}

func isMailboxAt(where string) func(string) bool {
	return func(line string) bool { return strings.HasPrefix(line, "F MAILBOX") && strings.Contains(line, where) }
}

// mupdateFind asks a mupdate server for one mailbox in raw MUPDATE and
// returns the reply lines, each with its literals appended.
func mupdateFind(t *testing.T, addr, mailbox string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c := &IMAP{conn: conn, r: bufio.NewReader(conn)} // only for its literal-aware line reader
	readUntil := func(ends ...string) []string {
		var lines []string
		for {
			line, err := c.readResponse()
			if err != nil {
				t.Fatalf("mupdate %s: %v after %q", addr, err, lines)
			}
			lines = append(lines, line)
			for _, end := range ends {
				if strings.HasPrefix(line, end) {
					return lines
				}
			}
		}
	}
	readUntil("* OK") // the greeting ends with "* OK MUPDATE ..."
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + MupdateUser + "\x00" + MupdatePass))
	fmt.Fprintf(conn, "A AUTHENTICATE \"PLAIN\" \"%s\"\r\n", plain)
	if reply := readUntil("A OK", "A NO", "A BAD"); !strings.HasPrefix(reply[len(reply)-1], "A OK") {
		t.Fatalf("mupdate AUTHENTICATE: %q", reply)
	}
	fmt.Fprintf(conn, "F FIND \"%s\"\r\n", mailbox)
	return readUntil("F OK", "F NO", "F BAD")
}

// processes lists the live (non-zombie) processes of inst: those in its
// master's process group, which every Cyrus service of it joins, and those
// started with its configuration.
func processes(inst *Instance) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// after "(comm) ": state ppid pgrp ...
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if fields[2] == strconv.Itoa(inst.MasterPID) || strings.Contains(string(cmdline), inst.Dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// recorder is a testing.TB that records Skipf and Fatalf instead of
// ending the test.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Skipf(format string, a ...any)  { r.skipped = fmt.Sprintf(format, a...) }
func (r *recorder) Fatalf(format string, a ...any) { r.failed = fmt.Sprintf(format, a...) }

// TestRequire checks that missing Cyrus fails the first test that needs
// it, with the set-up command, skips the later ones, and skips them all
// with ROOKERY_SKIP_CYRUS=1.
func TestRequire(t *testing.T) {
	missing := errors.New("cyrustest: Cyrus not installed")
	defer requireFailed.Store(requireFailed.Load())

	requireFailed.Store(false)
	t.Setenv("ROOKERY_SKIP_CYRUS", "")
	r := &recorder{TB: t}
	require(r, missing)
	if r.failed == "" || r.skipped != "" || !strings.Contains(r.failed, SetupCommand) {
		t.Fatalf("first test: skipped %q, failed %q; want a failure naming %q", r.skipped, r.failed, SetupCommand)
	}
	r = &recorder{TB: t}
	require(r, missing)
	if r.skipped == "" || r.failed != "" {
		t.Fatalf("second test: skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}

	requireFailed.Store(false)
	t.Setenv("ROOKERY_SKIP_CYRUS", "1")
	r = &recorder{TB: t}
	require(r, missing)
	if r.skipped == "" || r.failed != "" {
		t.Fatalf("ROOKERY_SKIP_CYRUS=1: skipped %q, failed %q; want a skip", r.skipped, r.failed)
	}

	r = &recorder{TB: t}
	require(r, nil)
	if r.skipped != "" || r.failed != "" {
		t.Fatalf("Cyrus available: skipped %q, failed %q", r.skipped, r.failed)
	}
}

func TestFreeLoopbackAddr(t *testing.T) {
	p1, p2 := FreePort(t), FreePort(t)
	addr := FreeLoopbackAddr(t, p1, p2)
	ip := net.ParseIP(addr).To4()
	if ip == nil || ip[0] != 127 || ip[1] != 0 || ip[2] != 0 || ip[3] < 2 || ip[3] > 254 {
		t.Fatalf("FreeLoopbackAddr = %q, want 127.0.0.N with N in 2..254", addr)
	}
	for _, p := range []int{p1, p2} {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not bindable on %s: %v", p, addr, err)
		}
		l.Close()
	}

	// A port taken on every address is free on no 127.0.0.N.
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := &recorder{TB: t}
	if got := FreeLoopbackAddr(r, l.Addr().(*net.TCPAddr).Port); got != "" || r.failed == "" {
		t.Fatalf("FreeLoopbackAddr with a taken port = %q (failure %q), want a failure", got, r.failed)
	}
}

// TestIMAP runs the client against a scripted server: literals in replies,
// continuation requests, NO replies and a dropped connection.
func TestIMAP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	script := map[string]string{
		`c1 LOGIN "u" "p\"w\\"`: "c1 OK [CAPABILITY IMAP4rev1] done\r\n",
		"c2 FETCH 1 BODY[]":     "+ go ahead\r\n* 1 FETCH (BODY[] {7}\r\nab\r\n{1} FLAGS ({0}\r\n))\r\n* 1 EXISTS\r\nc2 OK done\r\n",
		"c3 CREATE x":           "c3 NO [ALREADYEXISTS] Mailbox already exists\r\n",
		"c4 NOOP":               "", // the server hangs up
	}
	got := make(chan []string, 1)
	go func() {
		var seen []string
		defer func() { got <- seen }()
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		fmt.Fprint(conn, "* OK test server ready\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\r\n")
			seen = append(seen, line)
			reply, ok := script[line]
			if !ok || reply == "" {
				return
			}
			fmt.Fprint(conn, reply)
		}
	}()

	c := DialIMAP(t, l.Addr().String(), "u", `p"w\`)
	untagged, status, err := c.Cmd("FETCH %d BODY[]", 1)
	want := []string{"* 1 FETCH (BODY[] {7}\r\nab\r\n{1} FLAGS ({0}\r\n))", "* 1 EXISTS"}
	if err != nil || status != "OK" || !slices.Equal(untagged, want) {
		t.Fatalf("FETCH: %q, %q, %v; want %q, OK, nil", untagged, status, err, want)
	}
	if _, status, err := c.Cmd("CREATE x"); status != "NO" || err == nil || !strings.Contains(err.Error(), "ALREADYEXISTS") {
		t.Fatalf("CREATE: status %q, err %v; want NO with the reply text", status, err)
	}
	if _, status, err := c.Cmd("NOOP"); status != "" || err == nil {
		t.Fatalf("NOOP on a dropped connection: status %q, err %v; want an error", status, err)
	}
	c.Close()
	c.Close()
	if seen := <-got; len(seen) != 4 {
		t.Fatalf("server saw %q", seen)
	}
}
