// Package topologies boots every example topology, so none can rot.
package topologies

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/listeners/mupdate"
)

// boot runs DIR/run.sh start with its state in a temp dir, registers the
// stop, and returns the KEY=VALUE lines it printed.
func boot(t *testing.T, dir string) (map[string]string, string) {
	t.Helper()
	state := t.TempDir()
	run := func(arg string) ([]byte, error) {
		cmd := exec.Command("bash", filepath.Join(dir, "run.sh"), arg)
		cmd.Env = append(os.Environ(), "STATE="+state)
		return cmd.CombinedOutput()
	}
	t.Cleanup(func() {
		if out, err := run("stop"); err != nil {
			t.Errorf("%s stop: %v\n%s", dir, err, out)
		}
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(state, "*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, tail(string(b), 30))
			}
		}
	})
	out, err := run("start")
	if err != nil {
		t.Fatalf("%s start: %v\n%s", dir, err, out)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == strings.ToUpper(k) && !strings.Contains(k, " ") {
			env[k] = v
		}
	}
	return env, state
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// password reads a {PLAIN} password from a users file.
func password(t *testing.T, file, user string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if pw, ok := strings.CutPrefix(sc.Text(), user+":{PLAIN}"); ok {
			return pw
		}
	}
	t.Fatalf("no {PLAIN} password for %s in %s", user, file)
	return ""
}

func create(t *testing.T, addr, user, pass, mailbox string) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(mailbox, nil).Wait(); err != nil {
		t.Fatalf("CREATE %s at %s: %v", mailbox, addr, err)
	}
}

// findAt polls an MUPDATE server until it knows mailbox.
func findAt(t *testing.T, addr, user, pass, mailbox string) *mupdate.Record {
	t.Helper()
	c, err := mupdate.Dial(t.Context(), addr, mupdate.ClientConfig{Username: user, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec, err := c.Find(mailbox)
		if err != nil {
			t.Fatal(err)
		}
		if rec != nil {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared at %s", mailbox, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAllInOne(t *testing.T) {
	env, _ := boot(t, "all-in-one")
	addresses(t, env, map[string][]string{"AIO": {"MUPDATE", "IMAP", "POP3", "LMTP", "ADMIN"}})
	pw := password(t, env["USERS"], "admin")
	create(t, env["IMAP"], "admin", pw, "user.alice")
	rec := findAt(t, env["MUPDATE"], "admin", pw, "user.alice")
	if rec.Kind != "MAILBOX" || !strings.HasSuffix(rec.Location, "!default") {
		t.Errorf("user.alice on the master: %+v", rec)
	}
}

// addresses checks that run.sh printed each node's listed addresses and
// that something answers on each.
func addresses(t *testing.T, env map[string]string, nodes map[string][]string) {
	t.Helper()
	for node, keys := range nodes {
		for _, k := range keys {
			addr := env[node+"_"+k]
			if addr == "" {
				t.Errorf("no %s_%s printed", node, k)
				continue
			}
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Errorf("%s_%s=%s: %v", node, k, addr, err)
				continue
			}
			c.Close()
		}
	}
}

func TestMurder(t *testing.T) {
	env, _ := boot(t, "murder")
	mail := []string{"IMAP", "POP3", "LMTP", "ADMIN", "GOSSIP"}
	addresses(t, env, map[string][]string{
		"MASTER": {"MUPDATE", "ADMIN", "GOSSIP"},
		"BE1":    mail, "BE2": mail,
		"FE1": append(mail, "MUPDATE"), "FE2": append(mail, "MUPDATE"),
	})
	create(t, env["BE1_IMAP"], "admin", "adminpw", "user.alice")
	create(t, env["BE2_IMAP"], "admin", "adminpw", "user.bob")
	if rec := findAt(t, env["MASTER"], "admin", "adminpw", "user.bob"); rec.Location != "be2!default" {
		t.Errorf("user.bob on the master: %+v", rec)
	}
	// Either user, on either frontend, reaches their INBOX on their backend.
	for _, fe := range []string{env["FE1_IMAP"], env["FE2_IMAP"]} {
		for _, u := range []string{"alice", "bob"} {
			selectVia(t, fe, u, u+"pw", "INBOX")
		}
	}
}

// selectVia logs in and selects mailbox, retrying while the frontend's
// replica catches up.
func selectVia(t *testing.T, addr, user, pass, mailbox string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := imapclient.DialInsecure(addr, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Login(user, pass).Wait()
		if err == nil {
			_, err = c.Select(mailbox, nil).Wait()
		}
		c.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s SELECT %s at %s: %v", user, mailbox, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestMixed(t *testing.T) {
	cyrustest.Require(t)
	env, _ := boot(t, "mixed")
	addresses(t, env, map[string][]string{
		"MASTER": {"MUPDATE", "ADMIN"}, "FE": {"IMAP", "POP3", "LMTP", "MUPDATE", "ADMIN"},
	})
	// carol is only in her Cyrus backend's sasldb.
	for _, u := range []string{"alice", "bob", "carol"} {
		selectVia(t, env["FE_IMAP"], u, u+"pw", "INBOX")
	}
	if rec := findAt(t, env["MASTER"], "admin", "adminpw", "user.bob"); rec.Location != env["CY2_IMAP"]+"!default" {
		t.Errorf("user.bob on the master: %+v (cy2 is %s)", rec, env["CY2_IMAP"])
	}
}
