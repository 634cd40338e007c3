package mupdate

import (
	"bufio"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/store"
)

// TestServerRefusesControlInNames: a name with a control byte is refused
// before it reaches the mailbox list (a CR LF in it would end a response
// in the client stream of every frontend that lists it), while the names
// Cyrus peers use pass, and one stored before the check can be removed.
func TestServerRefusesControlInNames(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var mu sync.Mutex
	var written []string
	srv := NewServer(ServerConfig{
		ServerName: "master", Mode: "(master)", Store: db,
		Login: func(_, authcid, password string) (string, error) {
			if authcid == "admin" && password == "secret" {
				return authcid, nil
			}
			return "", errors.New("bad password")
		},
		Write: func(op Op) func() error {
			mu.Lock()
			written = append(written, op.Cmd+" "+op.Name)
			mu.Unlock()
			return func() error { return nil }
		},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	cmd := func(tag, line string) string {
		t.Helper()
		if _, err := c.Write([]byte(tag + " " + line + "\r\n")); err != nil {
			t.Fatal(err)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("%s: %v", tag, err)
			}
			if strings.HasPrefix(l, tag+" ") {
				return strings.TrimRight(l, "\r\n")
			}
		}
	}
	cmd("A0", `AUTHENTICATE "PLAIN" "`+base64.StdEncoding.EncodeToString([]byte("\x00admin\x00secret"))+`"`)
	bad := "user.alice.x\r\n t9 OK fake \r\n * 99 EXISTS"
	lit := func(s string) string { return "{" + itoa(len(s)) + "+}\r\n" + s }
	for i, line := range []string{
		"ACTIVATE " + lit(bad) + ` "be1!default" "alice\tlrs\t"`,
		"RESERVE " + lit(bad) + ` "be1!default"`,
		"ACTIVATE " + lit("user.alice.a\x1bb") + ` "be1!default" ""`,
		"RESERVE " + lit("user.alice.\x7f") + ` "be1!default"`,
	} {
		tag := "B" + itoa(i)
		if got := cmd(tag, line); got != tag+` NO "invalid mailbox name"` {
			t.Errorf("%q: %q", line, got)
		}
	}
	good := []string{"example.com!user.alice", "user.alice.Sent Items", "user.bob^smith", "shared.caf&AOk-", "user.alice.\xe2\x98\xba"}
	for i, name := range good {
		tag := "C" + itoa(i)
		if got := cmd(tag, "ACTIVATE "+lit(name)+` "be1!default" "anyone\tlrs\t"`); got != tag+` OK "done"` {
			t.Errorf("ACTIVATE %q: %q", name, got)
		}
	}
	for i, line := range []string{"DEACTIVATE " + lit(bad) + ` "be1!default"`, "DELETE " + lit(bad)} {
		tag := "D" + itoa(i)
		if got := cmd(tag, line); got != tag+` OK "done"` {
			t.Errorf("%q: %q", line, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var want []string
	for _, n := range good {
		want = append(want, "ACTIVATE "+n)
	}
	want = append(want, "DEACTIVATE "+bad, "DELETE "+bad)
	if !slices.Equal(written, want) {
		t.Errorf("written %q\nwant %q", written, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestServerKeepsSlotsForPeers: connections that never authenticate fill
// at most their share of the server, a newcomer beyond it cutting the
// oldest short, and are closed after LoginTimeout however busy, so a
// murder peer, connected or reconnecting, still gets in.
func TestServerKeepsSlotsForPeers(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := NewServer(ServerConfig{
		ServerName: "master", Mode: "(master)", Store: db,
		MaxConns: 8, MaxUnauthenticated: 2, LoginTimeout: 500 * time.Millisecond,
		Login: func(_, authcid, password string) (string, error) {
			if authcid == "admin" && password == "secret" {
				return authcid, nil
			}
			return "", errors.New("bad password")
		},
		Write: func(Op) func() error { return func() error { return nil } },
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	// dial returns the connection and its reader after the greeting.
	dial := func() (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("greeting: %v", err)
			}
			if strings.HasPrefix(l, "* OK ") {
				return c, br
			}
		}
	}
	// say sends a command and returns the first line of the answer.
	say := func(c net.Conn, br *bufio.Reader, line string) string {
		t.Helper()
		if _, err := c.Write([]byte(line + "\r\n")); err != nil {
			t.Fatal(err)
		}
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return strings.TrimRight(l, "\r\n")
	}
	// last reads br to its end and returns the last line before it.
	last := func(br *bufio.Reader) string {
		t.Helper()
		b, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		lines := strings.Split(strings.TrimRight(string(b), "\r\n"), "\r\n")
		return lines[len(lines)-1]
	}
	auth := `AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00admin\x00secret")) + `"`
	peer, peerR := dial()
	if l := say(peer, peerR, "A0 "+auth); !strings.HasPrefix(l, "A0 OK") {
		t.Fatalf("AUTHENTICATE: %q", l)
	}
	_, firstR := dial()
	dial()
	// The share is full: a peer reconnecting gets in, pushing out the
	// oldest stranger, and authenticates.
	again, againR := dial()
	if l := last(firstR); l != `* BYE "login timeout"` {
		t.Fatalf("oldest stranger pushed out: %q", l)
	}
	if l := say(again, againR, "B0 "+auth); !strings.HasPrefix(l, "B0 OK") {
		t.Fatalf("AUTHENTICATE of the reconnecting peer: %q", l)
	}
	// A stranger that keeps busy is closed once LoginTimeout passes; the
	// peers, as old, are not.
	busy, busyR := dial()
	for i := 0; ; i++ {
		l := say(busy, busyR, "N NOOP")
		if l == `* BYE "login timeout"` {
			break
		}
		if !strings.HasPrefix(l, "N BAD") || i > 500 {
			t.Fatalf("stranger's NOOP %d: %q", i, l)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l := say(peer, peerR, "A1 NOOP"); !strings.HasPrefix(l, "A1 OK") {
		t.Fatalf("NOOP after the login timeout: %q", l)
	}
}
