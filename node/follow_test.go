package node

import (
	"testing"
	"time"

	"github.com/rookery/rookery/actors/membership"
)

// TestSuspicionKeepsMaster: gossip suspecting or losing the master does not
// move a node off it (its MUPDATE connection decides); another master
// named by gossip does.
func TestSuspicionKeepsMaster(t *testing.T) {
	c := &cluster{members: map[string]membership.Member{}}
	member := func(name, addr string, st membership.State, since time.Time) membership.Member {
		return membership.Member{Name: name, State: st, Since: since,
			Meta: membership.Meta{Roles: []string{string(RoleMaster)}, MUPDATE: addr}}
	}
	t0 := time.Now()
	steps := []struct {
		what    string
		m       membership.Member
		master  string
		changed bool
	}{
		{"master joins", member("m1", "127.0.0.1:3905", membership.Alive, t0), "127.0.0.1:3905", true},
		{"master suspected", member("m1", "127.0.0.1:3905", membership.Failed, t0.Add(time.Second)), "127.0.0.1:3905", false},
		{"master alive again", member("m1", "127.0.0.1:3905", membership.Alive, t0.Add(2*time.Second)), "127.0.0.1:3905", false},
		{"master left", member("m1", "127.0.0.1:3905", membership.Left, t0.Add(3*time.Second)), "127.0.0.1:3905", false},
		{"another master", member("m2", "127.0.0.2:3905", membership.Alive, t0.Add(4*time.Second)), "127.0.0.2:3905", true},
	}
	for _, s := range steps {
		master, changed := c.observe(s.m)
		if master != s.master || changed != s.changed {
			t.Fatalf("%s: follow %q (changed %v), want %q (changed %v)", s.what, master, changed, s.master, s.changed)
		}
	}
}

// TestFailedStorePassesOverMaster: a master announcing a failed store is
// left for another healthy one; a full disk (temporary) is no reason to
// move, and with no healthy master the node stays where it is.
func TestFailedStorePassesOverMaster(t *testing.T) {
	c := &cluster{members: map[string]membership.Member{}}
	t0 := time.Now()
	member := func(name, addr, storage string, since time.Duration) membership.Member {
		return membership.Member{Name: name, State: membership.Alive, Since: t0.Add(since),
			Meta: membership.Meta{Roles: []string{string(RoleMaster)}, MUPDATE: addr, Storage: storage}}
	}
	steps := []struct {
		what   string
		m      membership.Member
		master string
	}{
		{"old master", member("m1", "127.0.0.1:3905", "", 0), "127.0.0.1:3905"},
		{"new master, store failed", member("m2", "127.0.0.2:3905", "failed", time.Second), "127.0.0.1:3905"},
		{"old master, disk full", member("m1", "127.0.0.1:3905", "full", 2*time.Second), "127.0.0.1:3905"},
		{"old master, store failed", member("m1", "127.0.0.1:3905", "failed", 3*time.Second), "127.0.0.1:3905"},
		{"new master restarted", member("m2", "127.0.0.2:3905", "", 4*time.Second), "127.0.0.2:3905"},
	}
	for _, s := range steps {
		if master, _ := c.observe(s.m); master != s.master {
			t.Fatalf("%s: follow %q, want %q", s.what, master, s.master)
		}
	}
}
