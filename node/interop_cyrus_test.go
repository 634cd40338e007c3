package node

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/store"
)

// cyrusMaster starts a Rookery master that Cyrus peers from the harness can
// use: its users file has the harness's mupdate user as an admin.
func cyrusMaster(t *testing.T, dir string, mutate ...func(*Config)) *Node {
	t.Helper()
	users := filepath.Join(t.TempDir(), "users")
	content := "admin:{PLAIN}secret\n" + cyrustest.MupdateUser + ":{PLAIN}" + cyrustest.MupdatePass + "\n"
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return testNode(t, dir, append([]func(*Config){func(c *Config) {
		c.UsersFile = users
		c.Admins = []string{"admin", cyrustest.MupdateUser}
	}}, mutate...)...)
}

// waitEntry polls the master's list until check accepts the entry for
// name (found reports whether it exists).
func waitEntry(t *testing.T, n *Node, name string, check func(e store.Entry, found bool) bool) store.Entry {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, found, err := n.Store().Get(name)
		if err != nil {
			t.Fatal(err)
		}
		if check(e, found) {
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailbox %s: condition not met; last state found=%v %+v", name, found, e)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func activeAt(loc string) func(store.Entry, bool) bool {
	return func(e store.Entry, found bool) bool { return found && e.Kind == store.Active && e.Location == loc }
}

func gone(_ store.Entry, found bool) bool { return !found }

// TestCyrusBackendPushesToRookeryMaster: a real Cyrus 3.6 backend uses a
// Rookery master for its start-up ctl_mboxlist -m and for every mailbox
// change done over IMAP.
func TestCyrusBackendPushesToRookeryMaster(t *testing.T) {
	cyrustest.Require(t)
	n := cyrusMaster(t, t.TempDir())

	// A stale entry the backend does not have, held for its servername:
	// ctl_mboxlist -m must remove it; an entry of another server stays.
	be := cyrustest.Start(t, cyrustest.RoleBackend, cyrustest.Options{
		Master:   n.MUPDATEAddr(),
		IMAPPort: cyrustest.FreePort(t),
	})
	loc := be.ServerName + "!default"

	imap := cyrustest.DialIMAP(t, be.IMAPAddr(), cyrustest.AdminUser, cyrustest.AdminPass)
	// Names whose dbname order differs from byte order, so that the
	// restart below exercises ctl_mboxlist -m's ordered merge.
	for _, mb := range []string{"user.alice", "user.alice.sub", "user.alice-x", "user.alicex", "shared"} {
		if _, _, err := imap.Cmd("CREATE %s", mb); err != nil {
			t.Fatal(err)
		}
		waitEntry(t, n, mb, activeAt(loc))
	}
	e := waitEntry(t, n, "user.alice", activeAt(loc))
	if !strings.Contains(e.ACL, "alice\t") {
		t.Errorf("user.alice ACL %q lacks the owner", e.ACL)
	}

	if _, _, err := imap.Cmd("RENAME user.alice.sub user.alice.work"); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, n, "user.alice.sub", gone)
	// Cyrus 3.6 sends an empty partition on same-server renames.
	waitEntry(t, n, "user.alice.work", func(e store.Entry, found bool) bool {
		return found && e.Kind == store.Active && e.Server() == be.ServerName
	})

	if _, _, err := imap.Cmd("SETACL shared anyone lr"); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, n, "shared", func(e store.Entry, found bool) bool {
		return found && strings.Contains(e.ACL, "anyone\tlr\t")
	})

	// Cyrus admins hold only lookup and admin rights on users' mailboxes.
	if _, _, err := imap.Cmd("SETACL user.alice-x admin lrswipkxtecda"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := imap.Cmd("DELETE user.alice-x"); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, n, "user.alice-x", gone)
	// delete_mode: delayed keeps it registered under DELETED.
	var deleted bool
	snap := n.Store().Snapshot()
	snap.Scan(func(e store.Entry) error {
		deleted = deleted || strings.HasPrefix(e.Name, "DELETED.user.alice-x.")
		return nil
	})
	snap.Close()
	if !deleted {
		t.Error("the delayed delete did not register DELETED.user.alice-x.*")
	}
	imap.Close()

	// A stale entry for this backend and one of another server: the
	// backend's restart runs ctl_mboxlist -m, which must delete the first,
	// leave the second, repair user.alice.work's empty partition, and not
	// abort on the order of our LIST.
	c := dialClient(t, n)
	if err := c.Activate("user.ghost", loc, "ghost\tlrswipkxtecdan\t"); err != nil {
		t.Fatal(err)
	}
	if err := c.Activate("user.other", "elsewhere!default", ""); err != nil {
		t.Fatal(err)
	}
	c.Close()
	be.Restart(t)
	waitEntry(t, n, "user.ghost", gone)
	waitEntry(t, n, "user.other", activeAt("elsewhere!default"))
	waitEntry(t, n, "user.alice.work", activeAt(loc))
	for _, mb := range []string{"user.alice", "user.alicex", "shared"} {
		waitEntry(t, n, mb, activeAt(loc))
	}
	if log := be.Syslog(); strings.Contains(log, "mupdate said not us") {
		t.Errorf("ctl_mboxlist -m disagreed with our LIST order:\n%s", log)
	}
}

