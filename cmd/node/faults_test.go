package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/listeners/admin"
	"github.com/rookery/rookery/listeners/mupdate"
)

// stopWithin is how long a node may take to stop after SIGTERM, whatever
// its disk did.
const stopWithin = 20 * time.Second

// faultAddrs are a fault test node's listeners.
type faultAddrs struct{ imap, lmtp, mupdate, admin string }

// faultNode starts a node whose data folder is data, with alice and an
// admin in the users file, gossiping on its own.
func faultNode(t *testing.T, data, roles string, extra ...string) (*nodeProc, faultAddrs) {
	t.Helper()
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	writeFile(t, users, "admin:{PLAIN}adminpw\nalice:{PLAIN}alicepw\n")
	a := faultAddrs{imap: freeAddr(t), lmtp: freeAddr(t), mupdate: freeAddr(t), admin: freeAddr(t)}
	conf := filepath.Join(dir, "imapd.conf")
	writeFile(t, conf, strings.Join(append([]string{
		"servername: faults.test",
		"roles: " + roles,
		"data: " + data,
		"users: " + users,
		"users_poll: 0",
		"admins: admin",
		"mupdate_listen: " + a.mupdate,
		"imap_listen: " + a.imap,
		"lmtp_listen: " + a.lmtp,
		"pop3_listen:",
		"admin_listen: " + a.admin,
		"gossip_listen: " + freeAddr(t),
		"gossip_preset: local",
		"failedloginpause: 0",
	}, extra...), "\n")+"\n")
	p := startNode(t, "--config", conf)
	p.wait(t, "node started")
	return p, a
}

// stopBounded sends SIGTERM and wants the node gone within stopWithin.
func (p *nodeProc) stopBounded(t *testing.T) {
	t.Helper()
	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	select {
	case <-p.eof:
	case <-time.After(stopWithin):
		t.Fatalf("node still running %v after SIGTERM; log:\n%s", stopWithin, p.logText())
	}
	_ = p.cmd.Wait()
	t.Logf("stopped %v after SIGTERM (%v)", time.Since(start).Round(time.Millisecond), p.cmd.ProcessState)
}

// count is how many log lines hold every one of wants.
func (p *nodeProc) count(wants ...string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.log {
		ok := true
		for _, w := range wants {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			n++
		}
	}
	return n
}

