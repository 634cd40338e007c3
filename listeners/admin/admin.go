// Package admin is the operator's HTTP listener: /metrics in the
// Prometheus text format, /status (JSON, or a small HTML page for a
// browser) and /where?mailbox=NAME. It reads the node through functions
// the node gives it; it owns no state of its own but the metrics.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is where the admin listener is expected when nothing says
// otherwise (loopback: it has no authentication).
const DefaultAddr = "127.0.0.1:9905"

// Status is the node as /status shows it.
type Status struct {
	Node    string   `json:"node"`
	Cluster string   `json:"cluster,omitempty"`
	Version string   `json:"version,omitempty"`
	Roles   []string `json:"roles"`
	// Master is the MUPDATE address of the master this node uses; this
	// node's own on the master.
	Master    string   `json:"master,omitempty"`
	Mailboxes uint64   `json:"mailboxes"`
	Members   []Member `json:"members"`
	// Replica is set on a node with the replica role.
	Replica *Replica `json:"replica,omitempty"`
	// Storage is empty while this node's stores take writes, else "full"
	// or "failed"; StorageError is the fault that failed one.
	Storage      string `json:"storage,omitempty"`
	StorageError string `json:"storage_error,omitempty"`
}

// Member is one cluster member as this node sees it.
type Member struct {
	Name string `json:"name"`
	// Addr is its gossip address.
	Addr  string   `json:"addr"`
	Roles []string `json:"roles"`
	// Health is alive, leaving, left or failed.
	Health string `json:"health"`
	// Storage is what the member announces of its stores (see Status).
	Storage string    `json:"storage,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	MUPDATE string    `json:"mupdate,omitempty"`
	IMAP    string    `json:"imap,omitempty"`
	POP3    string    `json:"pop3,omitempty"`
	LMTP    string    `json:"lmtp,omitempty"`
	Version string    `json:"version,omitempty"`
}

// Replica is the replica role's state.
type Replica struct {
	Master     string    `json:"master"`
	Connected  bool      `json:"connected"`
	AppliedSeq uint64    `json:"applied_seq"`
	LagSeconds float64   `json:"lag_seconds"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

// Where is what /where says about one mailbox.
type Where struct {
	Mailbox string `json:"mailbox"`
	// Master is the master's entry (nil: the master has none), asked at
	// MasterAddr; MasterError says why it could not be asked.
	Master      *Entry `json:"master"`
	MasterAddr  string `json:"master_addr,omitempty"`
	MasterError string `json:"master_error,omitempty"`
	// Local is this node's list's entry (nil: none).
	Local      *Entry `json:"local"`
	LocalError string `json:"local_error,omitempty"`
	// Backend is the server named by the entry's location, at
	// BackendAddr; BackendUp says whether it accepted a connection.
	Backend      string `json:"backend,omitempty"`
	BackendAddr  string `json:"backend_addr,omitempty"`
	BackendUp    bool   `json:"backend_up"`
	BackendError string `json:"backend_error,omitempty"`
}

// Entry is a mailbox-list entry.
type Entry struct {
	// Kind is MAILBOX (active) or RESERVE, as MUPDATE names them.
	Kind     string `json:"kind"`
	Location string `json:"location"`
	ACL      string `json:"acl,omitempty"`
}

// Mboxlist is how a backend's mailboxes and the master's list differ
// (names are internal), and whether the master was made to match.
type Mboxlist struct {
	Missing   []string `json:"missing"`   // here, not (or not so) on the master
	Stale     []string `json:"stale"`     // on the master for this backend, not here
	Conflicts []string `json:"conflicts"` // here, placed elsewhere by the master
	Repaired  bool     `json:"repaired"`
}

// Config is what the listener serves.
type Config struct {
	// Metrics is served on /metrics; nil leaves /metrics out.
	Metrics *Metrics
	// Refresh, if set, runs before each scrape, to set gauges that mirror
	// state kept elsewhere (mailbox count, replica lag).
	Refresh func()
	// Status describes the node for /status; nil leaves /status out.
	Status func(ctx context.Context) (*Status, error)
	// Where answers /where?mailbox=NAME; nil leaves /where out.
	Where func(ctx context.Context, mailbox string) (*Where, error)
	// Mboxlist compares this backend's mailboxes with the master's list
	// (GET /mboxlist, Cyrus's ctl_mboxlist -mw) or makes the master match
	// them (POST /mboxlist, ctl_mboxlist -m, what every start does); nil
	// leaves /mboxlist out.
	Mboxlist func(ctx context.Context, repair bool) (*Mboxlist, error)
	// Timeout bounds one request, default 30s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Server serves the admin endpoints.
type Server struct {
	cfg  Config
	http *http.Server
}

// NewServer makes a server.
func NewServer(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	s := &Server{cfg: cfg}
	s.http = &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Handler is the endpoints' handler, for mounting elsewhere or testing.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	if m := s.cfg.Metrics; m != nil {
		h := promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
			Registry: m.Registry, // counts its own scrape errors
		})
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
			if s.cfg.Refresh != nil {
				s.cfg.Refresh()
			}
			h.ServeHTTP(w, r)
		})
	}
	if s.cfg.Status != nil {
		mux.HandleFunc("GET /status", s.status)
		mux.HandleFunc("GET /{$}", s.status)
	}
	if s.cfg.Where != nil {
		mux.HandleFunc("GET /where", s.where)
	}
	if s.cfg.Mboxlist != nil {
		mux.HandleFunc("GET /mboxlist", s.mboxlist)
		mux.HandleFunc("POST /mboxlist", s.mboxlist)
	}
	return http.TimeoutHandler(mux, s.cfg.Timeout, "admin: request timed out\n")
}

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("admin: %w", err)
}

