package frontend

import (
	"context"
	"errors"
	"testing"

	"github.com/rookery/rookery/listeners/auth"
	"github.com/rookery/rookery/store"
)

func TestCyrusResolve(t *testing.T) {
	cases := []struct {
		server, imap, pop3, lmtp string
		ok                       bool
	}{
		{"mail1.example.com", "mail1.example.com:143", "mail1.example.com:110", "mail1.example.com:2003", true},
		{"127.0.0.12", "127.0.0.12:143", "127.0.0.12:110", "127.0.0.12:2003", true},
		{"127.0.0.1:11143", "127.0.0.1:11143", "127.0.0.1:11143", "127.0.0.1:11143", true},
		{"::1", "[::1]:143", "[::1]:110", "[::1]:2003", true},
		{"[::1]:1143", "[::1]:1143", "[::1]:1143", "[::1]:1143", true},
		{"mail1/tls", "", "", "", false},
		{"127.0.0.1:11143/tls", "127.0.0.1:11143", "127.0.0.1:11143", "127.0.0.1:11143", true},
		{"127.0.0.1:11143/noauth", "", "", "", false},
		{"/var/run/lmtp", "", "", "", false},
		{":143", "", "", "", false},
		{"", "", "", "", false},
	}
	for _, c := range cases {
		i, p, l, ok := CyrusResolve(c.server)
		if ok != c.ok || i != c.imap || p != c.pop3 || l != c.lmtp {
			t.Errorf("CyrusResolve(%q) = %q %q %q %v", c.server, i, p, l, ok)
		}
	}
}

func TestWantsTLS(t *testing.T) {
	for server, want := range map[string]bool{
		"127.0.0.1:143/tls": true, "mail1:143/noauth/tls": true,
		"mail1/tls": false, "127.0.0.1:143": false, "mail1": false,
	} {
		if got := WantsTLS(server); got != want {
			t.Errorf("WantsTLS(%q) = %v", server, got)
		}
	}
}

func TestPasswordFor(t *testing.T) {
	c := auth.ProxyCredentials{Password: "default", ServerPasswords: map[string]string{"mail1": "one", "localhost:1234": "lh"}}
	for server, want := range map[string]string{
		"mail1.example.com": "one",
		"mail1":             "one",
		"mail2.example.com": "default",
		"localhost:1234":    "lh",
	} {
		if got := c.PasswordFor(server); got != want {
			t.Errorf("PasswordFor(%q) = %q, want %q", server, got, want)
		}
	}
}

func TestLookup(t *testing.T) {
	db, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	commit := func(e store.Entry) {
		t.Helper()
		if _, err := db.Commit(&store.Batch{Changes: []store.Change{{Name: e.Name, New: &e}}}); err != nil {
			t.Fatal(err)
		}
	}
	commit(store.Entry{Name: "user.a^b", Kind: store.Active, Location: "be1!p"})
	commit(store.Entry{Name: "moving", Kind: store.Reserved, Location: "be2!p"})
	kicks := 0
	tab := Table{DB: db, Kick: func(context.Context) error {
		kicks++
		commit(store.Entry{Name: "late", Kind: store.Active, Location: "be3!p"})
		return nil
	}}
	if e, err := tab.Lookup(context.Background(), UserInbox("a.b")); err != nil || e.Server() != "be1" {
		t.Errorf("user.a^b: %+v %v", e, err)
	}
	if _, err := tab.Lookup(context.Background(), "moving"); !errors.Is(err, ErrReserved) || kicks != 0 {
		t.Errorf("reserved: %v, %d kicks", err, kicks)
	}
	if _, err := tab.LookupNoKick("late"); !errors.Is(err, ErrNoMailbox) || kicks != 0 {
		t.Errorf("LookupNoKick: %v, %d kicks", err, kicks)
	}
	if e, err := tab.Lookup(context.Background(), "late"); err != nil || e.Server() != "be3" || kicks != 1 {
		t.Errorf("after a kick: %+v %v, %d kicks", e, err, kicks)
	}
}
