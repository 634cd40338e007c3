package mupdate

import (
	"bufio"
	"encoding/base64"
	"errors"
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
