package node

import (
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

func tryLogin(addr, user, pass string) error {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Login(user, pass).Wait()
}

// TestUsersFileReloads: a user added to the users file logs in on the
// running node, found by the file poll; a malformed file keeps the users
// in effect; a user removed (by an explicit reload) can no longer log in,
// while sessions already open carry on.
func TestUsersFileReloads(t *testing.T) {
	n := backendNode(t, t.TempDir(), "be1.test", "", func(c *Config) {
		c.UsersPoll = 20 * time.Millisecond
		c.FailedLoginPause = 0
	})
	path := n.cfg.UsersPath()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := tryLogin(n.IMAPAddr(), "dave", "davepw"); err == nil {
		t.Fatal("dave logged in before being added")
	}
	alice := imapLogin(t, n.IMAPAddr(), "alice", "alicepw")

	if err := os.WriteFile(path, append(before, "dave:{PLAIN}davepw\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dave to log in without a restart", func() bool { return tryLogin(n.IMAPAddr(), "dave", "davepw") == nil })

	if err := os.WriteFile(path, append(before, "dave {PLAIN}davepw\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	n.ReloadUsers()
	if err := tryLogin(n.IMAPAddr(), "dave", "davepw"); err != nil {
		t.Errorf("a malformed users file dropped dave: %v", err)
	}

	if err := os.WriteFile(path, before, 0o600); err != nil {
		t.Fatal(err)
	}
	n.ReloadUsers()
	if err := tryLogin(n.IMAPAddr(), "dave", "davepw"); err == nil {
		t.Error("dave still logs in after being removed")
	}
	if err := alice.Noop().Wait(); err != nil {
		t.Errorf("alice's session across the reloads: %v", err)
	}
}

func TestChangedOptions(t *testing.T) {
	before := map[string]string{"timeout": "30", "imap_listen": "127.0.0.1:1143", "sieve_folder": "x", "log_level": "info"}
	cases := []struct {
		after map[string]string
		want  []string
	}{
		{map[string]string{"timeout": "30", "imap_listen": "127.0.0.1:1143", "sieve_folder": "y", "log_level": "info"}, nil},
		{map[string]string{"timeout": "30", "imap_listen": "127.0.0.1:1143", "log_level": "INFO", "maxliteral": "131072"}, nil},
		{map[string]string{"timeout": "31", "imap_listen": "127.0.0.1:1143", "log_level": "debug"}, []string{"log_level", "timeout"}},
		// Dropping "timeout: 30" leaves the default, which is 30.
		{map[string]string{"imap_listen": "", "log_level": "info"}, []string{"imap_listen"}},
	}
	for _, c := range cases {
		if got := ChangedOptions(before, c.after); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%v: got %v, want %v", c.after, got, c.want)
		}
	}
}
