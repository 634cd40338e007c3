package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rookery/rookery/listeners/auth"
)

func checkLine(t *testing.T, line, pw string) {
	t.Helper()
	p := t.TempDir() + "/users"
	writeFile(t, p, "alice:"+line+"\n")
	u, err := auth.LoadUsers(p)
	if err != nil {
		t.Fatalf("users file with %q: %v", line, err)
	}
	if u.Verify("alice", pw) != nil || u.Verify("alice", pw+"x") == nil {
		t.Errorf("%q does not verify %q as it should", line, pw)
	}
}

func TestPasswdFromStdin(t *testing.T) {
	bin := buildNode(t)
	for _, scheme := range []string{"", "BLF-CRYPT", "SHA512-CRYPT"} {
		args := []string{"passwd"}
		if scheme != "" {
			args = append(args, "-scheme", scheme)
		}
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader("correct horse\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		line := strings.TrimSpace(string(out))
		if want := "{" + scheme + "}"; scheme != "" && !strings.HasPrefix(line, want) {
			t.Errorf("%v printed %q, want %s...", args, line, want)
		}
		checkLine(t, line, "correct horse")
	}
	cmd := exec.Command(bin, "passwd", "-scheme", "MD5")
	cmd.Stdin = strings.NewReader("x\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "MD5") {
		t.Errorf("-scheme MD5: %v %q", err, stderr.String())
	}
}

// openPTY returns a pseudo-terminal's controlling side and its terminal.
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

func TestPasswdFromTerminal(t *testing.T) {
	bin := buildNode(t)
	for _, c := range []struct {
		second string
		ok     bool
	}{{"tty secret", true}, {"tty secreT", false}} {
		ptm, pts := openPTY(t)
		cmd := exec.Command(bin, "passwd", "-scheme", "SHA256-CRYPT")
		cmd.Stdin, cmd.Stderr = pts, pts
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(ptm)
		// Answer each prompt only once it is shown, so the password is
		// typed while echo is off.
		var shown strings.Builder
		for _, answer := range []string{"tty secret", c.second} {
			ptm.SetReadDeadline(time.Now().Add(10 * time.Second))
			for !strings.HasSuffix(shown.String(), "password: ") {
				b, err := r.ReadByte()
				if err != nil {
					cmd.Process.Kill()
					cmd.Wait()
					t.Fatalf("waiting for a prompt: %v (got %q)", err, shown.String())
				}
				shown.WriteByte(b)
			}
			shown.Reset()
			ptm.Write([]byte(answer + "\n"))
		}
		err := cmd.Wait()
		if c.ok != (err == nil) {
			t.Fatalf("second %q: %v", c.second, err)
		}
		if c.ok {
			checkLine(t, strings.TrimSpace(stdout.String()), "tty secret")
		}
	}
}
