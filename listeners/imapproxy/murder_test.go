package imapproxy_test

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/listeners/pop3"
	"github.com/rookery/rookery/node"
	"github.com/rookery/rookery/store"
)

// murder is a Rookery master with two real Cyrus backends pushing to it:
// alice lives on be1, bob on be2, and be2 also holds the shared mailbox
// "shared" that anyone may read and write.
type murder struct {
	master   *node.Node
	be1, be2 *cyrustest.Instance
	users    *auth.Users
	// usersPath is the users file of the murder's Rookery nodes.
	usersPath string
	addrs     map[string][3]string // server name -> IMAP, POP3, LMTP address
	// resolveDefault makes the POP3 and LMTP frontends use the default
	// resolver instead of addrs.
	resolveDefault bool
}

const usersFile = "admin:{PLAIN}secret\n" +
	cyrustest.MupdateUser + ":{PLAIN}" + cyrustest.MupdatePass + "\n" +
	"alice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\n"

func startMurder(t testing.TB) *murder {
	t.Helper()
	cyrustest.Require(t)
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte(usersFile), 0o600); err != nil {
		t.Fatal(err)
	}
	n := startNode(t, users, "master.test", func(cfg *node.Config) {
		cfg.Roles = []node.Role{node.RoleMaster}
		cfg.MUPDATEListen = "127.0.0.1:0"
	})
	u, err := auth.LoadUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	m := &murder{master: n, users: u, addrs: map[string][3]string{}}
	backend := func() *cyrustest.Instance {
		be := cyrustest.Start(t, cyrustest.RoleBackend, cyrustest.Options{
			Master:   n.MUPDATEAddr(),
			IMAPPort: cyrustest.FreePort(t),
			POP3Port: cyrustest.FreePort(t),
			LMTPPort: cyrustest.FreePort(t),
			// Without idled, Cyrus's IDLE polls; the default is 60 s.
			// allowallsubscribe: as murder backends are set up, so that
			// subscriptions may name mailboxes on the other backend.
			Conf: map[string]string{"imapidlepoll": "1", "allowallsubscribe": "1"},
		})
		port := func(p int) string { return net.JoinHostPort(be.Addr, strconv.Itoa(p)) }
		m.addrs[be.ServerName] = [3]string{port(be.IMAPPort), port(be.POP3Port), port(be.LMTPPort)}
		return be
	}
	m.be1, m.be2 = backend(), backend()
	m.be1.AddUser(t, "alice", "alicepw", true)
	m.be2.AddUser(t, "bob", "bobpw", true)
	admin := cyrustest.DialIMAP(t, m.be2.IMAPAddr(), cyrustest.AdminUser, cyrustest.AdminPass)
	for _, cmd := range []string{"CREATE shared", "SETACL shared anyone lrswipte"} {
		if _, _, err := admin.Cmd("%s", cmd); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close()
	m.waitEntry(t, "user.alice", m.be1.ServerName)
	m.waitEntry(t, "user.bob", m.be2.ServerName)
	m.waitEntry(t, "shared", m.be2.ServerName)
	return m
}

// startNode starts a Rookery node on loopback ports with the users file
// and name given; mutate chooses its roles.
func startNode(t testing.TB, users, name string, mutate func(*node.Config)) *node.Node {
	t.Helper()
	cfg := node.DefaultConfig()
	cfg.ServerName = name
	cfg.DataDir = t.TempDir()
	cfg.MUPDATEListen = ""
	cfg.AdminListen = "127.0.0.1:0"
	cfg.IMAPListen = "127.0.0.1:0"
	cfg.POP3Listen = "127.0.0.1:0"
	cfg.LMTPListen = "127.0.0.1:0"
	cfg.UsersFile = users
	cfg.Admins = []string{"admin", cyrustest.MupdateUser}
	cfg.ProxyServers = []string{cyrustest.ProxyUser}
	cfg.FailedLoginPause = 0
	cfg.LogRetain = 1000
	mutate(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// resolver is what the POP3 and LMTP frontends are given.
func (m *murder) resolver() frontend.Resolver {
	if m.resolveDefault {
		return nil
	}
	return m.resolve
}

// resolve maps the backends' server names to their addresses.
func (m *murder) resolve(server string) (imap, pop3, lmtp string, ok bool) {
	a, ok := m.addrs[server]
	return a[0], a[1], a[2], ok
}

// waitEntry waits until the master lists name on server.
func (m *murder) waitEntry(t testing.TB, name, server string) store.Entry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, found, err := m.master.Store().Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if found && e.Kind == store.Active && e.Server() == server {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never became active on %s (found=%v %+v)", name, server, found, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until the master no longer lists name.
func (m *murder) waitGone(t testing.TB, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, found, err := m.master.Store().Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still listed", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// frontend starts an IMAP frontend over the murder's mailbox list.
func (m *murder) frontend(t testing.TB, mutate ...func(*imapproxy.Config)) (*imapproxy.Server, string) {
	t.Helper()
	cfg := imapproxy.Config{
		ServerName:     "frontend.test",
		DB:             m.master.Store(),
		Resolve:        m.resolve,
		Users:          m.users,
		Admins:         []string{"admin"},
		Proxy:          auth.ProxyCredentials{Authname: cyrustest.ProxyUser, Password: cyrustest.ProxyPass},
		AllowPlaintext: true,
		Logger:         testLogger(t),
	}
	for _, f := range mutate {
		f(&cfg)
	}
	srv, err := imapproxy.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv, serve(t, srv.Serve, srv.Close)
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("ROOKERY_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// message makes a small RFC 5322 message.
func message(subject, body string) string {
	return fmt.Sprintf("From: t@example.com\r\nSubject: %s\r\n\r\n%s\r\n", subject, body)
}

// pop3Frontend starts a POP3 frontend over the murder's mailbox list.
func (m *murder) pop3Frontend(t testing.TB, mutate ...func(*pop3.ProxyConfig)) string {
	t.Helper()
	cfg := pop3.ProxyConfig{
		ServerName:     "frontend.test",
		DB:             m.master.Store(),
		Resolve:        m.resolver(),
		Users:          m.users,
		Proxy:          auth.ProxyCredentials{Authname: cyrustest.ProxyUser, Password: cyrustest.ProxyPass},
		AllowPlaintext: true,
		Logger:         testLogger(t),
	}
	for _, f := range mutate {
		f(&cfg)
	}
	p, err := pop3.NewProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, p.Serve, p.Close)
}

// lmtpFrontend starts an LMTP frontend over the murder's mailbox list;
// admin may deliver.
func (m *murder) lmtpFrontend(t testing.TB, limits lmtp.Limits) string {
	t.Helper()
	p, err := lmtp.NewProxy(lmtp.ProxyConfig{
		Limits:     limits,
		ServerName: "frontend.test",
		DB:         m.master.Store(),
		Resolve:    m.resolver(),
		Users:      m.users,
		Admins:     []string{"admin"},
		Proxy:      auth.ProxyCredentials{Authname: cyrustest.ProxyUser, Password: cyrustest.ProxyPass},
		Logger:     testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, p.Serve, p.Close)
}

// serve runs a server on a loopback port until the test ends.
func serve(t testing.TB, run func(net.Listener) error, stop func() error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- run(ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}
