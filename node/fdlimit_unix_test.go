//go:build unix

package node

import (
	"bufio"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileLimitAtStart: a node logs its descriptor limit at start, and
// warns when its IMAP cap allows more connections than it has
// descriptors for.
func TestFileLimitAtStart(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	_, logs := authNode(t, map[string]string{"imap_connections_max": "10"})
	if l := logs.String(); !strings.Contains(l, "file descriptor limit") || strings.Contains(l, "below") {
		t.Errorf("within the limit, the log says:\n%s", l)
	}
	over := strconv.FormatUint(min(lim.Cur, 1<<40), 10)
	_, logs = authNode(t, map[string]string{"imap_connections_max": over})
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "limit below what the connection caps need") ||
		!strings.Contains(l, "imap_connections_max="+over) {
		t.Errorf("over the limit, the log says:\n%s", l)
	}
}

// TestIMAPConnectionsMax: imap_connections_max caps the IMAP listener;
// the connection over it gets a BYE.
func TestIMAPConnectionsMax(t *testing.T) {
	n, _ := authNode(t, map[string]string{"imap_connections_max": "1"})
	first, err := net.Dial("tcp", n.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_ = first.SetDeadline(time.Now().Add(10 * time.Second))
	if l, err := bufio.NewReader(first).ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("first connection: %q %v", l, err)
	}
	second, err := net.Dial("tcp", n.IMAPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetDeadline(time.Now().Add(10 * time.Second))
	if l, err := bufio.NewReader(second).ReadString('\n'); err != nil || !strings.HasPrefix(l, "* BYE") {
		t.Errorf("second connection: %q %v", l, err)
	}
}
