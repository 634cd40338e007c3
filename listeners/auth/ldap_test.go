package auth

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/slapdtest"
)

func TestLDAPReal(t *testing.T) {
	uri, stop := slapdtest.Start(t, map[string]string{"alice": "wonder land", "bob": "builder"})
	for _, l := range []*LDAP{
		{URI: "ldap://127.0.0.1:1 " + uri, Base: "ou=people," + slapdtest.Base, Timeout: 5 * time.Second},
		{URI: uri, Base: slapdtest.Base, Filter: "(&(objectClass=inetOrgPerson)(uid=%U))", BindDN: slapdtest.AdminDN, Password: slapdtest.AdminPassword},
	} {
		if err := l.Verify("alice", "wonder land"); err != nil {
			t.Errorf("%+v: right password: %v", l, err)
		}
		for _, c := range [][2]string{{"alice", "wonder"}, {"alice", ""}, {"nobody", "wonder land"}, {"*", "wonder land"}, {"alice)(uid=*", "x"}} {
			err := l.Verify(c[0], c[1])
			if !errors.Is(err, ErrBadCredentials) || errors.Is(err, ErrUnavailable) {
				t.Errorf("Verify(%q, %q) = %v, want bad credentials", c[0], c[1], err)
			}
		}
	}
	// A wrong search identity is the set-up's fault, not the user's.
	l := &LDAP{URI: uri, Base: slapdtest.Base, BindDN: slapdtest.AdminDN, Password: "wrong"}
	if err := l.Verify("alice", "wonder land"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("wrong search password: %v", err)
	}
	stop()
	l = &LDAP{URI: uri, Base: slapdtest.Base, Timeout: 2 * time.Second}
	if err := l.Verify("alice", "wonder land"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrBadCredentials) {
		t.Errorf("slapd down: %v", err)
	}
}

// A server that accepts and never answers times out as unavailable.
func TestLDAPSilent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	start := time.Now()
	err = (&LDAP{URI: "ldap://" + ln.Addr().String(), Base: "dc=x", Timeout: 300 * time.Millisecond}).Verify("alice", "pw")
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("silent server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestExpandFilter(t *testing.T) {
	for in, want := range map[string]string{
		"(uid=%u)":               "(uid=a\\2a\\28b\\29@ex.com)",
		"(&(uid=%U)(domain=%d))": "(&(uid=a\\2a\\28b\\29)(domain=ex.com))",
		"(cn=100%%)":             "(cn=100%)",
		"(uid=%u":                "(uid=a\\2a\\28b\\29@ex.com",
	} {
		if got := expandFilter(in, "a*(b)@ex.com"); got != want {
			t.Errorf("expandFilter(%q) = %q, want %q", in, got, want)
		}
	}
}