// TestCyrusFrontendFollowsRookeryMaster: a real Cyrus frontend's mupdate
// slave follows the Rookery master, and a user logging in there sees and
// selects a mailbox on a real Cyrus backend registered in our master.
func TestCyrusFrontendFollowsRookeryMaster(t *testing.T) {
	cyrustest.Require(t)
	n := cyrusMaster(t, t.TempDir())
	be := cyrustest.Start(t, cyrustest.RoleBackend, cyrustest.Options{
		Master:   n.MUPDATEAddr(),
		IMAPPort: cyrustest.FreePort(t),
	})
	be.AddUser(t, "alice", "alicepw", true)
	waitEntry(t, n, "user.alice", activeAt(be.ServerName+"!default"))

	fe := cyrustest.Start(t, cyrustest.RoleFrontend, cyrustest.Options{
		Master:   n.MUPDATEAddr(),
		IMAPPort: cyrustest.FreePort(t),
		Conf:     map[string]string{"mupdate_retry_delay": "2"},
	})
	fe.AddUser(t, "alice", "alicepw", false)

	// Created after the frontend's initial sync: reaches it by the stream.
	admin := cyrustest.DialIMAP(t, be.IMAPAddr(), cyrustest.AdminUser, cyrustest.AdminPass)
	if _, _, err := admin.Cmd("CREATE user.alice.later"); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	waitEntry(t, n, "user.alice.later", activeAt(be.ServerName+"!default"))
	fe.Sync(t)

	imap := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
	untagged, _, err := imap.Cmd(`LIST "" "*"`)
	if err != nil {
		t.Fatal(err)
	}
	list := strings.Join(untagged, "\n")
	for _, want := range []string{"INBOX", "INBOX.later"} {
		if !strings.Contains(list, want) {
			t.Errorf("LIST on the frontend lacks %s:\n%s", want, list)
		}
	}
	if _, _, err := imap.Cmd("SELECT INBOX.later"); err != nil {
		t.Fatalf("SELECT through the Cyrus frontend: %v", err)
	}
	if _, _, err := imap.Cmd("APPEND INBOX {20+}\r\nSubject: hi\r\n\r\nhello"); err != nil {
		t.Fatalf("APPEND through the Cyrus frontend: %v", err)
	}
}

