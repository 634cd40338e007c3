package node

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/rookery/rookery/actors/pusher"
	"github.com/rookery/rookery/store"
)

// backendUsers writes a users file for backend tests: admin, the
// harness's mupdate and proxy users, and alice.
func backendUsers(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "users")
	content := "admin:{PLAIN}secret\nmupdate:{PLAIN}mupdatepw\nproxy:{PLAIN}proxypw\nalice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\n"
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// backendNode starts a backend pushing to master (host:port), or a
// master+backend node when master is "".
func backendNode(t *testing.T, dir, name, master string, mutate ...func(*Config)) *Node {
	t.Helper()
	users := backendUsers(t)
	return testNode(t, dir, append([]func(*Config){func(c *Config) {
		c.ServerName = name
		c.Roles = []Role{RoleBackend}
		if master == "" {
			c.Roles = append(c.Roles, RoleMaster)
		} else {
			c.MUPDATEListen = ""
		}
		c.IMAPListen = "127.0.0.1:0"
		c.MUPDATEServer = master
		c.MUPDATEAuthname = "mupdate"
		c.MUPDATEPassword = "mupdatepw"
		c.UsersFile = users
		c.Admins = []string{"admin", "mupdate"}
		c.ProxyServers = []string{"proxy"}
		c.ClientTimeout = 2 * time.Second
	}}, mutate...)...)
}

func imapLogin(t *testing.T, addr, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

// TestBackendPushesToItsMaster: the all-in-one master+backend registers
// every mailbox change on its own master, over MUPDATE like any backend.
func TestBackendPushesToItsMaster(t *testing.T) {
	n := backendNode(t, t.TempDir(), "be1.test", "")
	c := imapLogin(t, n.IMAPAddr(), "admin", "secret")
	for _, mb := range []string{"user.alice", "user.alice.work", "shared"} {
		if err := c.Create(mb, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", mb, err)
		}
		waitEntry(t, n, mb, activeAt("be1.test!default"))
	}
	if err := c.Rename("user.alice.work", "user.alice.play", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, n, "user.alice.work", gone)
	waitEntry(t, n, "user.alice.play", activeAt("be1.test!default"))
	if err := c.Delete("shared").Wait(); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, n, "shared", gone)
}

// TestBackendRefusesWithoutMaster: while the master is unreachable,
// mailbox changes get a clear NO and nothing changes locally; once it is
// back the start-up push repairs what it lacks.
func TestBackendRefusesWithoutMaster(t *testing.T) {
	m := testNode(t, t.TempDir(), func(c *Config) {
		c.UsersFile = backendUsers(t)
		c.Admins = []string{"admin", "mupdate"}
	})
	addr := m.MUPDATEAddr()
	dir := t.TempDir()
	b := backendNode(t, dir, "be1.test", addr)
	c := imapLogin(t, b.IMAPAddr(), "admin", "secret")
	if err := c.Create("user.alice", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, m, "user.alice", activeAt("be1.test!default"))

	m.Close()
	err := c.Create("user.bob", nil).Wait()
	if err == nil || !strings.Contains(err.Error(), "no connection to server") {
		t.Fatalf("CREATE with the master down: %v", err)
	}
	if _, ok, _ := b.Mail().Mailbox("user.bob"); ok {
		t.Fatal("user.bob was created locally although the master was down")
	}
	if err := c.Delete("user.alice").Wait(); err == nil {
		t.Fatal("DELETE succeeded with the master down")
	}

	// A new, empty master at the same address: the pusher repopulates it.
	m2 := testNode(t, t.TempDir(), func(c *Config) {
		c.MUPDATEListen = addr
		c.UsersFile = backendUsers(t)
		c.Admins = []string{"admin", "mupdate"}
	})
	waitEntry(t, m2, "user.alice", activeAt("be1.test!default"))
	if err := c.Create("user.bob", nil).Wait(); err != nil {
		t.Fatalf("CREATE after the master returned: %v", err)
	}
	waitEntry(t, m2, "user.bob", activeAt("be1.test!default"))
}

