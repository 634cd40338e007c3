// Package saslauthdtest runs a real saslauthd for tests, deciding
// passwords the test chose without touching the system's users or
// /etc/sasldb2.
package saslauthdtest

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
)

// imapLoginServer answers IMAP LOGIN for one user, which is what
// saslauthd's rimap mechanism asks a remote IMAP server; it lets a real
// saslauthd decide passwords the test chose without touching the
// system's users or /etc/sasldb2.
func imapLoginServer(t testing.TB, users map[string]string) (port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				io.WriteString(c, "* OK test server ready\r\n")
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
					cmd, args, _ := strings.Cut(rest, " ")
					switch strings.ToUpper(cmd) {
					case "LOGIN":
						u, args := imapString(args)
						p, _ := imapString(args)
						if pw, ok := users[u]; ok && u != "" && p == pw {
							io.WriteString(c, tag+" OK logged in\r\n")
						} else {
							io.WriteString(c, tag+" NO [AUTHENTICATIONFAILED] no\r\n")
						}
					case "LOGOUT":
						io.WriteString(c, "* BYE\r\n"+tag+" OK bye\r\n")
						return
					default:
						io.WriteString(c, tag+" BAD unknown\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// imapString reads an atom or a quoted string off the front of s.
func imapString(s string) (string, string) {
	s = strings.TrimPrefix(s, " ")
	if !strings.HasPrefix(s, `"`) {
		a, rest, _ := strings.Cut(s, " ")
		return a, rest
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
			if i < len(s) {
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), ""
}

// Start runs Debian's saslauthd in the foreground (failing, or skipping
// with ROOKERY_SKIP_CYRUS=1, when it is not installed) with its rimap mechanism asking an IMAP
// server that accepts users (name: password). It returns the socket and
// a stop function, also called at cleanup, that kills the daemon.
func Start(t testing.TB, users map[string]string) (sock string, stop func()) {
	t.Helper()
	port := imapLoginServer(t, users)
	bin := "/usr/sbin/saslauthd"
	cyrustest.RequireBinary(t, bin, "sasl2-bin")
	dir := t.TempDir()
	cmd := exec.Command(bin, "-a", "rimap", "-O", "127.0.0.1/"+strconv.Itoa(port), "-m", dir, "-n", "0", "-d")
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("saslauthd log:\n%s", b)
			}
		})
	}
	t.Cleanup(stop)
	sock = filepath.Join(dir, "mux")
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock, stop
		}
		if time.Now().After(deadline) {
			t.Fatal("saslauthd did not open its socket")
		}
		time.Sleep(20 * time.Millisecond) // polling for the socket, bounded above
	}
}
