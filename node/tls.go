package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/rookery/rookery/internal/selfsigned"
)

// tlsConfig loads tls_server_cert/tls_server_key, or makes a self-signed
// certificate in DATA/tls on first start so STARTTLS works out of the box.
// It is made once per node and shared by every TLS listener (MUPDATE,
// IMAP, POP3, LMTP, imaps, pop3s), which get the certificate of the
// moment from it, so a reload reaches them all, sessions already under
// TLS keeping theirs.
func (n *Node) tlsConfig() (*tls.Config, error) {
	if n.serverTLS != nil {
		return n.serverTLS, nil
	}
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
	cs := &certStore{certFile: certFile, keyFile: keyFile}
	if _, err := cs.load(); err != nil {
		return nil, err
	}
	n.certs = cs
	n.serverTLS = &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cs.cur.Load(), nil },
		MinVersion:     tls.VersionTLS12,
	}
	return n.serverTLS, nil
}

// certStore holds the node's server certificate.
type certStore struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// load reads the certificate and key files and, when they make a pair,
// serves them from now on; otherwise the certificate served stays.
func (cs *certStore) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(cs.certFile, cs.keyFile)
	if err != nil {
		return nil, fmt.Errorf("node: tls: %w", err)
	}
	cs.cur.Store(&cert)
	return &cert, nil
}

// plaintextAllowed says whether a client connecting from remote may log
// in with a plaintext password before TLS on a backend's listeners or on
// MUPDATE: allowplaintext, or (allowplaintext_loopback) a loopback peer,
// which Rookery counts as secure the way Cyrus counts a UNIX-socket
// peer. Frontends, MTAs, the tests and the examples reach these
// listeners over loopback.
func (n *Node) plaintextAllowed(remote net.Addr) bool {
	if n.cfg.AllowPlaintext {
		return true
	}
	a, ok := remote.(*net.TCPAddr)
	return ok && n.cfg.PlaintextLoopback && a.IP.IsLoopback()
}

// clientTLS is how this node's MUPDATE clients (replica, pusher) take up a
// master's STARTTLS (nil: they do not), as peerTLS says.
func (n *Node) clientTLS() (*tls.Config, error) {
	if !n.cfg.MUPDATETLS {
		return nil, nil
	}
	return n.peerTLS()
}

// peerTLS is how this node checks the servers it takes STARTTLS up with
// (a master, a frontend's backends): against tls_client_ca_file when
// given; else encrypted but unverified, since nodes' default
// certificates are self-signed (the cluster key and the passwords still
// authenticate the peers).
func (n *Node) peerTLS() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if n.cfg.TLSClientCA == "" {
		conf.InsecureSkipVerify = true
		return conf, nil
	}
	pem, err := os.ReadFile(n.cfg.TLSClientCA)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	conf.RootCAs = x509.NewCertPool()
	if !conf.RootCAs.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("node: %s: no PEM certificates", n.cfg.TLSClientCA)
	}
	return conf, nil
}

// selfSigned writes a new self-signed certificate for name, valid five
// years, and its key.
func selfSigned(dir, certFile, keyFile, name string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	c, err := selfsigned.New(name, 5*365*24*time.Hour)
	if err != nil {
		return fmt.Errorf("node: tls: %w", err)
	}
	certPEM, keyPEM, err := selfsigned.PEM(c)
	if err != nil {
		return fmt.Errorf("node: tls: %w", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return os.WriteFile(certFile, certPEM, 0o644)
}
