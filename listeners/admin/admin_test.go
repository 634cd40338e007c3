package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rookery/rookery/listeners/mupdate"
	"github.com/rookery/rookery/store"
)

// serve runs a Server on a loopback port and returns its base URL.
func serve(t *testing.T, cfg Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, url, accept string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var everyRole = Roles{Version: "1.2.3", Master: true, Replica: true, MUPDATE: true, Mail: true, Frontend: true}

// TestMetricsScrape scrapes /metrics over a socket and parses it with
// Prometheus's own text parser.
func TestMetricsScrape(t *testing.T) {
	m := NewMetrics(everyRole)
	m.MUPDATE.Connections.Set(3)
	m.MUPDATE.Commands.WithLabelValues("FIND").Add(2)
	m.MUPDATE.Commands.WithLabelValues("RESERVE").Inc()
	m.IMAP.Commands.WithLabelValues("SELECT").Inc()
	m.ProxiedSessions.WithLabelValues("be1", "imap").Inc()
	m.ProxiedSessions.WithLabelValues("be2", "pop3").Add(2)
	m.LMTPDeliveries.Add(5)
	m.LMTPDeferrals.Inc()
	m.Conflicts.Inc()
	refreshed := 0
	base := serve(t, Config{Metrics: m, Refresh: func() {
		refreshed++
		m.Mailboxes.Set(float64(40 + refreshed))
		m.ReplicaLag.Set(0.25)
	}})
	// A second node's metrics in the same process: no clash.
	NewMetrics(everyRole).Mailboxes.Set(1)

	resp, body := get(t, base+"/metrics", "text/plain")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "rookery_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_") {
			t.Errorf("unexpected family %s", name)
		}
		if f.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
	}
	value := func(name string, typ dto.MetricType, labels map[string]string) float64 {
		t.Helper()
		f, ok := fams[name]
		if !ok {
			t.Fatalf("no %s in\n%s", name, body)
		}
		if f.GetType() != typ {
			t.Errorf("%s is %v, want %v", name, f.GetType(), typ)
		}
	metrics:
		for _, mt := range f.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range mt.GetLabel() {
					if lp.GetName() == k && lp.GetValue() == v {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			if typ == dto.MetricType_COUNTER {
				return mt.GetCounter().GetValue()
			}
			return mt.GetGauge().GetValue()
		}
		t.Fatalf("no %s%v", name, labels)
		return 0
	}
	gauge, counter := dto.MetricType_GAUGE, dto.MetricType_COUNTER
	for _, c := range []struct {
		name   string
		typ    dto.MetricType
		labels map[string]string
		want   float64
	}{
		{"rookery_mupdate_connections", gauge, nil, 3},
		{"rookery_imap_connections", gauge, nil, 0},
		{"rookery_pop3_connections", gauge, nil, 0},
		{"rookery_lmtp_connections", gauge, nil, 0},
		{"rookery_mupdate_commands_total", counter, map[string]string{"command": "FIND"}, 2},
		{"rookery_mupdate_commands_total", counter, map[string]string{"command": "RESERVE"}, 1},
		{"rookery_imap_commands_total", counter, map[string]string{"command": "SELECT"}, 1},
		{"rookery_mailboxes", gauge, nil, 41},
		{"rookery_mupdate_reservations", gauge, nil, 0},
		{"rookery_mupdate_conflicts_total", counter, nil, 1},
		{"rookery_mupdate_update_subscribers", gauge, nil, 0},
		{"rookery_replica_connected", gauge, nil, 0},
		{"rookery_replica_lag_seconds", gauge, nil, 0.25},
		{"rookery_replica_last_sync_timestamp_seconds", gauge, nil, 0},
		{"rookery_replica_applied_seq", gauge, nil, 0},
		{"rookery_proxied_sessions", gauge, map[string]string{"backend": "be1", "protocol": "imap"}, 1},
		{"rookery_proxied_sessions", gauge, map[string]string{"backend": "be2", "protocol": "pop3"}, 2},
		{"rookery_lmtp_deliveries_total", counter, nil, 5},
		{"rookery_lmtp_deferrals_total", counter, nil, 1},
		{"rookery_build_info", gauge, map[string]string{"version": "1.2.3", "goversion": runtime.Version()}, 1},
	} {
		if got := value(c.name, c.typ, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	// Refresh runs on every scrape.
	_, body = get(t, base+"/metrics", "")
	if !strings.Contains(body, "\nrookery_mailboxes 42\n") {
		t.Errorf("second scrape not refreshed:\n%s", body)
	}
}

func testStatus() *Status {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &Status{
		Node: "fe1", Cluster: "murder", Version: "0.1.0", Roles: []string{"frontend", "replica"},
		Master: "127.0.0.1:3905", Mailboxes: 12,
		Members: []Member{
			{Name: "be1", Addr: "127.0.0.1:7946", Roles: []string{"backend"}, Health: "alive", Since: since, IMAP: "127.0.0.1:1143"},
			{Name: "be2", Addr: "127.0.0.1:7947", Roles: []string{"backend"}, Health: "failed", Since: since},
		},
		Replica: &Replica{Master: "127.0.0.1:3905", Connected: true, AppliedSeq: 77, LagSeconds: 0.5, LastSync: since},
	}
}

func TestStatus(t *testing.T) {
	fail := false
	base := serve(t, Config{Status: func(ctx context.Context) (*Status, error) {
		if fail {
			return nil, errors.New("mupdate-slave did not answer")
		}
		return testStatus(), nil
	}})

	resp, body := get(t, base+"/status", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var got Status
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(testStatus())
	if again, _ := json.Marshal(&got); string(again) != string(want) {
		t.Errorf("got %s\nwant %s", again, want)
	}
	if !strings.Contains(body, `"health": "failed"`) || strings.Contains(body, `"pop3"`) {
		t.Errorf("JSON:\n%s", body)
	}

	for _, url := range []string{base + "/status", base + "/", base + "/status?format=html"} {
		accept := "text/html,application/xhtml+xml"
		if strings.HasSuffix(url, "html") {
			accept = ""
		}
		resp, body = get(t, url, accept)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: status %d, type %q", url, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		for _, s := range []string{"<h1>fe1</h1>", `<td class="failed">failed</td>`, "applied seq 77", "127.0.0.1:1143"} {
			if !strings.Contains(body, s) {
				t.Errorf("%s: page lacks %q:\n%s", url, s, body)
			}
		}
	}
	if resp, _ := get(t, base+"/status?format=json", "text/html"); resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("?format=json gave %q", resp.Header.Get("Content-Type"))
	}

	fail = true
	resp, body = get(t, base+"/status", "")
	if resp.StatusCode != 500 || strings.Contains(body, "mupdate-slave") {
		t.Errorf("failure: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, base+"/metrics", ""); resp.StatusCode != 404 {
		t.Errorf("/metrics without Metrics: %d", resp.StatusCode)
	}
}

func openStore(t *testing.T, entries ...store.Entry) *store.DB {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var b store.Batch
	for _, e := range entries {
		b.Changes = append(b.Changes, store.Change{Name: e.Name, New: &e})
	}
	if len(b.Changes) > 0 {
		if _, err := st.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestWhere: /where asks a real MUPDATE master with FIND, reads the local
// list and dials the backend.
func TestWhere(t *testing.T) {
	bob := store.Entry{Name: "user.bob", Kind: store.Active, Location: "be1!default", ACL: "bob\tlrswipkxtecda\t"}
	eve := store.Entry{Name: "user.eve", Kind: store.Active, Location: "be2!default", ACL: "eve\tlrs\t"}
	res := store.Entry{Name: "user.new", Kind: store.Reserved, Location: "be1!default"}
	master := openStore(t, bob, eve, res)
	local := openStore(t, bob, eve) // lags: no user.new yet

	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ms := mupdate.NewServer(mupdate.ServerConfig{
		ServerName: "master", Mode: "(master)", ReadOnly: true, Store: master,
		Login: func(authzid, authcid, password string) (string, error) {
			if authcid == "admin" && password == "secret" {
				return authcid, nil
			}
			return "", errors.New("bad password")
		},
	})
	go ms.Serve(mln)
	t.Cleanup(func() { ms.Close() })

	// be1 is up (something listens), be2's address refuses connections.
	be1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer be1.Close()
	go func() {
		for {
			c, err := be1.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	gone, _ := net.Listen("tcp", "127.0.0.1:0")
	be2 := gone.Addr().String()
	gone.Close()

	masterAddr := mln.Addr().String()
	loc := &Locator{
		Master: func() string { return masterAddr },
		Client: mupdate.ClientConfig{Username: "admin", Password: "secret", Timeout: 5 * time.Second},
		Local:  local.Get,
		BackendAddr: func(server string) string {
			return map[string]string{"be1": be1.Addr().String(), "be2": be2}[server]
		},
	}
	base := serve(t, Config{Where: loc.Where})
	where := func(name string) Where {
		t.Helper()
		resp, body := get(t, base+"/where?mailbox="+name, "")
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
		var w Where
		if err := json.Unmarshal([]byte(body), &w); err != nil {
			t.Fatal(err)
		}
		return w
	}

	w := where("user.bob")
	if w.Master == nil || *w.Master != (Entry{"MAILBOX", "be1!default", "bob\tlrswipkxtecda\t"}) || w.MasterAddr != masterAddr ||
		w.Local == nil || *w.Local != *w.Master || w.Backend != "be1" || w.BackendAddr != be1.Addr().String() || !w.BackendUp {
		t.Errorf("user.bob: %+v", w)
	}
	w = where("user.eve")
	if w.Backend != "be2" || w.BackendUp || w.BackendError == "" {
		t.Errorf("user.eve on a dead backend: %+v", w)
	}
	w = where("user.new")
	if w.Master == nil || w.Master.Kind != "RESERVE" || w.Local != nil || !w.BackendUp {
		t.Errorf("user.new, reserved on the master only: %+v", w)
	}
	w = where("user.nobody")
	if w.Master != nil || w.Local != nil || w.Backend != "" || w.MasterError != "" {
		t.Errorf("unknown mailbox: %+v", w)
	}

	// With the master away, the local entry is still reported.
	ms.Close()
	w = where("user.bob")
	if w.Master != nil || w.MasterError == "" || w.Local == nil || !w.BackendUp {
		t.Errorf("master down: %+v", w)
	}
	masterAddr = ""
	if w = where("user.bob"); w.MasterError != "no master known" {
		t.Errorf("no master: %+v", w)
	}

	if resp, _ := get(t, base+"/where", ""); resp.StatusCode != 400 {
		t.Errorf("/where without a mailbox: %d", resp.StatusCode)
	}
}

// TestMetricsRoles: a role's collectors are served only where it runs,
// and counting into one that is not served is harmless.
func TestMetricsRoles(t *testing.T) {
	for _, c := range []struct {
		name    string
		roles   Roles
		present []string
		absent  []string
	}{
		{"backend", Roles{Mail: true},
			[]string{"rookery_imap_connections", "rookery_lmtp_deliveries_total", "rookery_mailboxes", "rookery_build_info"},
			[]string{"rookery_replica_", "rookery_mupdate_"}},
		{"master", Roles{Master: true, MUPDATE: true},
			[]string{"rookery_mupdate_conflicts_total", "rookery_mupdate_connections", "rookery_mupdate_update_subscribers"},
			[]string{"rookery_replica_", "rookery_imap_", "rookery_pop3_", "rookery_lmtp_"}},
		{"replica", Roles{Replica: true, MUPDATE: true},
			[]string{"rookery_replica_connected", "rookery_replica_lag_seconds", "rookery_replica_applied_seq", "rookery_mupdate_connections"},
			[]string{"rookery_mupdate_conflicts_total", "rookery_imap_"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := NewMetrics(c.roles)
			m.ReplicaLag.Set(3)
			m.Conflicts.Inc()
			m.IMAP.Commands.WithLabelValues("SELECT").Inc()
			m.ProxiedSessions.WithLabelValues("be1", "imap").Inc()
			fams, err := m.Registry.Gather()
			if err != nil {
				t.Fatal(err)
			}
			names := map[string]bool{}
			for _, f := range fams {
				names[f.GetName()] = true
			}
			for _, want := range c.present {
				if !names[want] {
					t.Errorf("no %s", want)
				}
			}
			for name := range names {
				for _, prefix := range append(c.absent, "rookery_proxied_sessions") {
					if strings.HasPrefix(name, prefix) {
						t.Errorf("%s served", name)
					}
				}
			}
		})
	}
}
