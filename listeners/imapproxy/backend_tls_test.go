package imapproxy_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/internal/selfsigned"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/listeners/pop3"
	"github.com/rookery/rookery/node"
)

// cyrusCert writes a certificate for host where user cyrus can read it
// and returns the files and a client configuration that trusts it alone.
func cyrusCert(t *testing.T, host string) (certFile, keyFile string, trust *tls.Config) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "rookery-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c, err := selfsigned.New(host, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := selfsigned.PEM(c)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// TestCyrusBackendOverTLS: a real Cyrus backend with TLS on and
// allowplaintext: no offers no plaintext login in the clear; the frontend
// takes up its STARTTLS (IMAP, LMTP) and STLS (POP3), verifies its
// certificate, and proxies over TLS.
// Without TLS to backends, or with a certificate it does not trust, the
// backend is unavailable.
func TestCyrusBackendOverTLS(t *testing.T) {
	cyrustest.Require(t)
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte(usersFile), 0o600); err != nil {
		t.Fatal(err)
	}
	master := startNode(t, users, "master.test", func(cfg *node.Config) {
		cfg.Roles = []node.Role{node.RoleMaster}
		cfg.MUPDATEListen = "127.0.0.1:0"
	})
	u, err := auth.LoadUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, trust := cyrusCert(t, "127.0.0.1")
	be := cyrustest.Start(t, cyrustest.RoleBackend, cyrustest.Options{
		Master:   master.MUPDATEAddr(),
		IMAPPort: cyrustest.FreePort(t),
		POP3Port: cyrustest.FreePort(t),
		LMTPPort: cyrustest.FreePort(t),
		Conf: map[string]string{
			"tls_server_cert": certFile, "tls_server_key": keyFile, "allowplaintext": "no",
		},
	})
	be.AddUser(t, "alice", "alicepw", false)
	addr := net.JoinHostPort(be.Addr, strconv.Itoa(be.IMAPPort))

	// Cyrus itself: no plaintext login before TLS, the INBOX made over TLS.
	if u := dial(t, addr).ok("CAPABILITY"); !has(u, "STARTTLS") || has(u, "AUTH=PLAIN") {
		t.Fatalf("Cyrus's capabilities without TLS: %v", u)
	}
	admin, err := imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: trust})
	if err != nil {
		t.Fatalf("STARTTLS to Cyrus: %v", err)
	}
	defer admin.Close()
	if err := admin.Login(cyrustest.AdminUser, cyrustest.AdminPass).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Create("user.alice", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	hostPort := func(p int) string { return net.JoinHostPort(be.Addr, strconv.Itoa(p)) }
	m := &murder{master: master, users: u, addrs: map[string][3]string{be.ServerName: {addr, hostPort(be.POP3Port), hostPort(be.LMTPPort)}}}
	m.waitEntry(t, "user.alice", be.ServerName)

	_, fe := m.frontend(t, func(cfg *imapproxy.Config) { cfg.BackendTLS = trust })
	alice := login(t, fe, "alice", "alicepw")
	alice.ok("SELECT INBOX")
	alice.ok("APPEND INBOX {%d+}\r\n%s", len(message("tls", "over TLS")), message("tls", "over TLS"))
	if u := alice.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])"); !has(u, "Subject: tls") {
		t.Errorf("FETCH through TLS: %v", u)
	}

	lp, err := lmtp.NewProxy(lmtp.ProxyConfig{
		ServerName: "frontend.test",
		DB:         m.master.Store(),
		Resolve:    m.resolve,
		Users:      m.users,
		Admins:     []string{"admin"},
		Proxy:      auth.ProxyCredentials{Authname: cyrustest.ProxyUser, Password: cyrustest.ProxyPass},
		BackendTLS: trust,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, data := dialLMTP(t, serve(t, lp.Serve, lp.Close)).deliver(message("lmtp", "over TLS"), "alice@example.com")
	if len(data) != 1 || data[0].Code != 250 {
		t.Errorf("LMTP delivery to Cyrus over TLS: %v", data)
	}
	pop := dialPOP3(t, m.pop3Frontend(t, func(cfg *pop3.ProxyConfig) { cfg.BackendTLS = trust }))
	pop.must("")
	pop.must("USER alice")
	pop.must("PASS alicepw")
	if st := pop.must("STAT"); !strings.HasPrefix(st.Text, "2 ") {
		t.Errorf("POP3 STAT at Cyrus over TLS: %q", st.Text)
	}
	pop.must("QUIT")

	_, noTLS := m.frontend(t)
	if tagged := login(t, noTLS, "alice", "alicepw").no("SELECT INBOX"); !strings.Contains(tagged, "UNAVAILABLE") {
		t.Errorf("SELECT without TLS to backends: %s", tagged)
	}
	_, _, other := cyrusCert(t, "127.0.0.1")
	_, untrusted := m.frontend(t, func(cfg *imapproxy.Config) { cfg.BackendTLS = other })
	if tagged := login(t, untrusted, "alice", "alicepw").no("SELECT INBOX"); !strings.Contains(tagged, "UNAVAILABLE") {
		t.Errorf("SELECT with a certificate not trusted: %s", tagged)
	}
}
