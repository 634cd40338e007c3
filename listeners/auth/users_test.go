package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func writeUsers(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsersFile(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("bpw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	p := writeUsers(t, "# comment\n\nalice:{PLAIN}apw\nbob:{BCRYPT}"+string(hash)+":1000:1000::/home/bob\ncarol:{plain}c:pw\n")
	u, err := LoadUsers(p)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, pw string
		ok       bool
	}{
		{"alice", "apw", true},
		{"alice", "APW", false},
		{"bob", "bpw", true},
		{"bob", "x", false},
		{"carol", "c", true}, // extra passwd-file fields are ignored
		{"nobody", "apw", false},
		{"alice", "", false},
	}
	for _, c := range cases {
		err := u.Verify(c.user, c.pw)
		if (err == nil) != c.ok {
			t.Errorf("Verify(%q, %q) = %v, want ok=%v", c.user, c.pw, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Verify(%q): %v is not ErrBadCredentials", c.user, err)
		}
	}
}

func TestUsersFileReportsEveryProblem(t *testing.T) {
	p := writeUsers(t, "nocolon\nx:secret\ny:{MD5}abc\nz:{BCRYPT}nothash\nok:{PLAIN}a\nok:{PLAIN}b\n")
	_, err := LoadUsers(p)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{":1:", ":2:", ":3:", ":4:", ":6:", "listed twice", "{MD5}"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestAdminLogin(t *testing.T) {
	u, err := LoadUsers(writeUsers(t, "admin:{PLAIN}a\nbob:{PLAIN}b\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := &Policy{Users: u, Admins: []string{"admin"}}
	if who, err := p.AdminLogin("", "admin", "a"); err != nil || who != "admin" {
		t.Errorf("admin: %q %v", who, err)
	}
	if who, err := p.AdminLogin("bob", "admin", "a"); err != nil || who != "bob" {
		t.Errorf("admin as bob: %q %v", who, err)
	}
	if _, err := p.AdminLogin("", "bob", "b"); !errors.Is(err, ErrNotAdmin) {
		t.Errorf("non-admin: %v", err)
	}
	if _, err := p.AdminLogin("", "admin", "b"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
}
