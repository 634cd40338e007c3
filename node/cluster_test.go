package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rookery/rookery/actors/membership"
	"github.com/rookery/rookery/listeners/admin"
	"github.com/rookery/rookery/store"
)

// clusterNode starts a node with gossip on loopback, joining join.
func clusterNode(t *testing.T, name string, roles []Role, key string, join ...string) *Node {
	t.Helper()
	return clusterNodeIn(t, t.TempDir(), name, roles, key, join...)
}

// clusterNodeIn is clusterNode with its data in dir.
func clusterNodeIn(t *testing.T, dir, name string, roles []Role, key string, join ...string) *Node {
	t.Helper()
	users := backendUsers(t)
	return testNode(t, dir, func(c *Config) {
		c.ServerName = name
		c.Roles = roles
		c.UsersFile = users
		c.Admins = []string{"admin", "mupdate"}
		c.ProxyServers = []string{"proxy"}
		c.MUPDATEAuthname, c.MUPDATEPassword = "mupdate", "mupdatepw"
		c.IMAPListen = "127.0.0.1:0"
		c.GossipListen = "127.0.0.1:0"
		c.GossipPreset = "local"
		c.Join = join
		c.ClusterKeyFile = key
		c.MUPDATERetryDelay = 300 * time.Millisecond
	})
}

