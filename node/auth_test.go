package node

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/saslauthdtest"
	"github.com/rookery/rookery/internal/slapdtest"
)

// logBuffer keeps a node's log for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// authNode starts a master+backend with IMAP, POP3 and LMTP on free
// ports, the backend test users, and the options in kv over them.
func authNode(t *testing.T, kv map[string]string) (*Node, *logBuffer) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ServerName = "auth.test"
	cfg.DataDir = t.TempDir()
	cfg.Roles = []Role{RoleMaster, RoleBackend}
	cfg.MUPDATEListen, cfg.IMAPListen, cfg.POP3Listen, cfg.LMTPListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.AdminListen = ""
	cfg.UsersFile = backendUsers(t)
	cfg.Admins = []string{"admin"}
	cfg.AllowPlaintext = true
	cfg.LMTPRequireAuth = true
	cfg.FailedLoginPause = 0
	cfg.ClientTimeout = 2 * time.Second
	if _, err := cfg.Apply(kv); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	n, err := Start(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, logs
}

// authConn is a plain-text protocol client with a deadline on each step.
type authConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialAuth(t *testing.T, addr string) *authConn {
	t.Helper()
	return dialAuthFrom(t, "", addr)
}

// dialAuthFrom connects from a loopback address of its own (src, e.g.
// "127.0.0.2"), as another client machine would.
func dialAuthFrom(t *testing.T, src, addr string) *authConn {
	t.Helper()
	var d net.Dialer
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	lc := &authConn{t: t, c: c, r: bufio.NewReader(c)}
	lc.line() // greeting
	return lc
}