func TestMasterDataFolderRemoved(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p, a := faultNode(t, data, "master")
	addr := a.mupdate
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := mupdate.Dial(ctx, addr, mupdate.ClientConfig{Username: "admin", Password: "adminpw", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Reserve("user.before", "be1!default"); err != nil {
		t.Fatalf("RESERVE before the fault: %v", err)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"user.after1", "user.after2", "user.after3"} {
		err := c.Reserve(name, "be1!default")
		var se *mupdate.ServerError
		if !errors.As(err, &se) {
			t.Fatalf("RESERVE %s with the data folder gone: %v, want a NO", name, err)
		}
		t.Logf("RESERVE %s: %v", name, err)
	}
	if err := c.Activate("user.before", "be1!default", "admin\tlrswipkxtecda\t"); err == nil {
		t.Fatal("ACTIVATE with the data folder gone was acknowledged")
	}
	p.wait(t, "level=ERROR", "fatal storage fault", "no such file or directory")
	// Pebble's own loop of failing flushes must not flood the log either.
	if n := p.count("fatal storage fault"); n != 1 {
		t.Errorf("%d fault lines, want one:\n%s", n, p.logText())
	}
	// The node says so on /status and in its gossip metadata.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st admin.Status
		err := fetch(a.admin, "/status", &st)
		gossiped := false
		for _, m := range st.Members {
			gossiped = gossiped || (m.Name == "faults.test" && m.Storage == "failed")
		}
		if err == nil && st.Storage == "failed" && strings.Contains(st.StorageError, "no such file") && gossiped {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status does not show the failed store: %+v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stopBounded(t)
	if n := len(strings.Split(p.logText(), "\n")); n > 40 {
		t.Errorf("%d log lines:\n%s", n, p.logText())
	}
}

// TestReplicaDataFolderRemoved: a replica cannot apply its master's
// changes once its folder is gone; it says so once, keeps serving its
// copy, and stops on SIGTERM.
func TestReplicaDataFolderRemoved(t *testing.T) {
	master, ma := faultNode(t, filepath.Join(t.TempDir(), "data"), "master")
	data := filepath.Join(t.TempDir(), "data")
	replica, ra := faultNode(t, data, "replica", "mupdate_server: "+ma.mupdate,
		"mupdate_authname: admin", "mupdate_password: adminpw", "mupdate_retry_delay: 1")
	// The first sync may be logged before "node started", which
	// faultNode waited for.
	replica.rewind()
	replica.wait(t, "replica synchronised with master")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := mupdate.Dial(ctx, ma.mupdate, mupdate.ClientConfig{Username: "admin", Password: "adminpw", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := c.Reserve(fmt.Sprintf("user.r%d", i), "be1!default"); err != nil {
			t.Fatal(err)
		}
	}
	replica.wait(t, "level=ERROR", `msg="store: fatal storage fault`)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st admin.Status
		err := fetch(ra.admin, "/status", &st)
		if err == nil && st.Storage == "failed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica /status does not show the failed store: %+v %v", st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := replica.count("fatal storage fault"); n != 1 {
		t.Errorf("%d fault lines, want one:\n%s", n, replica.logText())
	}
	replica.stopBounded(t)
	master.stopBounded(t)
}

func TestBackendDataFolderRemoved(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p, a := faultNode(t, data, "master,backend")
	imapAddr, lmtpAddr := a.imap, a.lmtp
	c := aliceWithInbox(t, imapAddr)
	if err := appendMessage(c); err != nil {
		t.Fatalf("APPEND before the fault: %v", err)
	}
	if code, line := lmtpDeliver(t, lmtpAddr, "alice"); code != 250 {
		t.Fatalf("LMTP before the fault: %s", line)
	}
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		err := appendMessage(c)
		wantNo(t, err, imap.ResponseCodeUnavailable)
		if code, line := lmtpDeliver(t, lmtpAddr, "alice"); code != 451 || !strings.Contains(line, "4.3.0") {
			t.Errorf("LMTP with the data folder gone: %q, want 451 4.3.0", line)
		}
	}
	// Reads of what is already open still work.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT after the fault: %v", err)
	}
	p.wait(t, "level=ERROR", `msg="mailstore: fatal storage fault`)
	// The mailbox list, in the same folder, fails too once its watcher
	// or a write sees it; each store says so once.
	for _, store := range []string{`msg="mailstore: fatal`, `msg="store: fatal`} {
		if n := p.count(store); n > 1 {
			t.Errorf("%d %s lines, want at most one:\n%s", n, store, p.logText())
		}
	}
	c.Close()
	p.stopBounded(t)
}

// TestFullDiskRefusesWritesUntilFreed fills a small file system holding
// the data folder: writes get NO / 452 meanwhile, and work again once
// space is freed, without a restart.
func TestFullDiskRefusesWritesUntilFreed(t *testing.T) {
	mnt := mountTmpfs(t, "160m")
	data := filepath.Join(mnt, "data")
	p, a := faultNode(t, data, "master,backend")
	imapAddr, lmtpAddr := a.imap, a.lmtp
	c := aliceWithInbox(t, imapAddr)
	defer c.Close()
	if err := appendMessage(c); err != nil {
		t.Fatalf("APPEND before the disk filled: %v", err)
	}
	filler := fill(t, mnt)
	for range 3 {
		wantNo(t, appendMessage(c), imap.ResponseCodeUnavailable)
		if code, line := lmtpDeliver(t, lmtpAddr, "alice"); code != 452 || !strings.Contains(line, "4.3.1") {
			t.Errorf("LMTP on a full disk: %q, want 452 4.3.1", line)
		}
	}
	if err := c.Create("user.alice.more", nil).Wait(); err == nil {
		t.Error("CREATE on a full disk succeeded")
	}
	p.wait(t, "level=WARN", "disk full")
	wantMetric(t, a.admin, `rookery_storage_state{store="mail"} 1`)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := appendMessage(c); err != nil {
		t.Fatalf("APPEND after space was freed: %v", err)
	}
	if code, line := lmtpDeliver(t, lmtpAddr, "alice"); code != 250 {
		t.Errorf("LMTP after space was freed: %q", line)
	}
	if err := c.Create("user.alice.more", nil).Wait(); err != nil {
		t.Errorf("CREATE after space was freed: %v", err)
	}
	p.wait(t, "disk space is back")
	wantMetric(t, a.admin, `rookery_storage_state{store="mail"} 0`)
	if n := p.count("fatal storage fault"); n != 0 {
		t.Errorf("a full disk failed a store:\n%s", p.logText())
	}
	// Full again, then SIGTERM: the stop must not wait on the disk.
	fill(t, mnt)
	p.stopBounded(t)
}

// wantMetric wants line in the node's /metrics.
func wantMetric(t *testing.T, addr, line string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), "\n"+line+"\n") {
		t.Errorf("/metrics lacks %q", line)
	}
}

// mountTmpfs mounts a tmpfs of size on a new folder, unmounted at the
// end of the test (after the node is gone).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs root): %v %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", mnt, err, out)
		}
	})
	return mnt
}

// fill writes a file in dir until the file system is full.
func fill(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			break
		}
	}
	return f.Name()
}

// aliceWithInbox makes user.alice as admin and returns alice's session.
func aliceWithInbox(t *testing.T, addr string) *imapclient.Client {
	t.Helper()
	admin, err := imapDial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Login("admin", "adminpw").Wait(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create("user.alice", nil).Wait(); err != nil {
		t.Fatalf("CREATE user.alice: %v", err)
	}
	c, err := imapDial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("alice", "alicepw").Wait(); err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c
}

func appendMessage(c *imapclient.Client) error {
	msg := "From: bob@example.org\r\nSubject: fault\r\n\r\nbody\r\n"
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write([]byte(msg)); err != nil {
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

// wantNo wants err to be a tagged NO with code.
func wantNo(t *testing.T, err error, code imap.ResponseCode) {
	t.Helper()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo || ie.Code != code {
		t.Errorf("got %v, want NO [%s]", err, code)
	}
}

// lmtpDeliver delivers one message to rcpt and returns the reply to its
// DATA.
func lmtpDeliver(t *testing.T, addr, rcpt string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() (int, string) {
		var last string
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("LMTP: %v", err)
			}
			last = strings.TrimRight(l, "\r\n")
			if len(last) < 4 || last[3] != '-' {
				break
			}
		}
		var code int
		fmt.Sscanf(last, "%d", &code)
		return code, last
	}
	reply()
	for _, cmd := range []string{"LHLO faults.test", "MAIL FROM:<bob@example.org>", "RCPT TO:<" + rcpt + ">", "DATA"} {
		fmt.Fprintf(conn, "%s\r\n", cmd)
		if code, line := reply(); code >= 400 {
			return code, line
		}
	}
	fmt.Fprint(conn, "From: bob@example.org\r\nSubject: lmtp\r\n\r\nbody\r\n.\r\n")
	return reply()
}
