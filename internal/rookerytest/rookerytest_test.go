package rookerytest_test

import (
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/internal/rookerytest"
)

// TestStart: each kind of topology serves its users' INBOXes at IMAPAddr
// as soon as Start returns, the murder's from both backends.
func TestStart(t *testing.T) {
	users := []rookerytest.User{{Name: "alice", Pass: "alicepw"}, {Name: "bob", Pass: "bobpw"}}
	for _, kind := range []rookerytest.Kind{rookerytest.Backend, rookerytest.Murder} {
		t.Run(kind.String(), func(t *testing.T) {
			top, err := rookerytest.Start(t.Context(), kind, t.TempDir(), nil, users...)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := top.Close(); err != nil {
					t.Error(err)
				}
			}()
			for i, u := range users {
				c, err := imapclient.DialInsecure(top.IMAPAddr, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := c.Login(u.Name, u.Pass).Wait(); err != nil {
					t.Fatalf("login %s: %v", u.Name, err)
				}
				if _, err := c.Select("INBOX", nil).Wait(); err != nil {
					t.Errorf("SELECT INBOX as %s: %v", u.Name, err)
				}
				c.Close()
				be := top.Backends[i%len(top.Backends)]
				if _, ok, _ := be.Mail().Mailbox("user." + u.Name); !ok {
					t.Errorf("user.%s is not on backend %d", u.Name, i%len(top.Backends)+1)
				}
			}
		})
	}
}
