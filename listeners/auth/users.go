// Package auth owns the node's user source: a passwd-style users file and
// the rules for who may log in to which listener.
package auth

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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

// Users is the set of users of a passwd-file (Dovecot style:
// "name:{SCHEME}secret[:extra fields ignored]"). Listeners share one
// *Users; Reload swaps the whole set at once, so a login sees either the
// old file or the new one, never a mix. The zero value has no users.
type Users struct {
	path string
	set  atomic.Pointer[map[string]secret]
	// mu serialises reloads (a signal and the file poll may race) and
	// guards stamp and settled.
	mu    sync.Mutex
	stamp fileStamp
	// settled is false while the loaded file's modification time is too
	// recent to trust: the kernel's file clock ticks every few
	// milliseconds, so a same-size rewrite in the same tick keeps the
	// stamp, and only reading again can tell.
	settled bool
}

// fileStamp is what tells a changed users file from the one loaded:
// editors and rename-into-place both change at least one of these.
type fileStamp struct {
	size    int64
	modTime time.Time
	ino     uint64
}

func (st fileStamp) settled() bool { return time.Since(st.modTime) > time.Second }

func stampOf(fi os.FileInfo) fileStamp {
	st := fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// UsersFileError lists every malformed line of a users file, so an
// operator can fix the file in one go.
type UsersFileError struct {
	Problems []string // each "path:line: what is wrong"
}

func (e *UsersFileError) Error() string {
	return "auth: " + strings.Join(e.Problems, "; ")
}

// LoadUsers reads a users file. Every malformed line is reported, not only
// the first.
func LoadUsers(path string) (*Users, error) {
	set, stamp, err := readUsers(path)
	if err != nil {
		return nil, err
	}
	u := &Users{path: path, stamp: stamp, settled: stamp.settled()}
	u.set.Store(&set)
	return u, nil
}

// readUsers parses the file at path and returns its stamp from before the
// read, so that a write racing the read shows as a change next time.
func readUsers(path string) (map[string]secret, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: %w", err)
	}
	users := make(map[string]secret)
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
		if _, dup := users[name]; dup {
			problems = append(problems, fmt.Sprintf("%s:%d: user %q listed twice", path, n, name))
			continue
		}
		users[name] = s
	}
	if err := sc.Err(); err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: reading %s: %w", path, err)
	}
	if len(problems) > 0 {
		return nil, fileStamp{}, &UsersFileError{Problems: problems}
	}
	return users, stampOf(fi), nil
}

// ErrNoUsers refuses a reload to a users file that lists nobody: more
// likely a file caught half-written or emptied by mistake than a wish to
// lock every user out.
var ErrNoUsers = errors.New("auth: the users file lists no users")

// UsersChange is what a reload changed, by user name, each sorted.
type UsersChange struct {
	Added, Removed, Changed []string
	// Total is the number of users after the reload.
	Total int
}

// Reload re-reads the file Users was loaded from and, if it is valid and
// lists at least one user, makes it the set every holder of u sees. On
// any problem the users loaded before stay in effect and the error says
// why (a *UsersFileError lists every bad line).
func (u *Users) Reload() (UsersChange, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.reloadLocked()
}

// ReloadIfChanged reloads only when the file's size, modification time or
// inode differ from what was last loaded (or that was modified too
// recently to tell); it is cheap enough to poll. changed reports whether
// there is news to log: a file rewritten or gone, or users changed. A
// file that fails to load is reported once, not on every poll, until it
// changes again.
func (u *Users) ReloadIfChanged() (c UsersChange, changed bool, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fi, err := os.Stat(u.path)
	if err != nil {
		// The users in effect stay; a removed file is reported once, and
		// loaded again when it is back.
		if u.stamp == (fileStamp{}) {
			return UsersChange{}, false, nil
		}
		u.stamp = fileStamp{}
		return UsersChange{}, true, fmt.Errorf("auth: %w", err)
	}
	st := stampOf(fi)
	recheck := st == u.stamp
	if recheck && u.settled {
		return UsersChange{}, false, nil
	}
	c, err = u.reloadLocked()
	if err != nil {
		u.stamp, u.settled = st, st.settled()
		if recheck {
			return UsersChange{}, false, nil
		}
		return c, true, err
	}
	return c, !recheck || len(c.Added)+len(c.Removed)+len(c.Changed) > 0, nil
}

func (u *Users) reloadLocked() (UsersChange, error) {
	if u.path == "" {
		return UsersChange{}, errors.New("auth: these users were not loaded from a file")
	}
	set, stamp, err := readUsers(u.path)
	if err != nil {
		return UsersChange{}, err
	}
	if len(set) == 0 {
		return UsersChange{}, fmt.Errorf("%w: %s", ErrNoUsers, u.path)
	}
	old := u.users()
	var c UsersChange
	for name, s := range set {
		if o, ok := old[name]; !ok {
			c.Added = append(c.Added, name)
		} else if o != s {
			c.Changed = append(c.Changed, name)
		}
	}
	for name := range old {
		if _, ok := set[name]; !ok {
			c.Removed = append(c.Removed, name)
		}
	}
	slices.Sort(c.Added)
	slices.Sort(c.Removed)
	slices.Sort(c.Changed)
	c.Total = len(set)
	u.set.Store(&set)
	u.stamp, u.settled = stamp, stamp.settled()
	return c, nil
}

func (u *Users) users() map[string]secret {
	if p := u.set.Load(); p != nil {
		return *p
	}
	return nil
}

func parseSecret(s string) (secret, error) {
	if !strings.HasPrefix(s, "{") {
		return secret{}, errors.New("password must start with a {SCHEME} such as {ARGON2ID} or {BLF-CRYPT} (see node passwd)")
	}
	end := strings.IndexByte(s, '}')
	if end < 0 {
		return secret{}, errors.New("unterminated {SCHEME}")
	}
	return checkSecret(strings.ToUpper(s[1:end]), s[end+1:])
}

// Verify checks a user's password.
func (u *Users) Verify(name, password string) error {
	s, ok := u.users()[name]
	if !ok {
		// Spend comparable time on unknown users so timing does not reveal
		// which names exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return ErrBadCredentials
	}
	if s.matches(password) {
		return nil
	}
	return ErrBadCredentials
}

// Exists reports whether the user is listed.
func (u *Users) Exists(name string) bool {
	_, ok := u.users()[name]
	return ok
}

// Len is the number of users.
func (u *Users) Len() int { return len(u.users()) }

// dummyHash is made once, on the first unknown user, so that failing on an
// unknown name costs about what a bcrypt comparison costs.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("rookery-unknown-user"), bcrypt.DefaultCost)
	return h
})
