package selfsigned

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

// TestNew: the certificate names its host (an IP address or a name) and
// survives a round trip through PEM, as a node stores it.
func TestNew(t *testing.T) {
	for _, host := range []string{"127.0.0.1:143", "mail.example.com"} {
		c, err := New(host, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, keyPEM, err := PEM(c)
		if err != nil {
			t.Fatal(err)
		}
		back, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(back.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		want := host
		if host == "127.0.0.1:143" {
			want = "127.0.0.1"
		}
		if err := leaf.VerifyHostname(want); err != nil {
			t.Errorf("%s: %v", host, err)
		}
		if time.Until(leaf.NotAfter) > time.Hour {
			t.Errorf("%s: valid until %v", host, leaf.NotAfter)
		}
	}
}
