package node

import (
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
)

// tlsConfig loads tls_server_cert/tls_server_key, or makes a self-signed
// certificate in DATA/tls on first start so STARTTLS works out of the box.
// It is made once per node.
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
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("node: tls: %w", err)
	}
	n.serverTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return n.serverTLS, nil
}

// clientTLS is how this node's MUPDATE clients (replica, pusher) take up a
// master's STARTTLS: verified against tls_client_ca_file when given; else
// encrypted but unverified, since nodes' default certificates are
// self-signed (the cluster key and the MUPDATE password still
// authenticate the peers).
func (n *Node) clientTLS() (*tls.Config, error) {
	if !n.cfg.MUPDATETLS {
		return nil, nil
	}
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