func (lc *authConn) line() string {
	lc.t.Helper()
	lc.c.SetDeadline(time.Now().Add(10 * time.Second))
	l, err := lc.r.ReadString('\n')
	if err != nil {
		lc.t.Fatalf("reading: %v (got %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// ask sends a line and returns the reply line that starts with prefix
// (an IMAP tag) or, with prefix "", the next line.
func (lc *authConn) ask(line, prefix string) string {
	lc.t.Helper()
	lc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(lc.c, line+"\r\n"); err != nil {
		lc.t.Fatal(err)
	}
	for {
		if l := lc.line(); strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

func imapTry(t *testing.T, addr, user, pass string) string {
	t.Helper()
	return dialAuth(t, addr).ask(fmt.Sprintf("a LOGIN %q %q", user, pass), "a ")
}

func pop3Try(t *testing.T, addr, user, pass string) string {
	t.Helper()
	c := dialAuth(t, addr)
	c.ask("USER "+user, "")
	return c.ask("PASS "+pass, "")
}

func lmtpTry(t *testing.T, addr, user, pass string) string {
	t.Helper()
	c := dialAuth(t, addr)
	c.ask("LHLO test", "250 ")
	return c.ask("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)), "")
}

func wantPrefix(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.HasPrefix(got, want) {
		t.Errorf("%s: got %q, want %q...", what, got, want)
	}
}

// TestSaslauthdLogins: with sasl_pwcheck_method: saslauthd, logins are
// decided by a real saslauthd; once it is gone they are refused as
// unavailable and logged as its failure, not as a wrong password.
func TestSaslauthdLogins(t *testing.T) {
	sock, stop := saslauthdtest.Start(t, map[string]string{"carol": "from saslauthd", "admin": "sasl admin"})
	n, logs := authNode(t, map[string]string{"sasl_pwcheck_method": "saslauthd", "sasl_saslauthd_path": sock})

	wantPrefix(t, "IMAP right password", imapTry(t, n.IMAPAddr(), "carol", "from saslauthd"), "a OK")
	wantPrefix(t, "IMAP wrong password", imapTry(t, n.IMAPAddr(), "carol", "from sasl"), "a NO [AUTHENTICATIONFAILED]")
	wantPrefix(t, "IMAP users-file user", imapTry(t, n.IMAPAddr(), "alice", "alicepw"), "a NO [AUTHENTICATIONFAILED]")
	wantPrefix(t, "POP3 right password", pop3Try(t, n.POP3Addr(), "carol", "from saslauthd"), "")
	wantPrefix(t, "POP3 wrong password", pop3Try(t, n.POP3Addr(), "carol", "x"), "-ERR [AUTH]")
	wantPrefix(t, "LMTP admin", lmtpTry(t, n.LMTPAddr(), "admin", "sasl admin"), "235 ")
	if strings.Contains(logs.String(), "unavailable") {
		t.Errorf("unavailability logged while saslauthd ran:\n%s", logs)
	}

	stop()
	wantPrefix(t, "IMAP, saslauthd down", imapTry(t, n.IMAPAddr(), "carol", "from saslauthd"), "a NO [UNAVAILABLE]")
	wantPrefix(t, "POP3, saslauthd down", pop3Try(t, n.POP3Addr(), "carol", "from saslauthd"), "-ERR [SYS/TEMP]")
	wantPrefix(t, "LMTP, saslauthd down", lmtpTry(t, n.LMTPAddr(), "admin", "sasl admin"), "454 ")
	var warned int
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "password source unavailable") {
			warned++
			if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "saslauthd") {
				t.Errorf("log line %q: want a warning naming saslauthd", l)
			}
		}
	}
	if warned != 3 {
		t.Errorf("%d unavailability lines, want 3:\n%s", warned, logs)
	}
}

// TestLoginThrottle: failures on one listener count on the others; once
// tripped, even the right password is refused, and the log says why.
func TestLoginThrottle(t *testing.T) {
	n, logs := authNode(t, map[string]string{"login_throttle_failures": "3", "login_throttle_window": "300"})
	wantPrefix(t, "before", imapTry(t, n.IMAPAddr(), "alice", "alicepw"), "a OK")
	wantPrefix(t, "IMAP wrong 1", imapTry(t, n.IMAPAddr(), "alice", "x"), "a NO [AUTHENTICATIONFAILED]")
	wantPrefix(t, "POP3 wrong", pop3Try(t, n.POP3Addr(), "bob", "x"), "-ERR [AUTH]")
	if strings.Contains(logs.String(), "throttle tripped") {
		t.Fatalf("tripped early:\n%s", logs)
	}
	wantPrefix(t, "LMTP wrong", lmtpTry(t, n.LMTPAddr(), "admin", "x"), "535 ")
	wantPrefix(t, "IMAP right, throttled", imapTry(t, n.IMAPAddr(), "alice", "alicepw"), "a NO [AUTHENTICATIONFAILED]")
	wantPrefix(t, "POP3 right, throttled", pop3Try(t, n.POP3Addr(), "bob", "bobpw"), "-ERR [AUTH]")
	wantPrefix(t, "LMTP right, throttled", lmtpTry(t, n.LMTPAddr(), "admin", "secret"), "535 ")
	if !strings.Contains(logs.String(), "throttle tripped") || !strings.Contains(logs.String(), "remote=127.0.0.1") {
		t.Errorf("no throttle line naming the address:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "too many failed logins") {
		t.Errorf("refusals not logged as throttled:\n%s", logs)
	}
}

// TestLoginThrottleKnownAddress: a stranger failing on purpose for
// alice's name (from several addresses) blocks her name at new addresses,
// not at the one she logged in from before.
func TestLoginThrottleKnownAddress(t *testing.T) {
	n, _ := authNode(t, map[string]string{"login_throttle_failures": "3", "login_throttle_window": "300"})
	try := func(src, pass string) string {
		return dialAuthFrom(t, src, n.IMAPAddr()).ask(fmt.Sprintf("a LOGIN alice %q", pass), "a ")
	}
	wantPrefix(t, "alice at home", try("127.0.0.1", "alicepw"), "a OK")
	for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		wantPrefix(t, "stranger at "+src, try(src, "guess"), "a NO [AUTHENTICATIONFAILED]")
	}
	wantPrefix(t, "alice's name at a new address", try("127.0.0.5", "alicepw"), "a NO [AUTHENTICATIONFAILED]")
	wantPrefix(t, "alice at home after the stranger", try("127.0.0.1", "alicepw"), "a OK")
}

// TestSaslauthdFrontendLogins: a frontend asks saslauthd too, and says
// unavailable, not a wrong password, when it is gone.
func TestSaslauthdFrontendLogins(t *testing.T) {
	sock, stop := saslauthdtest.Start(t, map[string]string{"carol": "from saslauthd", "admin": "sasl admin"})
	n, logs := authNode(t, map[string]string{"roles": "master,frontend", "password_check": "saslauthd users", "sasl_saslauthd_path": sock})
	wantPrefix(t, "IMAP right password", imapTry(t, n.IMAPAddr(), "carol", "from saslauthd"), "a OK")
	wantPrefix(t, "IMAP users-file user", imapTry(t, n.IMAPAddr(), "alice", "alicepw"), "a OK")
	wantPrefix(t, "IMAP wrong password", imapTry(t, n.IMAPAddr(), "carol", "from sasl"), "a NO [AUTHENTICATIONFAILED]")
	// Past the password, carol has no INBOX to open.
	wantPrefix(t, "POP3 right password", pop3Try(t, n.POP3Addr(), "carol", "from saslauthd"), "-ERR [SYS/TEMP] Unable to open maildrop")
	wantPrefix(t, "POP3 wrong password", pop3Try(t, n.POP3Addr(), "carol", "x"), "-ERR [AUTH]")
	wantPrefix(t, "LMTP admin", lmtpTry(t, n.LMTPAddr(), "admin", "sasl admin"), "235 ")
	wantPrefix(t, "LMTP admin, wrong password", lmtpTry(t, n.LMTPAddr(), "admin", "x"), "535 ")

	stop()
	wantPrefix(t, "IMAP, saslauthd down", imapTry(t, n.IMAPAddr(), "carol", "from saslauthd"), "a NO [UNAVAILABLE]")
	wantPrefix(t, "POP3, saslauthd down", pop3Try(t, n.POP3Addr(), "carol", "from saslauthd"), "-ERR [SYS/TEMP] Authentication server unavailable")
	wantPrefix(t, "LMTP, saslauthd down", lmtpTry(t, n.LMTPAddr(), "admin", "sasl admin"), "454 ")
	if c := strings.Count(logs.String(), "password source unavailable"); c != 3 {
		t.Errorf("%d unavailability lines, want 3:\n%s", c, logs)
	}
}

// TestLDAPLogins: with password_check: ldap, logins bind to a real
// slapd; once it is gone they are refused as unavailable.
func TestLDAPLogins(t *testing.T) {
	uri, stop := slapdtest.Start(t, map[string]string{"carol": "from ldap"})
	n, logs := authNode(t, map[string]string{"password_check": "ldap users", "ldap_uri": uri,
		"ldap_base": slapdtest.Base, "ldap_filter": "(uid=%u)", "ldap_bind_dn": slapdtest.AdminDN, "ldap_password": slapdtest.AdminPassword})
	if len(n.cfg.ServerPasswords) != 0 {
		t.Errorf("ldap_password taken for a backend's password: %v", n.cfg.ServerPasswords)
	}
	wantPrefix(t, "IMAP right password", imapTry(t, n.IMAPAddr(), "carol", "from ldap"), "a OK")
	wantPrefix(t, "IMAP users-file user", imapTry(t, n.IMAPAddr(), "alice", "alicepw"), "a OK")
	wantPrefix(t, "IMAP wrong password", imapTry(t, n.IMAPAddr(), "carol", "from"), "a NO [AUTHENTICATIONFAILED]")
	wantPrefix(t, "POP3 wrong password", pop3Try(t, n.POP3Addr(), "carol", "x"), "-ERR [AUTH]")

	stop()
	wantPrefix(t, "IMAP, slapd down", imapTry(t, n.IMAPAddr(), "carol", "from ldap"), "a NO [UNAVAILABLE]")
	wantPrefix(t, "POP3, slapd down", pop3Try(t, n.POP3Addr(), "carol", "from ldap"), "-ERR [SYS/TEMP]")
	if c := strings.Count(logs.String(), "password source unavailable"); c != 2 || !strings.Contains(logs.String(), "ldap:") {
		t.Errorf("%d unavailability lines, want 2 naming ldap:\n%s", c, logs)
	}
}

// TestLoginThrottleExempt: an exempt address is not blocked by address,
// and a bad exemption is reported.
func TestLoginThrottleExempt(t *testing.T) {
	n, _ := authNode(t, map[string]string{"login_throttle_failures": "2", "login_throttle_exempt": "10.0.0.0/8, 127.0.0.1"})
	wantPrefix(t, "wrong 1", imapTry(t, n.IMAPAddr(), "alice", "x"), "a NO")
	wantPrefix(t, "wrong 2", pop3Try(t, n.POP3Addr(), "bob", "x"), "-ERR [AUTH]")
	wantPrefix(t, "another user, exempt address", imapTry(t, n.IMAPAddr(), "admin", "secret"), "a OK")
	wantPrefix(t, "wrong 3, alice", imapTry(t, n.IMAPAddr(), "alice", "y"), "a NO")
	wantPrefix(t, "alice herself is throttled", imapTry(t, n.IMAPAddr(), "alice", "alicepw"), "a NO")

	cfg := DefaultConfig()
	if _, err := cfg.Apply(map[string]string{"login_throttle_exempt": "10.0.0.0/8 webmail"}); err == nil || !strings.Contains(err.Error(), "webmail") {
		t.Errorf("bad exemption: %v", err)
	}
}