// Close stops the listeners and waits (briefly) for requests in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		return s.http.Close()
	}
	return nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Status(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wantsHTML(r) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusPage.Execute(w, st); err != nil {
			s.cfg.Logger.Warn("status page", "err", err)
		}
		return
	}
	writeJSON(w, st)
}

func (s *Server) where(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("mailbox")
	if name == "" {
		http.Error(w, "admin: want /where?mailbox=NAME", http.StatusBadRequest)
		return
	}
	res, err := s.cfg.Where(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, res)
}

func (s *Server) mboxlist(w http.ResponseWriter, r *http.Request) {
	repair := r.Method == http.MethodPost
	res, err := s.cfg.Mboxlist(r.Context(), repair)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if repair {
		s.cfg.Logger.Info("master's mailbox list repaired on request", "remote", r.RemoteAddr,
			"missing", len(res.Missing), "stale", len(res.Stale), "conflicts", len(res.Conflicts))
	}
	writeJSON(w, res)
}

// fail logs the reason and tells the client no more than that it failed.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Logger.Warn("admin request failed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	http.Error(w, "admin: internal error (see the node's log)", http.StatusInternalServerError)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// wantsHTML is true for a browser (it asks for text/html) unless
// ?format=json says otherwise; ?format=html forces the page.
func wantsHTML(r *http.Request) bool {
	switch r.URL.Query().Get("format") {
	case "json":
		return false
	case "html":
		return true
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"join": strings.Join,
	"ago": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return time.Since(t).Round(time.Second).String() + " ago"
	},
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>{{.Node}} · Rookery</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em}
table{border-collapse:collapse}
td,th{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd}
.alive{color:#080}.failed{color:#c00}.left,.leaving{color:#888}
</style></head><body>
<h1>{{.Node}}</h1>
<p>roles {{join .Roles ", "}}{{with .Cluster}} · cluster {{.}}{{end}}{{with .Version}} · version {{.}}{{end}}
· {{.Mailboxes}} mailboxes{{with .Master}} · master {{.}}{{end}}</p>
{{with .Storage}}<p class="failed">storage {{.}}{{with $.StorageError}}: {{.}}{{end}}</p>{{end}}
{{with .Replica}}<h2>Replica</h2>
<p>master {{.Master}} · {{if .Connected}}connected{{else}}<span class="failed">not connected</span>{{end}}
· applied seq {{.AppliedSeq}} · lag {{printf "%.1f" .LagSeconds}}s · last sync {{ago .LastSync}}
{{with .LastError}}<br>last error: {{.}}{{end}}</p>{{end}}
<h2>Members</h2>
<table><tr><th>name</th><th>health</th><th>roles</th><th>gossip</th><th>MUPDATE</th><th>IMAP</th><th>POP3</th><th>LMTP</th><th>since</th></tr>
{{range .Members}}<tr><td>{{.Name}}</td><td class="{{.Health}}">{{.Health}}{{with .Storage}} <span class="failed">(storage {{.}})</span>{{end}}</td><td>{{join .Roles ", "}}</td><td>{{.Addr}}</td>
<td>{{.MUPDATE}}</td><td>{{.IMAP}}</td><td>{{.POP3}}</td><td>{{.LMTP}}</td><td>{{ago .Since}}</td></tr>
{{end}}</table>
<p><a href="/metrics">metrics</a> · <a href="/status?format=json">JSON</a></p>
</body></html>
`))
