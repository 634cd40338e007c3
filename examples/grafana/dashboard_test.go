// Package grafana holds the example Grafana dashboard; its test keeps the
// dashboard's queries on metrics a node serves.
package grafana

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rookery/rookery/listeners/admin"
)

// TestDashboardMetrics: every rookery_ series a panel queries is one a node
// with every role serves, and every panel has a query.
func TestDashboardMetrics(t *testing.T) {
	b, err := os.ReadFile("rookery.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			ID      int
			Type    string
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("rookery.json: %v", err)
	}

	m := admin.NewMetrics(admin.Roles{Version: "test", Master: true, Replica: true, MUPDATE: true, Mail: true, Frontend: true})
	// Vectors are served once they have a child.
	m.CommandDuration.WithLabelValues("imap", "SELECT").Observe(0.001)
	m.LoginFailures.WithLabelValues("imap").Inc()
	m.ProxiedSessions.WithLabelValues("be1", "imap").Inc()
	m.StorageState.WithLabelValues("mailboxes").Set(0)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, f := range fams {
		name := f.GetName()
		served[name] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_count", "_sum"} {
				served[name+s] = true
			}
		}
	}

	metric := regexp.MustCompile(`rookery_[a-z0-9_]+`)
	ids := map[int]bool{}
	queried := 0
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metric.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: %q queries no rookery_ metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				queried++
				if !served[n] {
					t.Errorf("panel %q: %s is not served (%s)", p.Title, n, strings.TrimSpace(tg.Expr))
				}
			}
		}
	}
	if queried == 0 {
		t.Fatal("no queries found")
	}
}
