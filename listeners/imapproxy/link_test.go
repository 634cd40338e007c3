//go:build linux

package imapproxy_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rookery/rookery/node"
)

// BenchmarkLink is BenchmarkRookery with the client on the far side of a
// network link of a set rate (ROOKERY_LINK, a tc rate, default 1gbit):
// the client runs in a network namespace joined to this one by a veth
// pair shaped with tbf both ways, while the frontend reaches the backend
// over loopback, as a murder's own network is faster than its clients'.
// It needs root (for the namespace), and skips without it:
//
//	ROOKERY_LINK=10gbit go test -run X -bench Link ./listeners/imapproxy
func BenchmarkLink(b *testing.B) {
	rate := os.Getenv("ROOKERY_LINK")
	if rate == "" {
		rate = "1gbit"
	}
	link := shapedLink(b, rate)

	m := startRookeryMaster(b)
	rb := m.rookeryBackend(b, "rb1", func(cfg *node.Config) { cfg.IMAPListen = net.JoinHostPort(link.host, "0") })
	login(b, rb.IMAPAddr(), "admin", "secret").ok("CREATE user.alice")
	m.waitEntry(b, "user.alice", "rb1")
	srv, _ := m.frontend(b)
	ln, err := net.Listen("tcp", net.JoinHostPort(link.host, "0"))
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln) // closed with srv when the benchmark ends

	const size = 1 << 20
	var msg strings.Builder
	writeBody(&msg, size)
	body := []byte(msg.String())
	login(b, rb.IMAPAddr(), "alice", "alicepw").ok("APPEND INBOX {%d+}\r\n%s", size, body)
	compare(b, body, []target{
		{"direct", rb.IMAPAddr(), link.dial},
		{"rookery", ln.Addr().String(), link.dial},
		{"relay", startRelay(b, link.host, rb.IMAPAddr()), link.dial},
	})
}

// link is a shaped veth pair between this network namespace (host) and
// a namespace of its own, from which dial connects.
type link struct {
	ns   string // name under /var/run/netns
	host string // this side's address
}

// shapedLink makes the namespace and the veth pair, shaped to rate in
// both directions, and removes them when the benchmark ends.
func shapedLink(t testing.TB, rate string) *link {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("BenchmarkLink needs root to make a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("BenchmarkLink needs ip and tc (iproute2)")
	}
	id := os.Getpid() % 250
	l := &link{ns: fmt.Sprintf("rookery-link-%d", os.Getpid()), host: fmt.Sprintf("10.213.%d.1", id)}
	vh, vc := fmt.Sprintf("rkh%d", os.Getpid()), fmt.Sprintf("rkc%d", os.Getpid())
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", l.ns)
	// Deleting the namespace deletes its end of the pair, and with it ours.
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", l.ns).Run() })
	run("ip", "link", "add", vh, "type", "veth", "peer", "name", vc, "netns", l.ns)
	run("ip", "addr", "add", l.host+"/30", "dev", vh)
	run("ip", "link", "set", vh, "up")
	run("ip", "-n", l.ns, "addr", "add", fmt.Sprintf("10.213.%d.2/30", id), "dev", vc)
	run("ip", "-n", l.ns, "link", "set", vc, "up")
	run("ip", "-n", l.ns, "link", "set", "lo", "up")
	// A burst of 1 MiB lets TCP's window grow past the rate's bucket.
	tbf := []string{"root", "tbf", "rate", rate, "burst", "1mb", "latency", "50ms"}
	run(append([]string{"tc", "qdisc", "add", "dev", vh}, tbf...)...)
	run(append([]string{"tc", "-n", l.ns, "qdisc", "add", "dev", vc}, tbf...)...)
	return l
}

// dial connects to addr from inside the link's namespace: the socket is
// made on a thread moved there, and keeps the namespace it was made in.
func (l *link) dial(addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		// The thread is not unlocked if it cannot be moved back: it then
		// ends with this goroutine instead of serving others.
		runtime.LockOSThread()
		here, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer here.Close()
		there, err := os.Open("/var/run/netns/" + l.ns)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer there.Close()
		if err := unix.Setns(int(there.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		conn, err := net.Dial("tcp", addr)
		if err := unix.Setns(int(here.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
		done <- result{conn, err}
	}()
	r := <-done
	return r.conn, r.err
}
