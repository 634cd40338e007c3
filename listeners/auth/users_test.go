package auth

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
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

// TestUsersReload: a reload swaps the whole set for every holder of the
// *Users and says what changed; a bad or empty file keeps the old set.
func TestUsersReload(t *testing.T) {
	p := writeUsers(t, "alice:{PLAIN}a\nbob:{PLAIN}b\ncarol:{PLAIN}c\n")
	u, err := LoadUsers(p)
	if err != nil {
		t.Fatal(err)
	}
	policy := &MailPolicy{Users: u}
	rewrite := func(content string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rewrite("alice:{PLAIN}a\nbob:{PLAIN}B\ndave:{PLAIN}d\n")
	c, err := u.Reload()
	if err != nil {
		t.Fatal(err)
	}
	want := UsersChange{Added: []string{"dave"}, Removed: []string{"carol"}, Changed: []string{"bob"}, Total: 3}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("change = %+v, want %+v", c, want)
	}
	if _, err := policy.Login("", "dave", "d"); err != nil {
		t.Errorf("added user: %v", err)
	}
	for _, up := range [][2]string{{"carol", "c"}, {"bob", "b"}} {
		if _, err := policy.Login("", up[0], up[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s after reload: %v", up[0], err)
		}
	}

	rewrite("alice:{PLAIN}a\nerin:secret\nfrank:{MD5}x\n")
	_, err = u.Reload()
	var fe *UsersFileError
	if !errors.As(err, &fe) || len(fe.Problems) != 2 {
		t.Fatalf("malformed file: %v", err)
	}
	rewrite("# everyone gone\n")
	if _, err := u.Reload(); !errors.Is(err, ErrNoUsers) {
		t.Fatalf("empty file: %v", err)
	}
	os.Remove(p)
	if _, err := u.Reload(); err == nil {
		t.Fatal("missing file: no error")
	}
	// After three refused reloads the last good set is still in effect.
	if err := u.Verify("dave", "d"); err != nil || u.Len() != 3 {
		t.Errorf("after refused reloads: %v, %d users", err, u.Len())
	}
}

func TestUsersReloadIfChanged(t *testing.T) {
	p := writeUsers(t, "alice:{PLAIN}a\n")
	u, err := LoadUsers(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, changed, err := u.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("unchanged file: changed=%v err=%v", changed, err)
	}
	// Rename into place, as careful tools do: same size, new inode.
	tmp := p + ".new"
	os.WriteFile(tmp, []byte("bobby:{PLAIN}b\n"), 0o600)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	c, changed, err := u.ReloadIfChanged()
	if !changed || err != nil || !reflect.DeepEqual(c.Added, []string{"bobby"}) {
		t.Fatalf("renamed file: %+v changed=%v err=%v", c, changed, err)
	}
	os.WriteFile(p, []byte("broken\n"), 0o600)
	if _, changed, err := u.ReloadIfChanged(); !changed || err == nil {
		t.Fatalf("broken file: changed=%v err=%v", changed, err)
	}
	// A bad file is reported once, not on every poll.
	if _, changed, err := u.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("broken file polled again: changed=%v err=%v", changed, err)
	}
	if u.Verify("bobby", "b") != nil {
		t.Error("the last good users are gone")
	}
	// A removed file is reported once; the users stay until it is back.
	os.Remove(p)
	if _, changed, err := u.ReloadIfChanged(); !changed || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("removed file: changed=%v err=%v", changed, err)
	}
	if _, changed, err := u.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("removed file polled again: changed=%v err=%v", changed, err)
	}
	os.WriteFile(p, []byte("bobby:{PLAIN}b\ncarl:{PLAIN}c\n"), 0o600)
	if c, changed, err := u.ReloadIfChanged(); !changed || err != nil || c.Total != 2 {
		t.Fatalf("file back: %+v changed=%v err=%v", c, changed, err)
	}
}

// TestUsersReloadIfChangedSameTick: a same-size rewrite right after a
// load, within one tick of the file clock and so with the same stamp
// (set back here, as a coarse clock would leave it), is still picked up.
func TestUsersReloadIfChangedSameTick(t *testing.T) {
	p := writeUsers(t, "alice:{PLAIN}a\n")
	u, err := LoadUsers(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p, []byte("alice:{PLAIN}b\n"), 0o600)
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	c, changed, err := u.ReloadIfChanged()
	if !changed || err != nil || !reflect.DeepEqual(c.Changed, []string{"alice"}) {
		t.Fatalf("same-size rewrite: %+v changed=%v err=%v", c, changed, err)
	}
	if _, changed, err := u.ReloadIfChanged(); changed || err != nil {
		t.Fatalf("nothing new: changed=%v err=%v", changed, err)
	}
}

// TestUsersReloadUnderLogins is for -race: logins never see a torn set.
func TestUsersReloadUnderLogins(t *testing.T) {
	p := writeUsers(t, "alice:{PLAIN}a\n")
	u, err := LoadUsers(p)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := u.Verify("alice", "a"); err != nil {
					t.Errorf("alice: %v", err)
					return
				}
			}
		}()
	}
	for i := range 200 {
		os.WriteFile(p, []byte(fmt.Sprintf("alice:{PLAIN}a\nu%d:{PLAIN}x\n", i)), 0o600)
		if _, err := u.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

func TestZeroUsers(t *testing.T) {
	var u Users
	if err := u.Verify("alice", ""); !errors.Is(err, ErrBadCredentials) || u.Exists("alice") || u.Len() != 0 {
		t.Errorf("zero Users: %v", err)
	}
	if _, err := u.Reload(); err == nil {
		t.Error("zero Users reloaded")
	}
}
