package imapproxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain lets the test binary double as a helper process for
// BenchmarkIdleSessions (ROOKERY_HELPER=backend or clients), so that the
// proxy's memory is measured alone.
func TestMain(m *testing.M) {
	switch os.Getenv("ROOKERY_HELPER") {
	case "backend":
		fakeIMAPProcess()
	case "clients":
		clientsProcess()
	default:
		os.Exit(m.Run())
	}
}

// fakeBody is what the helper backend answers every FETCH with.
var fakeBody = []byte(strings.Repeat(strings.Repeat("x", 98)+"\r\n", 1<<20/100))

// fakeIMAPProcess serves a trivial IMAP backend until stdin closes; it
// prints its address first.
func fakeIMAPProcess() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println(ln.Addr())
	go func() {
		buf := make([]byte, 1)
		os.Stdin.Read(buf)
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			const caps = "IMAP4rev1 LITERAL+ AUTH=PLAIN SASL-IR IDLE UNSELECT"
			c.Write([]byte("* OK [CAPABILITY " + caps + "] ready\r\n"))
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				tag, cmd, _ := strings.Cut(strings.TrimSpace(l), " ")
				switch strings.ToUpper(strings.Fields(cmd + " x")[0]) {
				case "FETCH":
					c.Write([]byte("* 1 FETCH (BODY[] {" + strconv.Itoa(len(fakeBody)) + "}\r\n"))
					c.Write(fakeBody)
					c.Write([]byte(")\r\n" + tag + " OK done\r\n"))
				case "APPEND":
					n, _ := strconv.Atoi(strings.Trim(cmd[strings.LastIndexByte(cmd, '{'):], "{+}"))
					if !strings.HasSuffix(cmd, "+}") {
						c.Write([]byte("+ go ahead\r\n"))
					}
					if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
						return
					}
					r.ReadString('\n')
					c.Write([]byte(tag + " OK [APPENDUID 1 1] done\r\n"))
				case "SELECT":
					c.Write([]byte("* 0 EXISTS\r\n" + tag + " OK [READ-WRITE] done\r\n"))
				case "CAPABILITY":
					c.Write([]byte("* CAPABILITY " + caps + "\r\n" + tag + " OK done\r\n"))
				case "IDLE":
					c.Write([]byte("+ idling\r\n"))
					if _, err := r.ReadString('\n'); err != nil {
						return
					}
					c.Write([]byte(tag + " OK done\r\n"))
				case "LOGOUT":
					c.Write([]byte("* BYE\r\n" + tag + " OK bye\r\n"))
					return
				default:
					c.Write([]byte(tag + " OK done\r\n"))
				}
			}
		}()
	}
}

// clientsProcess opens ROOKERY_CLIENTS sessions to ROOKERY_PROXY, logs
// them in and, with ROOKERY_SELECT=1, selects INBOX; it prints "ready",
// then on each "check" line from stdin NOOPs a sample of them and prints
// "ok", and exits when stdin closes.
func clientsProcess() {
	n, _ := strconv.Atoi(os.Getenv("ROOKERY_CLIENTS"))
	script := "a LOGIN alice alicepw\r\n"
	last := "a "
	if os.Getenv("ROOKERY_SELECT") == "1" {
		script += "b SELECT INBOX\r\n"
		last = "b "
	}
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", os.Getenv("ROOKERY_PROXY"))
		if err != nil {
			fmt.Println("error", err)
			return
		}
		conns = append(conns, c)
		c.Write([]byte(script))
		r := bufio.NewReaderSize(c, 512)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				fmt.Println("error", err)
				return
			}
			if strings.HasPrefix(l, last) {
				if !strings.HasPrefix(l, last+"OK") {
					fmt.Println("error", strings.TrimSpace(l))
					return
				}
				break
			}
		}
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		for i, c := range conns {
			if i%max(1, n/100) != 0 {
				continue
			}
			c.Write([]byte("c NOOP\r\n"))
			l, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.HasPrefix(l, "c OK") {
				fmt.Println("error session", i, strings.TrimSpace(l), err)
				return
			}
		}
		fmt.Println("ok")
	}
}

// helper starts the test binary as a helper process and returns its
// first output line and a way to talk to it.
func helper(b testing.TB, env ...string) (first string, send func(string) string) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), env...)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stdin.Close(); cmd.Wait() })
	r := bufio.NewReader(out)
	read := func() string {
		l, err := r.ReadString('\n')
		if err != nil || strings.HasPrefix(l, "error") {
			b.Fatalf("helper %v: %q %v", env, l, err)
		}
		return strings.TrimSpace(l)
	}
	return read(), func(line string) string {
		io.WriteString(stdin, line+"\n")
		return read()
	}
}

// BenchmarkIdleSessions opens many logged-in sessions from another
// process, with a mailbox selected on a backend in a third one, and
// reports the proxy's memory per session. ROOKERY_IDLE_SESSIONS sets how
// many (default 1000); ROOKERY_SELECT=0 leaves them without a backend
// connection (one descriptor per session instead of two):
//
//	ROOKERY_IDLE_SESSIONS=10000 go test -run X -bench IdleSessions -benchtime 1x ./listeners/imapproxy
func BenchmarkIdleSessions(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("ROOKERY_IDLE_SESSIONS")); err == nil && v > 0 {
		n = v
	}
	sel := os.Getenv("ROOKERY_SELECT") != "0"
	perSession := uint64(1)
	if sel {
		perSession = 2
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if need := perSession*uint64(n) + 500; lim.Cur < need {
		lim.Cur = min(need, lim.Max)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
		if lim.Cur < need {
			b.Skipf("%d sessions need %d descriptors; the limit is %d", n, need, lim.Cur)
		}
	}
	backendAddr, _ := helper(b, "ROOKERY_HELPER=backend")
	addr := fakeMurder(b, map[string]string{"fake1": backendAddr})
	selectFlag := "ROOKERY_SELECT=0"
	if sel {
		selectFlag = "ROOKERY_SELECT=1"
	}
	for range b.N {
		before := inUse()
		start := time.Now()
		_, send := helper(b, "ROOKERY_HELPER=clients", "ROOKERY_PROXY="+addr,
			"ROOKERY_CLIENTS="+strconv.Itoa(n), selectFlag)
		opened := time.Since(start)
		after := inUse()
		b.ReportMetric(float64(after-before)/float64(n), "B/session")
		b.ReportMetric(float64(n)/opened.Seconds(), "sessions/s")
		if got := send("check"); got != "ok" {
			b.Fatalf("check: %q", got)
		}
	}
}

// inUse is the heap and stack memory in use after a collection.
func inUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}
