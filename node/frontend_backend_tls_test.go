package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/selfsigned"
)

// certFiles writes a certificate for host and its key.
func certFiles(t *testing.T, host string) (certFile, keyFile string) {
	t.Helper()
	c, err := selfsigned.New(host, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := selfsigned.PEM(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// TestFrontendToBackendTLS: a backend that takes no plaintext login
// without TLS, even over loopback; the frontend takes up its STARTTLS on
// IMAP, POP3 and LMTP, verified against tls_client_ca_file (which
// verifies its master's MUPDATE certificate too).
func TestFrontendToBackendTLS(t *testing.T) {
	// One certificate for every node, as from a site's own CA: the
	// frontend verifies its master and its backend against it.
	cert, key := certFiles(t, "127.0.0.1")
	m := testNode(t, t.TempDir(), func(c *Config) {
		c.ServerName = "master.test"
		c.UsersFile = backendUsers(t)
		c.Admins = []string{"admin", "mupdate"}
		c.GossipListen, c.GossipPreset = "127.0.0.1:0", "local"
		c.TLSCert, c.TLSKey = cert, key
	})
	be := testNode(t, t.TempDir(), func(c *Config) {
		c.ServerName = "be1.test"
		c.Roles = []Role{RoleBackend}
		c.UsersFile = backendUsers(t)
		c.Admins = []string{"admin", "mupdate"}
		c.ProxyServers = []string{"proxy"}
		c.MUPDATEAuthname, c.MUPDATEPassword = "mupdate", "mupdatepw"
		c.MUPDATEListen = ""
		c.IMAPListen, c.IMAPSListen = "127.0.0.1:0", "127.0.0.1:0"
		c.GossipListen, c.GossipPreset, c.Join = "127.0.0.1:0", "local", []string{m.GossipAddr()}
		c.TLSCert, c.TLSKey = cert, key
		c.AllowPlaintext, c.PlaintextLoopback = false, false
		c.LMTPRequireAuth = true
	})
	admin := imapsLogin(t, be.IMAPSAddr(), "admin", "secret")
	waitFor(t, "CREATE user.alice", func() bool { return admin.Create("user.alice", nil).Wait() == nil })

	fe := frontendNode(t, m.GossipAddr(), func(c *Config) { c.TLSClientCA = cert })
	waitEntry(t, fe, "user.alice", activeAt("be1.test!default"))
	waitFor(t, "the frontend to see the backend", func() bool { return len(alive(fe)) == 3 })

	alice := imapLogin(t, fe.IMAPAddr(), "alice", "alicepw")
	appendMsg(t, alice, "INBOX", "Subject: imap\r\n\r\nthrough TLS\r\n")

	l := dialLines(t, fe.LMTPAddr())
	l.expect("220")
	l.multi("LHLO test")
	l.cmd("MAIL FROM:<a@example.com>", "250")
	l.cmd("RCPT TO:<alice@fe.test>", "250")
	l.cmd("DATA", "354")
	l.send("Subject: lmtp\r\n\r\nthrough TLS\r\n.")
	l.expect("250")

	p := dialLines(t, fe.POP3Addr())
	p.expect("+OK")
	p.cmd("USER alice", "+OK")
	p.cmd("PASS alicepw", "+OK")
	if stat := p.cmd("STAT", "+OK"); !strings.HasPrefix(stat, "+OK 2 ") {
		t.Errorf("POP3 STAT through TLS: %q", stat)
	}
	p.cmd("QUIT", "+OK")
}
