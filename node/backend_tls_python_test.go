package node

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
)

// pythonTLSClient drives Python's imaplib, poplib and smtplib (LMTP)
// against a backend: plaintext refused before TLS, then STARTTLS, STLS and
// the implicit-TLS ports; it prints one line per step that worked.
const pythonTLSClient = `
import imaplib, poplib, smtplib, ssl, sys
host, imap, imaps, pop3, pop3s, lmtp = sys.argv[1], *map(int, sys.argv[2:7])
lmtp_user, lmtp_pass, rcpt = sys.argv[7:10]
ctx = ssl._create_unverified_context()

c = imaplib.IMAP4(host, imap)
assert "LOGINDISABLED" in c.capabilities, c.capabilities
try:
    c.login("alice", "alicepw")
    sys.exit("imap: LOGIN accepted before TLS")
except imaplib.IMAP4.error as e:
    assert "PRIVACYREQUIRED" in str(e), e
c.starttls(ssl_context=ctx)
assert "LOGINDISABLED" not in c.capabilities and "STARTTLS" not in c.capabilities, c.capabilities
c.login("alice", "alicepw")
c.select("INBOX")
c.logout()
print("imap starttls ok")

c = imaplib.IMAP4_SSL(host, imaps, ssl_context=ctx)
c.login("alice", "alicepw")
c.logout()
print("imaps ok")

p = poplib.POP3(host, pop3)
assert "STLS" in p.capa(), p.capa()
try:
    p.user("alice")
    sys.exit("pop3: USER accepted before TLS")
except poplib.error_proto:
    pass
p.stls(context=ctx)
p.user("alice")
p.pass_("alicepw")
p.quit()
print("pop3 stls ok")

p = poplib.POP3_SSL(host, pop3s, context=ctx)
p.user("alice")
p.pass_("alicepw")
p.quit()
print("pop3s ok")

l = smtplib.LMTP(host, lmtp)
l.ehlo()
assert l.has_extn("starttls") and not l.has_extn("auth"), l.esmtp_features
l.starttls(context=ctx)
l.ehlo()
l.login(lmtp_user, lmtp_pass)
l.sendmail("a@example.com", [rcpt], "Subject: python\r\n\r\nhi\r\n")
l.quit()
print("lmtp starttls ok")
`

// TestBackendTLSPython: a second, foreign client (Python's standard
// library) over every TLS path of the default node.
func TestBackendTLSPython(t *testing.T) {
	n := tlsBackend(t, func(c *Config) { c.LMTPRequireAuth = true })
	admin := imapsLogin(t, n.IMAPSAddr(), "admin", "secret")
	if err := admin.Create("user.alice", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	runPythonTLSClient(t, n, "proxy", "proxypw", "alice@be.test")
}

// TestFrontendTLSPython: the same client over every TLS path of a
// frontend (IMAP, POP3 and LMTP STARTTLS, imaps, pop3s), in front of a
// backend.
func TestFrontendTLSPython(t *testing.T) {
	m := clusterNode(t, "master.test", []Role{RoleMaster}, "")
	be := clusterNode(t, "be1.test", []Role{RoleBackend}, "", m.GossipAddr())
	admin := imapLogin(t, be.IMAPAddr(), "admin", "secret")
	waitFor(t, "CREATE user.alice", func() bool { return admin.Create("user.alice", nil).Wait() == nil })
	fe := frontendNode(t, m.GossipAddr(), func(c *Config) {
		c.AllowPlaintext = false
		c.IMAPSListen, c.POP3SListen = "127.0.0.1:0", "127.0.0.1:0"
		c.LMTPRequireAuth = true
	})
	waitEntry(t, fe, "user.alice", activeAt("be1.test!default"))
	waitFor(t, "the frontend to see the backend", func() bool { return len(alive(fe)) == 3 })
	runPythonTLSClient(t, fe, "admin", "secret", "alice@fe.test")
}

// runPythonTLSClient runs pythonTLSClient against n's listeners; the LMTP
// step authenticates as lmtpUser and delivers to rcpt.
func runPythonTLSClient(t *testing.T, n *Node, lmtpUser, lmtpPass, rcpt string) {
	t.Helper()
	py := cyrustest.RequireTool(t, "python3", "python3")
	host, _, _ := net.SplitHostPort(n.IMAPAddr())
	args := []string{"-c", pythonTLSClient, host}
	for _, a := range []string{n.IMAPAddr(), n.IMAPSAddr(), n.POP3Addr(), n.POP3SAddr(), n.LMTPAddr()} {
		_, port, _ := net.SplitHostPort(a)
		args = append(args, port)
	}
	args = append(args, lmtpUser, lmtpPass, rcpt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("python client: %v\n%s", err, out)
	}
	for _, step := range []string{"imap starttls ok", "imaps ok", "pop3 stls ok", "pop3s ok", "lmtp starttls ok"} {
		if !strings.Contains(string(out), step) {
			t.Errorf("python client: no %q in\n%s", step, out)
		}
	}
}
