package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/internal/selfsigned"
)

// writeCert writes a new self-signed certificate and its key and returns
// its serial number.
func writeCert(t *testing.T, certFile, keyFile string) string {
	t.Helper()
	c, err := selfsigned.New("hup.test", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := selfsigned.PEM(c)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, keyFile, string(keyPEM))
	writeFile(t, certFile, string(certPEM))
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.SerialNumber.String()
}

// imapsSession logs alice in on the implicit-TLS listener and returns
// the session and the serial number of the certificate it was served.
func imapsSession(t *testing.T, addr string) (*imapclient.Client, string) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c := imapclient.New(conn, nil)
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", "alicepw").Wait(); err != nil {
		t.Fatalf("login over TLS: %v", err)
	}
	return c, conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestSIGHUPReloadsCertificate: after the certificate files are replaced,
// SIGHUP makes new TLS sessions (implicit and STARTTLS) get the new
// certificate while a session opened before keeps working; a bad new
// certificate is logged and the one in effect stays.
func TestSIGHUPReloadsCertificate(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	writeFile(t, users, "admin:{PLAIN}adminpw\nalice:{PLAIN}alicepw\n")
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certFile, keyFile)
	imap, imaps := freeAddr(t), freeAddr(t)
	conf := reloadConf(t, dir, users, imap, freeAddr(t),
		"imaps_listen: "+imaps, "tls_server_cert: "+certFile, "tls_server_key: "+keyFile)
	p := startNode(t, "--config", conf)
	p.wait(t, "node started")

	old, serial := imapsSession(t, imaps)
	if serial != first {
		t.Fatalf("served serial %s, want %s", serial, first)
	}

	second := writeCert(t, certFile, keyFile)
	p.signal(t, syscall.SIGHUP)
	p.wait(t, "TLS certificate reloaded", "serial="+second)
	p.wait(t, "reload done")
	if _, serial := imapsSession(t, imaps); serial != second {
		t.Errorf("imaps after SIGHUP: serial %s, want %s", serial, second)
	}
	st, err := imapclient.DialStartTLS(imap, &imapclient.Options{TLSConfig: &tls.Config{
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if got := cs.PeerCertificates[0].SerialNumber.String(); got != second {
				t.Errorf("STARTTLS after SIGHUP: serial %s, want %s", got, second)
			}
			return nil
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := old.Noop().Wait(); err != nil {
		t.Errorf("session opened before the reload: %v", err)
	}
	if _, err := old.List("", "*", nil).Collect(); err != nil {
		t.Errorf("session opened before the reload: %v", err)
	}

	writeFile(t, certFile, "not a certificate\n")
	p.signal(t, syscall.SIGHUP)
	p.wait(t, "level=ERROR", "TLS certificate not reloaded")
	p.wait(t, "reload done")
	if _, serial := imapsSession(t, imaps); serial != second {
		t.Errorf("after a bad certificate: serial %s, want %s", serial, second)
	}
	if err := old.Noop().Wait(); err != nil {
		t.Errorf("session opened before the reloads: %v", err)
	}
	p.stop(t)
}
