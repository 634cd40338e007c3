package node

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testNode starts a master node on loopback port 0 with users
// admin:secret (admin) and bob:secret (not admin).
func testNode(t *testing.T, dir string, mutate ...func(*Config)) *Node {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("admin:{PLAIN}secret\nbob:{PLAIN}secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ServerName = "mupdate.test"
	cfg.DataDir = dir
	cfg.Roles = []Role{RoleMaster}
	cfg.MUPDATEListen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	cfg.POP3Listen = "127.0.0.1:0"
	cfg.LMTPListen = "127.0.0.1:0"
	cfg.UsersFile = users
	cfg.Admins = []string{"admin"}
	cfg.FailedLoginPause = 0
	cfg.LogRetain = 1000
	for _, m := range mutate {
		m(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := Start(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("ROOKERY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// runTranscript plays a transcript against addr. Lines are "Cn: bytes"
// (sent by connection n; "C:" is connection 1) or "Sn: bytes" (expected
// from the server, byte for byte); each gets CRLF appended. Escapes: \t,
// \0, \xHH, \\ and a trailing \nocrlf to suppress the CRLF. "Sn: <eof>" expects
// the server to close; "Cn: <close>" closes the client side; "# ..." is a
// comment. Connections open on first mention.
func runTranscript(t *testing.T, addr string, script string) {
	t.Helper()
	conns := map[string]*tconn{}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	get := func(n string) *tconn {
		c, ok := conns[n]
		if !ok {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			c = &tconn{Conn: nc, r: bufio.NewReader(nc)}
			conns[n] = c
		}
		return c
	}
	for i, line := range strings.Split(script, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		who, payload, ok := strings.Cut(line, ": ")
		if !ok && strings.HasSuffix(line, ":") {
			who, payload, ok = strings.TrimSuffix(line, ":"), "", true
		}
		if !ok || len(who) < 1 || (who[0] != 'C' && who[0] != 'S') {
			t.Fatalf("transcript line %d: bad line %q", i+1, line)
		}
		id := who[1:]
		if id == "" {
			id = "1"
		}
		c := get(id)
		data := unescape(payload)
		switch {
		case who[0] == 'C' && payload == "<close>":
			c.Close()
		case who[0] == 'C':
			if _, err := c.Write(data); err != nil {
				t.Fatalf("transcript line %d: write: %v", i+1, err)
			}
		case payload == "<eof>":
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if b, err := c.r.ReadByte(); err != io.EOF {
				t.Fatalf("transcript line %d: want EOF, got %q %v", i+1, b, err)
			}
		default:
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got := make([]byte, len(data))
			if _, err := io.ReadFull(c.r, got); err != nil || !bytes.Equal(got, data) {
				rest, _ := c.r.Peek(c.r.Buffered())
				t.Fatalf("transcript line %d (conn %s):\nwant %q\ngot  %q (err %v), then %q", i+1, id, data, got, err, rest)
			}
		}
	}
	// Nothing unexpected may be left unread.
	for id, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if b, err := c.r.Peek(1); err == nil {
			rest, _ := c.r.Peek(c.r.Buffered())
			t.Fatalf("conn %s: unexpected trailing bytes %q", id, append(b[:0:0], rest...))
		}
	}
}

type tconn struct {
	net.Conn
	r *bufio.Reader
}

func unescape(s string) []byte {
	crlf := true
	if strings.HasSuffix(s, `\nocrlf`) {
		s, crlf = strings.TrimSuffix(s, `\nocrlf`), false
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case 't':
				b.WriteByte('\t')
				i++
				continue
			case '0':
				b.WriteByte(0)
				i++
				continue
			case 'n':
				b.WriteByte('\n')
				i++
				continue
			case '\\':
				b.WriteByte('\\')
				i++
				continue
			case 'x':
				if v, err := strconv.ParseUint(s[i+2:min(i+4, len(s))], 16, 8); err == nil && i+4 <= len(s) {
					b.WriteByte(byte(v))
					i += 3
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	if crlf {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func greeting(conn string) string {
	return fmt.Sprintf("S%[1]s: * AUTH \"PLAIN\"\nS%[1]s: * STARTTLS\nS%[1]s: * PARTIAL-UPDATE\nS%[1]s: * X-ROOKERY-LOG\nS%[1]s: * OK MUPDATE \"mupdate.test\" \"Rookery\" \"%[2]s\" \"(master)\"\n", conn, Version)
}

// login is greeting plus a PLAIN login as admin:secret.
func login(conn string) string {
	return greeting(conn) + fmt.Sprintf("C%[1]s: A01 AUTHENTICATE \"PLAIN\" \"AGFkbWluAHNlY3JldA==\"\nS%[1]s: A01 OK \"Authenticated\"\n", conn)
}

// TestTranscripts plays every testdata/mupdate/*.txt against a fresh
// master. "{{login N}}" and "{{greeting N}}" expand to those exchanges.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/mupdate/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			script := expand(string(raw))
			n := testNode(t, t.TempDir())
			runTranscript(t, n.MUPDATEAddr(), script)
		})
	}
}

func expand(s string) string {
	var out strings.Builder
	for _, line := range strings.Split(s, "\n") {
		var conn string
		switch {
		case strings.HasPrefix(line, "{{login"):
			conn = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "{{login"), "}}"))
			out.WriteString(login(conn))
		case strings.HasPrefix(line, "{{greeting"):
			conn = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "{{greeting"), "}}"))
			out.WriteString(greeting(conn))
		default:
			out.WriteString(line + "\n")
		}
	}
	return out.String()
}