// TestBackendConflict: two backends claim one name; the first keeps it,
// the master's entry does not flap, and both sides log the conflict.
func TestBackendConflict(t *testing.T) {
	m := testNode(t, t.TempDir(), func(c *Config) {
		c.UsersFile = backendUsers(t)
		c.Admins = []string{"admin", "mupdate"}
	})
	b1 := backendNode(t, t.TempDir(), "be1.test", m.MUPDATEAddr())
	b2dir := t.TempDir()
	b2 := backendNode(t, b2dir, "be2.test", m.MUPDATEAddr())

	c1 := imapLogin(t, b1.IMAPAddr(), "admin", "secret")
	if err := c1.Create("shared.team", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	waitEntry(t, m, "shared.team", activeAt("be1.test!default"))
	c2 := imapLogin(t, b2.IMAPAddr(), "admin", "secret")
	err := c2.Create("shared.team", nil).Wait()
	if err == nil || !strings.Contains(err.Error(), "unable to reserve") {
		t.Fatalf("second claim: %v", err)
	}
	if _, ok, _ := b2.Mail().Mailbox("shared.team"); ok {
		t.Fatal("the refused mailbox exists on be2")
	}

	// be2 gets the same name locally behind the master's back (as after a
	// restore); its start-up push reports it and does not take it over.
	b2.Close()
	b2 = backendNodeWithMail(t, b2dir, "be2.test", m.MUPDATEAddr(), "shared.team")
	st := waitPush(t, b2)
	if len(st.Conflicts) != 1 || st.Conflicts[0] != "shared.team" {
		t.Errorf("be2 conflicts: %+v", st)
	}
	e, _, _ := m.Store().Get("shared.team")
	if e.Location != "be1.test!default" {
		t.Errorf("master entry moved to %s", e.Location)
	}
	if seq := m.Store().LastSeq(); seq > 0 {
		var moved bool
		m.Store().ChangesSince(0, 0, func(c store.Change) error {
			moved = moved || (c.Name == "shared.team" && c.New != nil && c.New.Server() == "be2.test")
			return nil
		})
		if moved {
			t.Error("the master's entry flapped to be2")
		}
	}
}

// backendNodeWithMail creates local mailboxes in a backend's store before
// starting it, as if they had been restored from a backup.
func backendNodeWithMail(t *testing.T, dir, name, master string, mailboxes ...string) *Node {
	t.Helper()
	n := backendNode(t, dir, name+".tmp", "")
	for _, mb := range mailboxes {
		if _, err := n.Mail().CreateMailbox(mb, "anyone\tlrs\t", ""); err != nil {
			t.Fatal(err)
		}
	}
	n.Close()
	// The temporary node registered the mailboxes on its own master;
	// remove that store so only the mail remains.
	os.RemoveAll(filepath.Join(dir, "mailboxes"))
	return backendNode(t, dir, name, master)
}

func waitPush(t *testing.T, n *Node) pusher.Status {
	t.Helper()
	var st pusher.Status
	waitFor(t, "the start-up push", func() bool {
		st, _ = n.PusherStatus()
		return !st.LastPush.IsZero()
	})
	return st
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBackendWithWedgedMaster: a master that authenticates and then says
// nothing neither wedges the backend's mailbox changes (they fail after
// the pusher's timeout) nor its shutdown.
func TestBackendWithWedgedMaster(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("* AUTH \"PLAIN\"\r\n* OK MUPDATE \"m\" \"x\" \"1\" \"(master)\"\r\n"))
				buf := make([]byte, 4096)
				c.Read(buf) // AUTHENTICATE
				c.Write([]byte("A01 OK \"Authenticated\"\r\n"))
				for { // then silence
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	n := backendNode(t, t.TempDir(), "be1.test", ln.Addr().String())
	waitFor(t, "the pusher to connect", func() bool {
		st, _ := n.PusherStatus()
		return st.Connected
	})
	done := make(chan struct{})
	go func() { n.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a silent master")
	}
}
