package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// nodeProc is the node binary running, its log collected as it comes so
// that the node never blocks on a full pipe.
type nodeProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  []string
	next int // the first line wait has not looked at
	more chan struct{}
	eof  chan struct{}
}

func startNode(t *testing.T, args ...string) *nodeProc {
	t.Helper()
	p := &nodeProc{cmd: exec.Command(buildNode(t), args...), more: make(chan struct{}, 1), eof: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
	go func() {
		defer close(p.eof)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			select {
			case p.more <- struct{}{}:
			default:
			}
		}
	}()
	return p
}

// wait returns the first line after the last one wait returned that
// contains every one of wants.
func (p *nodeProc) wait(t *testing.T, wants ...string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		p.mu.Lock()
		for ; p.next < len(p.log); p.next++ {
			l := p.log[p.next]
			ok := true
			for _, w := range wants {
				ok = ok && strings.Contains(l, w)
			}
			if ok {
				p.next++
				p.mu.Unlock()
				return l
			}
		}
		p.mu.Unlock()
		select {
		case <-p.more:
		case <-p.eof:
			select {
			case <-p.more:
				continue
			default:
			}
			t.Fatalf("node exited (%v) before logging %q; log:\n%s", p.cmd.ProcessState, wants, p.logText())
		case <-timeout:
			t.Fatalf("no %q in the log:\n%s", wants, p.logText())
		}
	}
}

// rewind makes the next wait look at the whole log again, for a line
// that may come before one an earlier wait returned.
func (p *nodeProc) rewind() {
	p.mu.Lock()
	p.next = 0
	p.mu.Unlock()
}

func (p *nodeProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

func (p *nodeProc) signal(t *testing.T, s os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(s); err != nil {
		t.Fatal(err)
	}
}

// stop ends the node with SIGTERM and wants a clean exit.
func (p *nodeProc) stop(t *testing.T) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	p.wait(t, "node stopped")
	<-p.eof
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// imapDial opens an IMAP session with a deadline, so that a wedged node
// fails the test instead of hanging it.
func imapDial(addr string) (*imapclient.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c := imapclient.New(conn, nil)
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func imapLogin(addr, user, pass string) error {
	c, err := imapDial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		return err
	}
	return c.Logout().Wait()
}

// reloadConf writes a config for a default-role node on loopback ports,
// with the users file read only on SIGHUP.
func reloadConf(t *testing.T, dir, users, imap, mupdate string, extra ...string) string {
	conf := filepath.Join(dir, "imapd.conf")
	lines := []string{
		"servername: hup.test",
		"data: " + filepath.Join(dir, "data"),
		"users: " + users,
		"users_poll: 0",
		"admins: admin",
		"mupdate_listen: " + mupdate,
		"imap_listen: " + imap,
		"pop3_listen:",
		"lmtp_listen:",
		"admin_listen:",
		"failedloginpause: 0",
	}
	writeFile(t, conf, strings.Join(append(lines, extra...), "\n")+"\n")
	return conf
}

// TestSIGHUPReloads: SIGHUP reloads the users file (a user added logs in
// at once), names the config options that need a restart, applies a new
// log level, keeps the users and settings in effect when the files are
// bad, and never stops the node.
func TestSIGHUPReloads(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	writeFile(t, users, "admin:{PLAIN}adminpw\nalice:{PLAIN}alicepw\n")
	imap, mupdate := freeAddr(t), freeAddr(t)
	conf := reloadConf(t, dir, users, imap, mupdate, "imap_lissten: 127.0.0.1:1")
	p := startNode(t, "--config", conf)
	p.wait(t, "ignoring config options", "imap_lissten -> imap_listen")
	p.wait(t, "node started")
	if err := imapLogin(imap, "dave", "davepw"); err == nil {
		t.Fatal("dave logged in before being added")
	}

	writeFile(t, users, "admin:{PLAIN}adminpw\nalice:{PLAIN}alicepw\ndave:{PLAIN}davepw\n")
	p.signal(t, syscall.SIGHUP)
	p.wait(t, "users file reloaded", "users=3", "added=1", "removed=0", "changed=0")
	p.wait(t, "reload done", "restart_needed=0")
	if err := imapLogin(imap, "dave", "davepw"); err != nil {
		t.Errorf("dave after SIGHUP: %v", err)
	}

	reloadConf(t, dir, users, imap, mupdate, "timeout: 45", "log_level: debug")
	p.signal(t, syscall.SIGHUP)
	p.wait(t, "log level changed", "log_level=DEBUG")
	p.wait(t, "only after a restart", "options=[timeout]")
	p.wait(t, "reload done", "restart_needed=1")

	writeFile(t, users, "admin:{PLAIN}adminpw\ndave {PLAIN}davepw\n")
	p.signal(t, syscall.SIGHUP)
	p.wait(t, "level=ERROR", "users file problem", users+":2:")
	p.wait(t, "level=ERROR", "users file not reloaded", "users=3")
	if err := imapLogin(imap, "dave", "davepw"); err != nil {
		t.Errorf("dave after a bad users file: %v", err)
	}

	reloadConf(t, dir, users, imap, mupdate, "maxliteral: 5")
	p.signal(t, syscall.SIGHUP)
	p.wait(t, "level=ERROR", "config file problem", "maxliteral")
	p.wait(t, "config file not reloaded")
	p.stop(t)
}

// TestManySIGHUPsDropNoSession: 100 reloads, each changing the users
// file, while sessions run commands and new sessions log in; every
// command and every login succeeds.
func TestManySIGHUPsDropNoSession(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	base := "admin:{PLAIN}adminpw\nalice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\ncarol:{PLAIN}carolpw\n"
	writeFile(t, users, base)
	imap := freeAddr(t)
	p := startNode(t, "--config", reloadConf(t, dir, users, imap, freeAddr(t)))
	p.wait(t, "node started")
	admin, err := imapDial(imap)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Login("admin", "adminpw").Wait(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if err := admin.Create("user."+u, nil).Wait(); err != nil {
			t.Fatalf("CREATE user.%s: %v", u, err)
		}
	}

	stop := make(chan struct{})
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	var mu sync.Mutex
	commands, logins := 0, 0
	for _, u := range []string{"alice", "bob", "carol"} {
		c, err := imapDial(imap)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login(u, u+"pw").Wait(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					errs <- c.Logout().Wait()
					return
				default:
				}
				var err error
				switch n % 3 {
				case 0:
					err = c.Noop().Wait()
				case 1:
					_, err = c.Select("INBOX", nil).Wait()
				case 2:
					_, err = c.List("", "*", nil).Collect()
				}
				if err != nil {
					errs <- fmt.Errorf("%s, command %d: %w", u, n, err)
					return
				}
				mu.Lock()
				commands++
				mu.Unlock()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := imapLogin(imap, "alice", "alicepw"); err != nil {
				errs <- fmt.Errorf("a fresh login: %w", err)
				return
			}
			mu.Lock()
			logins++
			mu.Unlock()
		}
	}()

	const hups = 100
	for i := range hups {
		writeFile(t, users, base+fmt.Sprintf("temp%d:{PLAIN}x\n", i))
		p.signal(t, syscall.SIGHUP)
		p.wait(t, "users file reloaded", "users=5")
		p.wait(t, "reload done")
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d SIGHUPs; meanwhile %d commands on 3 sessions and %d fresh logins", hups, commands, logins)
	p.stop(t)
}
