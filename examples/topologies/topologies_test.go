// Package topologies boots every example topology, so none can rot.
package topologies

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

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
	pw := password(t, env["USERS"], "admin")
	create(t, env["IMAP"], "admin", pw, "user.alice")
	rec := findAt(t, env["MUPDATE"], "admin", pw, "user.alice")
	if rec.Kind != "MAILBOX" || !strings.HasSuffix(rec.Location, "!default") {
		t.Errorf("user.alice on the master: %+v", rec)
	}
}

func TestCluster(t *testing.T) {
	env, _ := boot(t, "cluster")
	create(t, env["BE1_IMAP"], "admin", "adminpw", "user.alice")
	create(t, env["BE2_IMAP"], "admin", "adminpw", "user.bob")
	if rec := findAt(t, env["REPLICA"], "admin", "adminpw", "user.alice"); rec.Location != "be1!default" {
		t.Errorf("user.alice on the replica: %+v", rec)
	}
	if rec := findAt(t, env["REPLICA"], "admin", "adminpw", "user.bob"); rec.Location != "be2!default" {
		t.Errorf("user.bob on the replica: %+v", rec)
	}
}