// TestCyrusMupdatetest: Cyrus's own mupdatetest authenticates to the
// Rookery master and runs a command.
func TestCyrusMupdatetest(t *testing.T) {
	cyrustest.Require(t)
	n := cyrusMaster(t, t.TempDir())
	host, port, _ := strings.Cut(n.MUPDATEAddr(), ":")
	cmd := exec.Command("/usr/lib/cyrus/bin/mupdatetest", "-m", "PLAIN",
		"-a", cyrustest.MupdateUser, "-w", cyrustest.MupdatePass, "-p", port, host)
	cmd.Stdin = strings.NewReader("t1 NOOP\r\nt2 LOGOUT\r\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mupdatetest: %v\n%s", err, out)
	}
	for _, want := range []string{"Authenticated", `t1 OK "Noop done"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("mupdatetest output lacks %q:\n%s", want, out)
		}
	}
}

// TestRookeryReplicaFollowsCyrusMaster: a Rookery replica follows a real
// Cyrus mupdate -m, including changes a real Cyrus backend pushes there and
// deletes; a real Cyrus frontend then follows the Rookery replica.
func TestRookeryReplicaFollowsCyrusMaster(t *testing.T) {
	cyrustest.Require(t)
	cm := cyrustest.Start(t, cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: cyrustest.FreePort(t)})
	be := cyrustest.Start(t, cyrustest.RoleBackend, cyrustest.Options{
		Master:   cm.MupdateAddr(),
		IMAPPort: cyrustest.FreePort(t),
	})
	be.AddUser(t, "alice", "alicepw", true)
	loc := be.ServerName + "!default"

	users := filepath.Join(t.TempDir(), "users")
	content := "admin:{PLAIN}secret\n" + cyrustest.MupdateUser + ":{PLAIN}" + cyrustest.MupdatePass + "\n"
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	r := testNode(t, t.TempDir(), func(c *Config) {
		c.Roles = []Role{RoleReplica}
		c.MUPDATEServer = cm.MupdateAddr()
		c.MUPDATEAuthname = cyrustest.MupdateUser
		c.MUPDATEPassword = cyrustest.MupdatePass
		c.MUPDATERetryDelay = time.Second
		c.UsersFile = users
		c.Admins = []string{"admin", cyrustest.MupdateUser}
	})
	waitEntry(t, r, "user.alice", activeAt(loc))

	// Changes pushed by the Cyrus backend reach the replica through the
	// Cyrus master's stream (within its 5 s tick).
	imap := cyrustest.DialIMAP(t, be.IMAPAddr(), cyrustest.AdminUser, cyrustest.AdminPass)
	for _, cmd := range []string{"CREATE user.alice.a", "CREATE user.alice.b", "RENAME user.alice.a user.alice.c", "SETACL user.alice.b anyone lr"} {
		if _, _, err := imap.Cmd("%s", cmd); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	imap.Close()
	waitEntry(t, r, "user.alice.a", gone)
	waitEntry(t, r, "user.alice.c", func(e store.Entry, found bool) bool { return found && e.Server() == be.ServerName })
	waitEntry(t, r, "user.alice.b", func(e store.Entry, found bool) bool {
		return found && strings.Contains(e.ACL, "anyone\tlr\t")
	})
	if st, _ := r.ReplicaStatus(); st.Rookery || !st.Connected {
		t.Errorf("status while following Cyrus: %+v", st)
	}

	// A real Cyrus frontend follows the Rookery replica (read-only MUPDATE).
	fe := cyrustest.Start(t, cyrustest.RoleFrontend, cyrustest.Options{
		Master:   r.MUPDATEAddr(),
		IMAPPort: cyrustest.FreePort(t),
		Conf:     map[string]string{"mupdate_retry_delay": "2"},
	})
	fe.AddUser(t, "alice", "alicepw", false)
	fe.Sync(t)
	c := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
	untagged, _, err := c.Cmd(`LIST "" "*"`)
	if err != nil {
		t.Fatal(err)
	}
	list := strings.Join(untagged, "\n")
	for _, want := range []string{"INBOX", "INBOX.b", "INBOX.c"} {
		if !strings.Contains(list, want) {
			t.Errorf("LIST on the Cyrus frontend behind the Rookery replica lacks %s:\n%s", want, list)
		}
	}
	if _, _, err := c.Cmd("SELECT INBOX.b"); err != nil {
		t.Errorf("SELECT: %v", err)
	}
}

// TestRookeryBackendWithCyrusMasterAndFrontend: a Rookery backend pushes to
// a real Cyrus mupdate -m (and is refused while it is down), and a real
// Cyrus frontend following that master proxies a user to the Rookery
// backend: login, select, append, fetch.
func TestRookeryBackendWithCyrusMasterAndFrontend(t *testing.T) {
	cyrustest.Require(t)
	cm := cyrustest.Start(t, cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: cyrustest.FreePort(t)})
	port := cyrustest.FreePort(t)
	name := fmt.Sprintf("127.0.0.1:%d", port)
	b := backendNode(t, t.TempDir(), name, cm.MupdateAddr(), func(c *Config) { c.IMAPListen = name })

	mc, err := mupdate.Dial(t.Context(), cm.MupdateAddr(), mupdate.ClientConfig{Username: cyrustest.MupdateUser, Password: cyrustest.MupdatePass})
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	waitFind := func(mb string, want func(*mupdate.Record) bool) {
		t.Helper()
		waitFor(t, "FIND "+mb+" on the Cyrus master", func() bool {
			rec, err := mc.Find(mb)
			return err == nil && want(rec)
		})
	}
	here := func(r *mupdate.Record) bool { return r != nil && r.Kind == "MAILBOX" && r.Location == name+"!default" }
	none := func(r *mupdate.Record) bool { return r == nil }

	c := imapLogin(t, b.IMAPAddr(), "admin", "secret")
	for _, mb := range []string{"user.alice", "user.alice.work"} {
		if err := c.Create(mb, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", mb, err)
		}
		waitFind(mb, here)
	}
	if err := c.Rename("user.alice.work", "user.alice.play", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	waitFind("user.alice.work", none)
	waitFind("user.alice.play", here)
	if err := c.Delete("user.alice.play").Wait(); err != nil {
		t.Fatal(err)
	}
	waitFind("user.alice.play", none)

	// Cyrus master down: refused, nothing changes here.
	mc.Close()
	if err := cm.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := c.Create("user.bob", nil).Wait(); err == nil || !strings.Contains(err.Error(), "no connection to server") {
		t.Fatalf("CREATE with the Cyrus master down: %v", err)
	}
	if _, ok, _ := b.Mail().Mailbox("user.bob"); ok {
		t.Fatal("user.bob exists locally although the master was down")
	}
	cm.Restart(t)
	mc, err = mupdate.Dial(t.Context(), cm.MupdateAddr(), mupdate.ClientConfig{Username: cyrustest.MupdateUser, Password: cyrustest.MupdatePass})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "CREATE after the Cyrus master returned", func() bool { return c.Create("user.bob", nil).Wait() == nil })
	waitFind("user.bob", here)

	// A real Cyrus frontend proxies alice to the Rookery backend.
	fe := cyrustest.Start(t, cyrustest.RoleFrontend, cyrustest.Options{
		Master:   cm.MupdateAddr(),
		IMAPPort: cyrustest.FreePort(t),
		Conf:     map[string]string{"mupdate_retry_delay": "2"},
	})
	fe.AddUser(t, "alice", "alicepw", false)
	fe.Sync(t)
	u := cyrustest.DialIMAP(t, fe.IMAPAddr(), "alice", "alicepw")
	if _, _, err := u.Cmd("SELECT INBOX"); err != nil {
		t.Fatalf("SELECT through the Cyrus frontend: %v", err)
	}
	if _, _, err := u.Cmd("APPEND INBOX {33+}\r\nSubject: via cyrus\r\n\r\nhello rook"); err != nil {
		t.Fatalf("APPEND through the Cyrus frontend: %v", err)
	}
	if _, _, err := u.Cmd("NOOP"); err != nil {
		t.Fatal(err)
	}
	untagged, _, err := u.Cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT])")
	if err != nil {
		t.Fatalf("FETCH through the Cyrus frontend: %v", err)
	}
	got := strings.Join(untagged, "\n")
	if !strings.Contains(got, "Subject: via cyrus") || !strings.Contains(got, "hello rook") {
		t.Errorf("FETCH through the Cyrus frontend: %q", got)
	}
	// The message is in the Rookery backend's store.
	mb, ok, _ := b.Mail().Mailbox("user.alice")
	if !ok || mb.Exists != 1 {
		t.Errorf("user.alice on the Rookery backend: %+v", mb)
	}
}

// TestRookeryReplicaResyncsFromCyrusMaster: a replica that was away
// reloads a real Cyrus master's dump (Cyrus has no change log to resume
// from) and writes only what changed meanwhile, also where list order and
// byte order disagree ("x.z" sorts before "x-y" in Cyrus's dbname order).
func TestRookeryReplicaResyncsFromCyrusMaster(t *testing.T) {
	cyrustest.Require(t)
	cm := cyrustest.Start(t, cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: cyrustest.FreePort(t)})
	be := cyrustest.Start(t, cyrustest.RoleBackend, cyrustest.Options{
		Master:   cm.MupdateAddr(),
		IMAPPort: cyrustest.FreePort(t),
	})
	be.AddUser(t, "alice", "alicepw", true)
	imap := cyrustest.DialIMAP(t, be.IMAPAddr(), cyrustest.AdminUser, cyrustest.AdminPass)
	defer imap.Close()
	do := func(cmds ...string) {
		t.Helper()
		for _, cmd := range cmds {
			if _, _, err := imap.Cmd("%s", cmd); err != nil {
				t.Fatalf("%s: %v", cmd, err)
			}
		}
	}
	do("CREATE user.alice.x-y", "CREATE user.alice.x.z", "CREATE user.alice.old")

	users := filepath.Join(t.TempDir(), "users")
	content := "admin:{PLAIN}secret\n" + cyrustest.MupdateUser + ":{PLAIN}" + cyrustest.MupdatePass + "\n"
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	replica := func() *Node {
		return testNode(t, dir, func(c *Config) {
			c.Roles = []Role{RoleReplica}
			c.MUPDATEServer = cm.MupdateAddr()
			c.MUPDATEAuthname = cyrustest.MupdateUser
			c.MUPDATEPassword = cyrustest.MupdatePass
			c.MUPDATERetryDelay = time.Second
			c.UsersFile = users
			c.Admins = []string{"admin", cyrustest.MupdateUser}
		})
	}
	r := replica()
	waitEntry(t, r, "user.alice.old", activeAt(be.ServerName+"!default"))
	waitEntry(t, r, "user.alice.x.z", activeAt(be.ServerName+"!default"))
	// Read before the restart: the resync may be done before a read
	// after it.
	seq := r.Store().LastSeq()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	do("SETACL user.alice.old "+cyrustest.AdminUser+" x", "DELETE user.alice.old", "CREATE user.alice.new", "SETACL user.alice.x-y bob lr")
	r = replica()
	waitEntry(t, r, "user.alice.new", activeAt(be.ServerName+"!default"))
	waitEntry(t, r, "user.alice.old", gone)
	waitEntry(t, r, "user.alice.x-y", func(e store.Entry, found bool) bool { return found && strings.Contains(e.ACL, "bob\tlr\t") })

	var changed []string
	if _, err := r.Store().ChangesSince(seq, 0, func(c store.Change) error {
		if !strings.HasPrefix(c.Name, "DELETED.") { // Cyrus's delayed delete keeps the old one there
			changed = append(changed, c.Name)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(changed)
	if want := []string{"user.alice.new", "user.alice.old", "user.alice.x-y"}; !slices.Equal(changed, want) {
		t.Errorf("the resync wrote changes to %q, want only %q", changed, want)
	}
}
