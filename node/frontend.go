package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/rookery/rookery/actors/membership"
	"github.com/rookery/rookery/actors/slave"
	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/listeners/frontend"
	"github.com/rookery/rookery/listeners/imapproxy"
	"github.com/rookery/rookery/listeners/lmtp"
	"github.com/rookery/rookery/listeners/pop3"
)

// startFrontend starts the IMAP, POP3 and LMTP proxies, routed by this
// node's mailbox list (its replica's, or the master's own).
func (n *Node) startFrontend(users *auth.Users) error {
	tlsConf, err := n.tlsConfig()
	if err != nil {
		return err
	}
	var kick func(context.Context) error
	if n.slave != nil {
		kick = n.kick
	}
	proxy := auth.ProxyCredentials{
		Authname:        n.cfg.ProxyAuthname,
		Password:        n.cfg.ProxyPassword,
		ServerPasswords: n.cfg.ServerPasswords,
	}
	resolve := n.resolveBackend
	n.imapProxy, err = imapproxy.NewServer(imapproxy.Config{
		ServerName:     n.cfg.ServerName,
		DB:             n.store,
		Kick:           kick,
		Resolve:        resolve,
		Users:          users,
		Admins:         n.cfg.Admins,
		Proxy:          proxy,
		ServerList:     n.cfg.ServerList,
		Backends:       n.aliveBackends,
		TLS:            tlsConf,
		AllowPlaintext: n.cfg.AllowPlaintext,
		Limits: imapproxy.Limits{
			MaxLiteral:       n.cfg.MaxMessageSize,
			IdleTimeout:      n.cfg.IMAPIdleTimeout,
			ConnectTimeout:   n.cfg.ClientTimeout,
			FailedLoginPause: n.cfg.FailedLoginPause,
		},
		Logger: n.log.With("listener", "imap-proxy"),
	})
	if err != nil {
		return err
	}
	if err := n.listen(n.cfg.IMAPListen, nil, "imap", &n.imapLn, n.imapProxy.Serve); err != nil {
		return err
	}
	if err := n.listen(n.cfg.IMAPSListen, tlsConf, "imaps", &n.imapsLn, n.imapProxy.Serve); err != nil {
		return err
	}
	n.pop3Proxy, err = pop3.NewProxy(pop3.ProxyConfig{
		ServerName:     n.cfg.ServerName,
		DB:             n.store,
		Resolve:        resolve,
		Users:          users,
		Proxy:          proxy,
		TLS:            tlsConf,
		AllowPlaintext: n.cfg.AllowPlaintext,
		Logger:         n.log.With("listener", "pop3-proxy"),
	})
	if err != nil {
		return err
	}
	if err := n.listen(n.cfg.POP3Listen, nil, "pop3", &n.pop3Ln, n.pop3Proxy.Serve); err != nil {
		return err
	}
	if err := n.listen(n.cfg.POP3SListen, tlsConf, "pop3s", &n.pop3sLn, n.pop3Proxy.Serve); err != nil {
		return err
	}
	n.lmtpProxy, err = lmtp.NewProxy(lmtp.ProxyConfig{
		ServerName: n.cfg.ServerName,
		DB:         n.store,
		Kick:       kick,
		Resolve:    resolve,
		Users:      users,
		Admins:     n.cfg.Admins,
		Preauth:    !n.cfg.LMTPRequireAuth,
		Proxy:      proxy,
		TLS:        tlsConf,
		Logger:     n.log.With("listener", "lmtp-proxy"),
	})
	if err != nil {
		return err
	}
	return n.listen(n.cfg.LMTPListen, nil, "lmtp", &n.lmtpLn, n.lmtpProxy.Serve)
}

// listen opens addr (nothing when empty), wrapping it in TLS when tlsConf
// is given (implicit TLS ports), and serves it.
func (n *Node) listen(addr string, tlsConf *tls.Config, name string, ln *net.Listener, serve func(net.Listener) error) error {
	if addr == "" {
		return nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: %s listener: %w", name, err)
	}
	*ln = l
	if tlsConf != nil {
		l = tls.NewListener(l, tlsConf)
	}
	n.serve(func() error { return serve(l) }, name)
	return nil
}

// kick makes the replica catch up with its master before a frontend
// retries a lookup that missed.
func (n *Node) kick(ctx context.Context) error {
	timeout := askTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
		if timeout <= 0 {
			return context.DeadlineExceeded
		}
	}
	res, err := n.system.Root.RequestFuture(n.slave, &slave.Sync{}, timeout).Result()
	if err != nil {
		return err
	}
	return res.(*slave.SyncReply).Err
}

// resolveBackend finds a backend's addresses: gossip first (Rookery
// backends announce theirs), then Cyrus's convention for server names
// (real Cyrus backends do not gossip).
func (n *Node) resolveBackend(server string) (imap, pop3, lmtp string, ok bool) {
	if n.cluster != nil {
		n.cluster.mu.Lock()
		m, found := n.cluster.members[server]
		n.cluster.mu.Unlock()
		if found && m.Meta.HasRole(string(RoleBackend)) {
			// A backend gossip saw fail is answered at once, not after a
			// connect timeout.
			if m.State != membership.Alive {
				return "", "", "", false
			}
			return m.Meta.IMAP, m.Meta.POP3, m.Meta.LMTP, true
		}
	}
	return frontend.CyrusResolve(server)
}

// aliveBackends are the backends gossip sees up.
func (n *Node) aliveBackends() []string {
	var out []string
	for _, m := range n.Members() {
		if m.State == membership.Alive && m.Meta.HasRole(string(RoleBackend)) {
			out = append(out, m.Name)
		}
	}
	return out
}

// tlsConfig loads tls_server_cert/tls_server_key, or makes a self-signed
// certificate in DATA/tls on first start so STARTTLS works out of the box.
func (n *Node) tlsConfig() (*tls.Config, error) {
	certFile, keyFile := n.cfg.TLSCert, n.cfg.TLSKey
	if certFile == "" {
		dir := filepath.Join(n.cfg.DataDir, "tls")
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if _, err := os.Stat(certFile); errors.Is(err, os.ErrNotExist) {
			if err := selfSigned(dir, certFile, keyFile, n.cfg.ServerName); err != nil {
				return nil, err
			}
			n.log.Warn("made a self-signed TLS certificate; set tls_server_cert and tls_server_key for a real one", "file", certFile)
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("node: tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func selfSigned(dir, certFile, keyFile, name string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("node: tls key: %w", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	host, _, err := net.SplitHostPort(name)
	if err != nil {
		host = name
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(5, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.DNSNames, tmpl.IPAddresses = nil, []net.IP{ip}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("node: tls certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("node: tls key: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
