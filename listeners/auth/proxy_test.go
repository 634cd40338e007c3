package auth

import (
	"errors"
	"testing"
)

func TestMailPolicy(t *testing.T) {
	u, err := LoadUsers(writeUsers(t, "admin:{PLAIN}a\nproxy:{PLAIN}p\nbob:{PLAIN}b\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := &MailPolicy{Users: u, Admins: []string{"admin"}, ProxyServers: []string{"proxy"}}
	cases := []struct {
		authz, authc, pw string
		want             Identity
		err              error
	}{
		{"", "bob", "b", Identity{User: "bob"}, nil},
		{"bob", "bob", "b", Identity{User: "bob"}, nil},
		{"", "admin", "a", Identity{User: "admin", Admin: true}, nil},
		{"alice", "proxy", "p", Identity{User: "alice", Proxy: "proxy"}, nil},
		{"admin", "proxy", "p", Identity{User: "admin", Proxy: "proxy", Admin: true}, nil}, // an admin through a frontend, as in Cyrus
		{"alice", "bob", "b", Identity{}, ErrNotAuthorized},
		{"alice", "admin", "a", Identity{}, ErrNotAuthorized},
		{"alice", "proxy", "x", Identity{}, ErrBadCredentials},
	}
	for _, c := range cases {
		got, err := p.Login(c.authz, c.authc, c.pw)
		if got != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("Login(%q, %q) = %+v, %v; want %+v, %v", c.authz, c.authc, got, err, c.want, c.err)
		}
	}
}
