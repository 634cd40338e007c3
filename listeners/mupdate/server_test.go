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
// at most their share of the server and are closed after LoginTimeout,
// so a murder peer that does authenticate still gets in.
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
	// dial returns the connection and its first line from the server.
	dial := func() (net.Conn, *bufio.Reader, string) {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("greeting: %v", err)
		}
		return c, br, strings.TrimRight(l, "\r\n")
	}
	greeted := func(br *bufio.Reader) {
		t.Helper()
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("greeting: %v", err)
			}
			if strings.HasPrefix(l, "* OK ") {
				return
			}
		}
	}
	peer, peerR, _ := dial()
	greeted(peerR)
	_, idleR, _ := dial()
	greeted(idleR)
	if _, _, l := dial(); l != `* BYE "Server Unable"` {
		t.Fatalf("third unauthenticated connection: %q", l)
	}
	auth := `A0 AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00admin\x00secret")) + "\"\r\n"
	if _, err := peer.Write([]byte(auth)); err != nil {
		t.Fatal(err)
	}
	if l, err := peerR.ReadString('\n'); err != nil || !strings.HasPrefix(l, "A0 OK") {
		t.Fatalf("AUTHENTICATE: %q %v", l, err)
	}
	// The peer no longer counts: a newcomer fits again.
	_, newR, l := dial()
	if strings.HasPrefix(l, "* BYE") {
		t.Fatalf("after the peer authenticated: %q", l)
	}
	greeted(newR)
	// The idle stranger is dropped once LoginTimeout passes; the
	// authenticated peer, as quiet, is not.
	start := time.Now()
	if _, err := io.ReadAll(idleR); err != nil {
		t.Fatalf("idle unauthenticated connection: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("idle unauthenticated connection lasted %v", d)
	}
	if _, err := peer.Write([]byte("A1 NOOP\r\n")); err != nil {
		t.Fatal(err)
	}
	if l, err := peerR.ReadString('\n'); err != nil || !strings.HasPrefix(l, "A1 OK") {
		t.Fatalf("NOOP after the login timeout: %q %v", l, err)
	}
}
