package main

import (
	"bufio"
	"bytes"
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
)

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "imapd.conf")
	os.WriteFile(conf, []byte("servername: a!b\nmupdate_connections_max: lots\nfailedloginpause: soon\nconfigdirectory: /var/lib/imap\n"), 0o600)
	bin := buildNode(t)
	cmd := exec.Command(bin, "--config", conf, "--roles", "master,frontdoor", "--data", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("want exit status 2, got %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"servername", "mupdate_connections_max", "failedloginpause", `unknown role "frontdoor"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestAllInOneStartsAndStopsCleanly runs the README's node command shape:
// default roles, a fresh data folder, then SIGTERM.
func TestAllInOneStartsAndStopsCleanly(t *testing.T) {
	bin := buildNode(t)
	data := filepath.Join(t.TempDir(), "data")
	addr := freeAddr(t)
	cmd := exec.Command(bin, "--data", data, "--mupdate", addr, "--imap", freeAddr(t), "--admin", freeAddr(t),
		"--pop3", freeAddr(t), "--lmtp", freeAddr(t))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitLine(t, lines, "node started")
	// The first start made a users file with an admin password.
	users, err := os.ReadFile(filepath.Join(data, "users"))
	if err != nil || !strings.Contains(string(users), "admin:{PLAIN}") {
		t.Fatalf("users file: %q %v", users, err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	greeting, _ := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if greeting != "* AUTH \"PLAIN\"\r\n" {
		t.Errorf("greeting starts %q", greeting)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	waitLine(t, lines, "node stopped")
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// buildNode builds the node binary once per test run.
func buildNode(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rookery-node-test")
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		bin := filepath.Join(dir, "node")
		out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		builtBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

var (
	buildOnce          sync.Once
	buildDir, builtBin string
	buildErr           error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitLine(t *testing.T, lines <-chan string, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("node exited before logging %q", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q in the log", want)
		}
	}
}
