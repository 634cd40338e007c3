// Package auth owns the node's user source: a passwd-style users file and
// the rules for who may log in to which listener.
package auth

import (
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// ErrBadCredentials is returned for an unknown user or a wrong password; the
// two are deliberately indistinguishable to the peer.
var ErrBadCredentials = errors.New("auth: bad credentials")

// ErrNotAdmin is returned when a listener that only admits admins is
// offered a valid non-admin identity.
var ErrNotAdmin = errors.New("auth: not an admin")

type secret struct {
	scheme string // upper-cased, without braces
	value  string
}

// Users is an immutable set of users loaded from a passwd-file
// (Dovecot style: "name:{SCHEME}secret[:extra fields ignored]").
type Users struct {
	users map[string]secret
}

// LoadUsers reads a users file. Every malformed line is reported, not only
// the first, so an operator can fix the file in one go.
func LoadUsers(path string) (*Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	u := &Users{users: make(map[string]secret)}
	var problems []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			problems = append(problems, fmt.Sprintf("%s:%d: want name:{SCHEME}secret", path, n))
			continue
		}
		pw, _, _ := strings.Cut(rest, ":")
		s, err := parseSecret(pw)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s:%d: %v", path, n, err))
			continue
		}
		if _, dup := u.users[name]; dup {
			problems = append(problems, fmt.Sprintf("%s:%d: user %q listed twice", path, n, name))
			continue
		}
		u.users[name] = s
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: reading %s: %w", path, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("auth: %s", strings.Join(problems, "; "))
	}
	return u, nil
}

func parseSecret(s string) (secret, error) {
	if !strings.HasPrefix(s, "{") {
		return secret{}, errors.New("password must start with a {SCHEME} such as {PLAIN} or {BCRYPT}")
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return secret{}, errors.New("unterminated {SCHEME}")
	}
	scheme := strings.ToUpper(s[1:end])
	value := s[end+1:]
	switch scheme {
	case "PLAIN", "CLEAR", "CLEARTEXT":
		return secret{scheme: "PLAIN", value: value}, nil
	case "BCRYPT", "BLF-CRYPT":
		if _, err := bcrypt.Cost([]byte(value)); err != nil {
			return secret{}, fmt.Errorf("bad bcrypt hash: %v", err)
		}
		return secret{scheme: "BCRYPT", value: value}, nil
	default:
		return secret{}, fmt.Errorf("unsupported scheme {%s} (use {PLAIN} or {BCRYPT})", scheme)
	}
}

// Verify checks a user's password.
func (u *Users) Verify(name, password string) error {
	s, ok := u.users[name]
	if !ok {
		// Spend comparable time on unknown users so timing does not reveal
		// which names exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return ErrBadCredentials
	}
	switch s.scheme {
	case "PLAIN":
		if subtle.ConstantTimeCompare([]byte(s.value), []byte(password)) == 1 {
			return nil
		}
	case "BCRYPT":
		if bcrypt.CompareHashAndPassword([]byte(s.value), []byte(password)) == nil {
			return nil
		}
	}
	return ErrBadCredentials
}

// Exists reports whether the user is listed.
func (u *Users) Exists(name string) bool {
	_, ok := u.users[name]
	return ok
}

// Len is the number of users.
func (u *Users) Len() int { return len(u.users) }

// dummyHash is made once, on the first unknown user, so that failing on an
// unknown name costs about what a bcrypt comparison costs.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("rookery-unknown-user"), bcrypt.DefaultCost)
	return h
})
