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
	users := backendUsers(t)
	return testNode(t, t.TempDir(), func(c *Config) {
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