func keyFile(t *testing.T, hex string) string {
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(hex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestClusterAssemblesItself: identical nodes with different roles and
// only a join address find the master; a backend added later is used
// without any other change; a new master elsewhere is followed.
func TestClusterAssemblesItself(t *testing.T) {
	key := keyFile(t, "000102030405060708090a0b0c0d0e0f")
	m := clusterNode(t, "master.test", []Role{RoleMaster}, key)
	seed := m.GossipAddr()
	b1 := clusterNode(t, "be1.test", []Role{RoleBackend}, key, seed)
	b2 := clusterNode(t, "be2.test", []Role{RoleBackend}, key, seed)
	r1 := clusterNode(t, "r1.test", []Role{RoleReplica}, key, seed)

	for _, b := range []*Node{b1, b2} {
		c := imapLogin(t, b.IMAPAddr(), "admin", "secret")
		mb := "user." + strings.TrimSuffix(b.cfg.ServerName, ".test")
		waitFor(t, "CREATE on "+b.cfg.ServerName, func() bool { return c.Create(mb, nil).Wait() == nil })
		waitEntry(t, m, mb, activeAt(b.cfg.ServerName+"!default"))
		waitEntry(t, r1, mb, activeAt(b.cfg.ServerName+"!default"))
	}

	// A sixth node, a backend: nothing else changes.
	b3 := clusterNode(t, "be3.test", []Role{RoleBackend}, key, b1.GossipAddr())
	c3 := imapLogin(t, b3.IMAPAddr(), "admin", "secret")
	waitFor(t, "CREATE on be3", func() bool { return c3.Create("user.be3", nil).Wait() == nil })
	waitEntry(t, r1, "user.be3", activeAt("be3.test!default"))

	// The operator's view: /status lists every member, /where finds a
	// mailbox on each backend, /metrics parses.
	var st admin.Status
	waitFor(t, "every member on the master's /status", func() bool {
		getJSON(t, "http://"+m.AdminAddr()+"/status?format=json", &st)
		return len(st.Members) == 5
	})
	for _, mem := range st.Members {
		if mem.Health != "alive" {
			t.Errorf("/status member %+v", mem)
		}
	}
	// /where on the replica finds be3 by its gossip.
	waitFor(t, "every member alive on the replica", func() bool { return len(alive(r1)) == 5 })
	for _, b := range []*Node{b1, b2, b3} {
		mb := "user." + strings.TrimSuffix(b.cfg.ServerName, ".test")
		var w admin.Where
		getJSON(t, "http://"+r1.AdminAddr()+"/where?mailbox="+mb, &w)
		if w.Master == nil || w.Local == nil || w.BackendAddr != b.IMAPAddr() || !w.BackendUp {
			t.Errorf("/where %s: %+v", mb, w)
		}
	}
	families := scrape(t, r1.AdminAddr())
	if g := families["rookery_mailboxes"]; g == nil || g.GetMetric()[0].GetGauge().GetValue() != 3 {
		t.Errorf("rookery_mailboxes on the replica: %v", g)
	}
	if g := families["rookery_replica_connected"]; g == nil || g.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Errorf("rookery_replica_connected: %v", g)
	}

	// The master dies; a new one starts elsewhere and the cluster follows:
	// backends repopulate it, the replica reloads from it.
	m.Close()
	m2 := clusterNode(t, "master2.test", []Role{RoleMaster}, key, b1.GossipAddr())
	for _, mb := range []string{"user.be1", "user.be2", "user.be3"} {
		waitEntry(t, m2, mb, func(_ store.Entry, found bool) bool { return found })
	}
	waitSame(t, m2, r1)
}

// TestClusterRefusesWrongKey: a node with another key never joins.
func TestClusterRefusesWrongKey(t *testing.T) {
	m := clusterNode(t, "master.test", []Role{RoleMaster}, keyFile(t, "000102030405060708090a0b0c0d0e0f"))
	bad := clusterNode(t, "intruder.test", []Role{RoleBackend}, keyFile(t, "ffffffffffffffffffffffffffffffff"), m.GossipAddr())
	good := clusterNode(t, "be1.test", []Role{RoleBackend}, keyFile(t, "000102030405060708090a0b0c0d0e0f"), m.GossipAddr())
	waitFor(t, "be1 to join", func() bool { return len(alive(m)) == 2 })
	for _, n := range []*Node{m, good} {
		for _, mem := range n.Members() {
			if mem.Name == "intruder.test" {
				t.Errorf("%s sees the intruder", n.cfg.ServerName)
			}
		}
	}
	if len(alive(bad)) > 1 {
		t.Errorf("the intruder sees %v", alive(bad))
	}
}

func alive(n *Node) []string {
	var out []string
	for _, m := range n.Members() {
		if m.State == membership.Alive {
			out = append(out, m.Name)
		}
	}
	return out
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}

func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://%s/metrics", addr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// TestFiveNodeMurder: master, two backends and two frontends, identical
// but for --roles and told only where to join. Clients on either frontend
// reach both backends; a sixth node (a backend) is used at once; a dead
// backend gives fast, clear failures and comes back; a new master is
// followed.
func TestFiveNodeMurder(t *testing.T) {
	m := clusterNode(t, "master.test", []Role{RoleMaster}, "")
	seed := m.GossipAddr()
	b1 := clusterNode(t, "be1.test", []Role{RoleBackend}, "", seed)
	b2dir := t.TempDir()
	b2 := clusterNodeIn(t, b2dir, "be2.test", []Role{RoleBackend}, "", seed)
	f1 := frontendNode(t, seed)
	f2 := frontendNode(t, seed, func(c *Config) { c.ServerName = "fe2.test" })
	for _, x := range []struct {
		b  *Node
		mb string
	}{{b1, "user.alice"}, {b2, "user.bob"}} {
		c := imapLogin(t, x.b.IMAPAddr(), "admin", "secret")
		waitFor(t, "CREATE "+x.mb, func() bool { return c.Create(x.mb, nil).Wait() == nil })
	}
	for _, f := range []*Node{f1, f2} {
		waitEntry(t, f, "user.bob", activeAt("be2.test!default"))
		waitFor(t, "the frontend to see every member", func() bool { return len(alive(f)) == 5 })
		for _, u := range []string{"alice", "bob"} {
			c := imapLogin(t, f.IMAPAddr(), u, u+"pw")
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatalf("%s SELECT INBOX through %s: %v", u, f.cfg.ServerName, err)
			}
		}
	}

	// A sixth node: a backend. New top-level mailboxes go to it (it holds
	// the fewest), and both frontends reach them, with no restart.
	start := time.Now()
	b3 := clusterNode(t, "be3.test", []Role{RoleBackend}, "", seed)
	waitFor(t, "be3 in the frontends' view", func() bool { return len(alive(f1)) == 6 && len(alive(f2)) == 6 })
	admin := imapLogin(t, f1.IMAPAddr(), "admin", "secret")
	if err := admin.Create("team", nil).Wait(); err != nil {
		t.Fatalf("CREATE team through fe1: %v", err)
	}
	waitEntry(t, f2, "team", activeAt("be3.test!default"))
	c2 := imapLogin(t, f2.IMAPAddr(), "alice", "alicepw")
	if _, err := c2.Select("team", nil).Wait(); err != nil {
		t.Fatalf("SELECT team (on the new backend) through fe2: %v", err)
	}
	t.Logf("new backend: first mailbox reachable through the other frontend %v after its start", time.Since(start).Round(time.Millisecond))
	if _, ok, _ := b3.Mail().Mailbox("team"); !ok {
		t.Error("team is not on be3")
	}

	// A backend dies: its mailboxes fail at once and clearly.
	b2.Close()
	killed := time.Now()
	waitFor(t, "the frontends to notice be2 is gone", func() bool {
		for _, mem := range f1.Members() {
			if mem.Name == "be2.test" {
				return mem.State != membership.Alive
			}
		}
		return false
	})
	t.Logf("dead backend noticed by a frontend after %v", time.Since(killed).Round(time.Millisecond))
	bob := imapLogin(t, f1.IMAPAddr(), "bob", "bobpw")
	t0 := time.Now()
	if _, err := bob.Select("INBOX", nil).Wait(); err == nil {
		t.Fatal("SELECT on a dead backend succeeded")
	} else if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("SELECT on a dead backend took %v: %v", d, err)
	}
	if _, err := imapLogin(t, f1.IMAPAddr(), "alice", "alicepw").Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("alice on the live backend: %v", err)
	}
	// It comes back.
	clusterNodeIn(t, b2dir, "be2.test", []Role{RoleBackend}, "", seed)
	waitFor(t, "bob's INBOX back", func() bool {
		_, err := imapLogin(t, f1.IMAPAddr(), "bob", "bobpw").Select("INBOX", nil).Wait()
		return err == nil
	})

	// The master dies and a new one starts elsewhere: backends repopulate
	// it and the frontends' replicas follow it.
	m.Close()
	m2 := clusterNode(t, "master2.test", []Role{RoleMaster}, "", b1.GossipAddr())
	for _, mb := range []string{"user.alice", "user.bob", "team"} {
		waitEntry(t, m2, mb, func(_ store.Entry, found bool) bool { return found })
	}
	c1 := imapLogin(t, b1.IMAPAddr(), "admin", "secret")
	if err := c1.Create("user.alice.after", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*Node{f1, f2} {
		waitEntry(t, f, "user.alice.after", activeAt("be1.test!default"))
	}
}
